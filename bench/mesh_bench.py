#!/usr/bin/env python3
"""bench/mesh_bench.py — the whole mesh (issue 6), run by bench/run_all as part 8 (root).

Runs examples/hello through `taskmesh up` on its own runtime (its own /24 and ports), then:
  1. T0→T4 of every app task of the first start (all tasks at once, the server starting too),
     and of one backend task started alone once the mesh runs (UpdateService desiredCount+1),
     per phase, from up's report (the runtime's recorded transitions + the catalog's first
     passing answer).
  2. Memory of the mesh containers of one running task together: consul-client (the agent)
     and sidecar-proxy (the proxy), the long-running ones (the init containers have exited).
     Both run the same binary and libraries, so "together" counts each file's pages once (the
     larger of the two processes' RSS of it) and adds both processes' anonymous memory; the
     plain RSS of each is reported too.
     Peer: the figure the original system's docs publish (Consul client 87 MB + Envoy 55 MB
     + health-sync 35 MB on Fargate, reference/consul-ecs.md §9); neither runs here.
  3. Failed requests during a rolling update of the backend (UpdateService to a new revision)
     under steady load: one request every 20 ms through the frontend, counted.
Prints RESULT lines; --markdown FILE writes the report section. Every wait is bounded; `up`
is stopped by PID (SIGINT: it stops every task and its runtime).
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXAMPLE = os.path.join(ROOT, "examples", "hello")
PHASES = ["T0→T1 discover-servers", "T1→T2 mesh-init", "T2→T3 proxy HEALTHY",
          "T3→T4 app passing"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def ecs_call(port, op, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(), method="POST",
        headers={"X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{op}",
                 "Content-Type": "application/x-amz-json-1.1"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def smaps_rss(pid):
    """{mapping name: RSS kB} of a process; anonymous mappings under "" (summed)."""
    out = {}
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                name = parts[5] if len(parts) >= 6 and parts[5].startswith("/") else ""
            elif parts[0] == "Rss:":
                out[name] = out.get(name, 0) + int(parts[1])
    return out


def together_kb(pids):
    """RSS of processes together: anonymous memory summed, each file's pages counted once (the
    largest of the processes' RSS of it: they map the same binary and libraries)."""
    anon, files = 0, {}
    for pid in pids:
        for name, kb in smaps_rss(pid).items():
            if name:
                files[name] = max(files.get(name, 0), kb)
            else:
                anon += kb
    return anon + sum(files.values())


def container_pid(port, task_id, container):
    url = f"http://127.0.0.1:{port}/taskmesh/v1/tasks/{task_id}/timeline"
    with urllib.request.urlopen(url, timeout=10) as r:
        events = json.loads(r.read())["events"]
    pids = [e["detail"].split("=")[1] for e in events
            if e["subject"] == container and e["event"] == "RUNNING"]
    return int(pids[-1])


