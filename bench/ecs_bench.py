#!/usr/bin/env python3
"""bench/ecs_bench.py — the local ECS runtime's benchmark (issue 4), run by bench/run_all.

Measures, on a freshly started `taskmesh ecs` (root: runc, CNI):
  1. RunTask to RUNNING of a 4-container task shaped like a Consul-on-ECS task: an init
     container (SUCCESS), a proxy with a health check (HEALTHY, interval 5 s), the app
     (depends on the proxy being HEALTHY) and an independent sidecar. Each phase comes from
     the task's timeline; the runtime's own overhead is what is left of RunTask→RUNNING after
     taking away (a) what the containers do (the init container's run) and (b) the time spent
     inside the engines on the critical path (the CNI plugins, `runc run`, the `runc exec` of
     the probe, which runs at once: the runtime does not wait an interval for a container's
     first HEALTHY), which is reported separately.
  2. 50 tasks (2 containers each) started at once: time until all are RUNNING, and the
     runtime's RSS before and after (memory per running task).

Peers: the issue names none (ECS's own agent cannot run here). Prints RESULT lines and, with
--markdown FILE, writes the report section there. Every wait is bounded; the runtime is
stopped by PID.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HOST = "127.0.0.1"
INTERVAL = 5  # the proxy's health-check interval (ECS's minimum)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Runtime:
    def __init__(self, binary):
        self.root = tempfile.mkdtemp(prefix="taskmesh-ecs-bench-")
        self.port = free_port()
        self.bridge = f"tmb{os.getpid() % 100000}"
        self.proc = subprocess.Popen(
            [binary, "ecs", "-data-dir", os.path.join(self.root, "data"), "-api-addr",
             f"{HOST}:{self.port}", "-bridge", self.bridge, "-subnet", "198.19.240.0/20",
             "-metadata-port", str(free_port()), "-log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=open(os.path.join(self.root, "ecs.log"), "wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        self.wait(lambda: self.call("ListClusters", {}), 30, "the runtime to answer")

    def call(self, op, body):
        req = urllib.request.Request(
            f"http://{HOST}:{self.port}/", data=json.dumps(body).encode(), method="POST",
            headers={"X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{op}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def timeline(self, arn):
        url = f"http://{HOST}:{self.port}/taskmesh/v1/tasks/{arn.rsplit('/', 1)[1]}/timeline"
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())["events"]

    @staticmethod
    def wait(pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                v = pred()
                if v:
                    return v
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def statuses(self, arns):
        out = {}
        for i in range(0, len(arns), 100):
            for t in self.call("DescribeTasks", {"tasks": arns[i:i + 100]})["tasks"]:
                out[t["taskArn"]] = t["lastStatus"]
        return out

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def container(name, command, **kw):
    c = {"name": name, "image": "host", "command": command, "stopTimeout": 2}
    c.update(kw)
    return c


IDLE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
MESH_TASK = {"family": "bench-mesh", "containerDefinitions": [
    container("init", ["/bin/true"], essential=False),
    container("proxy", IDLE, dependsOn=[{"containerName": "init", "condition": "SUCCESS"}],
              healthCheck={"command": ["CMD", "/bin/true"], "interval": INTERVAL,
                           "timeout": 2, "retries": 1}),
    container("app", IDLE, dependsOn=[{"containerName": "proxy", "condition": "HEALTHY"}]),
    container("side", IDLE, essential=False),
]}
PAIR_TASK = {"family": "bench-pair", "containerDefinitions": [
    container("app", IDLE), container("side", IDLE, essential=False)]}
NET = {"awsvpcConfiguration": {"subnets": ["subnet-bench"]}}


def at(tl, subject, event):
    for e in tl:
        if e["subject"] == subject and e["event"] == event:
            return e["at"]
    raise KeyError(f"{subject} {event}")


def phases(tl):
    """Seconds per phase of one mesh task, from its timeline."""
    t0 = at(tl, "task", "PROVISIONING")
    p = {
        "network (CNI)": at(tl, "task", "NETWORK_ATTACHED") - t0,
        "init: runc run": at(tl, "init", "RUNNING") - at(tl, "init", "CREATED"),
        "init: runs (container work)": at(tl, "init", "STOPPED") - at(tl, "init", "RUNNING"),
        "proxy: runc run": at(tl, "proxy", "RUNNING") - at(tl, "proxy", "CREATED"),
        # The runtime probes a container that has not passed yet at once (runtime/README.md),
        # so RUNNING → HEALTHY is the probe itself, not an interval plus the probe.
        "proxy: probe (runc exec)": at(tl, "proxy", "HEALTHY") - at(tl, "proxy", "RUNNING"),
        "app: runc run": at(tl, "app", "RUNNING") - at(tl, "app", "CREATED"),
        "total": at(tl, "task", "RUNNING") - t0,
    }
    engine = (p["network (CNI)"] + p["init: runc run"] + p["proxy: runc run"]
              + p["proxy: probe (runc exec)"] + p["app: runc run"])
    p["engines on the critical path"] = engine
    p["runtime's own overhead"] = p["total"] - engine - p["init: runs (container work)"]
    return p


def bench_mesh_tasks(rt, runs):
    rt.call("RegisterTaskDefinition", MESH_TASK)
    results, api_ms = [], []
    for _ in range(runs):
        start = time.monotonic()
        arn = rt.call("RunTask", {"taskDefinition": "bench-mesh", "networkConfiguration": NET}
                      )["tasks"][0]["taskArn"]
        api_ms.append((time.monotonic() - start) * 1000)
        rt.wait(lambda: rt.statuses([arn])[arn] == "RUNNING", 60, "mesh task RUNNING")
        results.append(phases(rt.timeline(arn)))
        rt.call("StopTask", {"task": arn})
        rt.wait(lambda: rt.statuses([arn])[arn] == "STOPPED", 60, "mesh task STOPPED")
    return results, api_ms


def bench_fifty(rt):
    rt.call("RegisterTaskDefinition", PAIR_TASK)
    time.sleep(1)
    rss0 = rt.rss_kb()
    start = time.monotonic()
    arns = []
    for _ in range(5):
        out = rt.call("RunTask", {"taskDefinition": "bench-pair", "count": 10,
                                  "networkConfiguration": NET})
        arns += [t["taskArn"] for t in out["tasks"]]
    rt.wait(lambda: all(s == "RUNNING" for s in rt.statuses(arns).values()), 300,
            "50 tasks RUNNING")
    elapsed = time.monotonic() - start
    time.sleep(2)
    rss1 = rt.rss_kb()
    cpu0 = sum(map(int, open(f"/proc/{rt.proc.pid}/stat").read().split()[13:15]))
    time.sleep(10)
    cpu1 = sum(map(int, open(f"/proc/{rt.proc.pid}/stat").read().split()[13:15]))
    idle_cpu = (cpu1 - cpu0) / os.sysconf("SC_CLK_TCK") / 10 * 100
    start = time.monotonic()
    for arn in arns:
        rt.call("StopTask", {"task": arn})
    rt.wait(lambda: all(s == "STOPPED" for s in rt.statuses(arns).values()), 300,
            "50 tasks STOPPED")
    stop_elapsed = time.monotonic() - start
    return {"start_s": elapsed, "stop_s": stop_elapsed, "rss0_kb": rss0, "rss1_kb": rss1,
            "per_task_kb": (rss1 - rss0) / 50, "idle_cpu_pct": idle_cpu}


def markdown(results, api_ms, fifty, runs):
    keys = list(results[0].keys())
    ms = {k: [r[k] * 1000 for r in results] for k in keys}
    rows = []
    for k in keys:
        v = sorted(ms[k])
        rows.append(f"| {k} | {statistics.median(v):.0f} | {v[0]:.0f} | {v[-1]:.0f} |")
    own = statistics.median(ms["runtime's own overhead"])
    engine = statistics.median(ms["engines on the critical path"])
    return "\n".join([
        "### Local ECS runtime (`bench/ecs_bench.py`; no peer: ECS's agent cannot run here)",
        "",
        f"RunTask → RUNNING of a 4-container task (init SUCCESS → proxy HEALTHY, interval "
        f"{INTERVAL} s → app; plus a sidecar), {runs} runs one after another; ms:",
        "",
        "| phase | median | min | max |",
        "|---|---|---|---|",
        *rows,
        f"| RunTask API call | {statistics.median(api_ms):.1f} | {min(api_ms):.1f} | "
        f"{max(api_ms):.1f} |",
        "",
        f"50 tasks (2 containers each) started at once: all RUNNING after "
        f"{fifty['start_s']:.1f} s, all STOPPED {fifty['stop_s']:.1f} s after 50 StopTask "
        f"calls. Runtime RSS {fifty['rss0_kb'] / 1024:.1f} MB with no task, "
        f"{fifty['rss1_kb'] / 1024:.1f} MB with 50 running: "
        f"{fifty['per_task_kb']:.0f} KB per running task. Runtime CPU with 50 idle tasks: "
        f"{fifty['idle_cpu_pct']:.1f} % of one core.",
        "",
        f"Target: the runtime's own overhead ≤ 100 ms per task. taskmesh's own code adds a "
        f"median {own:.0f} ms ({'met' if own <= 100 else 'NOT met'}). Counting the runc and CNI "
        f"calls on the critical path as overhead too, it is {own + engine:.0f} ms "
        f"({'met' if own + engine <= 100 else 'NOT met'}): three `runc run` and one `runc exec` "
        f"one after another, each a Go process of its own.",
        "",
    ])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taskmesh", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("ecs_bench: needs root (runc, network namespaces)")
    rt = Runtime(args.taskmesh)
    try:
        results, api_ms = bench_mesh_tasks(rt, args.runs)
        fifty = bench_fifty(rt)
    finally:
        rt.stop()
    for k in results[0]:
        print(f"RESULT ecs.{k.replace(' ', '_')}_ms_median "
              f"{statistics.median(r[k] for r in results) * 1000:.1f}")
    print(f"RESULT ecs.fifty_start_s {fifty['start_s']:.2f}")
    print(f"RESULT ecs.per_task_kb {fifty['per_task_kb']:.0f}")
    md = markdown(results, api_ms, fifty, args.runs)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    print(md)


if __name__ == "__main__":
    main()