class Load:
    def __init__(self, url):
        self.url, self.ok, self.failed = url, 0, 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    r.read()
                    self.ok += 1
            except (urllib.error.URLError, OSError):
                self.failed += 1
            time.sleep(0.02)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taskmesh", required=True)
    ap.add_argument("--markdown")
    ap.add_argument("--subnet", default="198.19.253.0/24")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="taskmesh-mesh-bench-")
    report_path = os.path.join(work, "report.json")
    port = free_port()
    log = open(os.path.join(work, "up.log"), "wb")
    up = subprocess.Popen([args.taskmesh, "up", EXAMPLE, "-api-addr", f"127.0.0.1:{port}",
                           "-subnet", args.subnet, "-report", report_path, "-timeout", "3m"],
                          stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          start_new_session=True)

    def report():
        try:
            with open(report_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    try:
        wait_until(lambda: up.poll() is None and report().get("ready"), 240, "the mesh")
        first = [t for t in report()["tasks"] if t["service"] != "taskmesh-server"]
        known = {t["taskArn"] for t in report()["tasks"]}
        # 2. memory of one backend task's mesh containers (before adding load)
        back = [t for t in first if t["service"] == "backend"][0]
        tid = back["taskArn"].rsplit("/", 1)[1]
        pids = {c: container_pid(port, tid, c) for c in ("consul-client", "sidecar-proxy")}
        mem = {c: rss_kb(p) / 1024 for c, p in pids.items()}
        together = together_kb(pids.values()) / 1024
        # 1b. one more backend task, alone
        ecs_call(port, "UpdateService", {"cluster": "hello", "service": "backend",
                                         "desiredCount": 3})
        alone = wait_until(lambda: [t for t in report()["tasks"]
                                    if t["taskArn"] not in known and t.get("totalMs")],
                           120, "the added backend task")[0]
        ecs_call(port, "UpdateService", {"cluster": "hello", "service": "backend",
                                         "desiredCount": 2})
        time.sleep(3)
        # 3. rolling update under steady load
        front = [t for t in first if t["service"] == "frontend"][0]
        url = f"http://{front['ip']}:8080/"
        with open(os.path.join(EXAMPLE, "backend.task.json")) as f:
            app = json.load(f)
        env = app["containerDefinitions"][0]["environment"][0]
        env["value"] = env["value"].replace("hello from backend", "hello from backend v2")
        app_path = os.path.join(work, "backend-v2.json")
        with open(app_path, "w") as f:
            json.dump(app, f)
        td = json.loads(subprocess.run(
            [args.taskmesh, "task-definition", "-app", app_path, "-mesh-config",
             os.path.join(EXAMPLE, "backend.mesh.json")], capture_output=True, text=True,
            check=True, timeout=30).stdout)
        arn = ecs_call(port, "RegisterTaskDefinition", td)["taskDefinition"]["taskDefinitionArn"]
        load = Load(url)
        time.sleep(1)
        started = time.monotonic()
        ecs_call(port, "UpdateService", {"cluster": "hello", "service": "backend",
                                         "taskDefinition": arn})

        def rolled():
            arns = ecs_call(port, "ListTasks", {"cluster": "hello",
                                                "serviceName": "backend"})["taskArns"]
            tasks = ecs_call(port, "DescribeTasks", {"cluster": "hello",
                                                     "tasks": arns})["tasks"] if arns else []
            return len(tasks) == 2 and all(t["taskDefinitionArn"] == arn and
                                           t["lastStatus"] == "RUNNING" for t in tasks)
        wait_until(rolled, 180, "the rolling update")
        time.sleep(3)
        load.stop()
        roll_s = time.monotonic() - started
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(180)
            except subprocess.TimeoutExpired:
                up.kill()

    totals = [t["totalMs"] for t in first]
    print(f"RESULT mesh_first_start_t0_t4_ms median={statistics.median(totals)} "
          f"max={max(totals)}")
    print(f"RESULT mesh_single_task_t0_t4_ms {alone['totalMs']} phases={alone['phasesMs']}")
    print("RESULT mesh_containers_rss_mb " +
          " ".join(f"{k}={v:.1f}" for k, v in mem.items()) + f" sum={sum(mem.values()):.1f} "
          f"together={together:.1f}")
    print(f"RESULT rolling_update requests_ok={load.ok} failed={load.failed} "
          f"seconds={roll_s:.1f}")
    if args.markdown:
        lines = ["### The whole mesh (examples/hello through `taskmesh up`)", "",
                 "T0→T4 per phase (ms), from the runtime's recorded transitions and the "
                 "catalog's first passing answer:", "",
                 "| task | " + " | ".join(PHASES) + " | T0→T4 |",
                 "|---|" + "---:|" * (len(PHASES) + 1)]
        for t in first + [alone]:
            name = t["service"] + (" (started alone)" if t is alone else " (first start)")
            lines.append(f"| {name} | " + " | ".join(str(p) for p in t["phasesMs"]) +
                         f" | **{t['totalMs']}** |")
        total_mem = together
        lines += ["", "| figure | taskmesh | original (Consul client + Envoy + health-sync) "
                  "| ratio | target |", "|---|---:|---:|---:|---|",
                  f"| T0→T4 of one app task | {alone['totalMs'] / 1000:.2f} s | 50–120 s on "
                  f"Fargate (published) | {50000 / alone['totalMs']:.0f}× faster (vs 50 s) | "
                  f"≤ 1 s |",
                  f"| memory of a task's mesh containers together | {total_mem:.1f} MB (RSS "
                  f"agent {mem['consul-client']:.1f} + proxy {mem['sidecar-proxy']:.1f} = "
                  f"{sum(mem.values()):.1f}, the shared binary and libraries counted twice) | "
                  f"177 MB (published maxima) | {177 / total_mem:.1f}× less | ≤ 25 MB |",
                  f"| failed requests, rolling update of 2 backends under load | {load.failed} "
                  f"of {load.ok + load.failed} | – | – | 0 |", ""]
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
