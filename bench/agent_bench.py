#!/usr/bin/env python3
"""bench/agent_bench.py — the client agent's benchmark (issue 3), run by bench/run_all.

Measures, on freshly started processes on 127.0.0.1:
  1. agent RSS with 10 services and 20 checks (10 TTL, 10 HTTP at 1 s);
  2. agent CPU for 1,000 HTTP checks at a 1 s interval (share of one core over a window);
  3. latency from a check turning passing (TTL pass through the agent) until the server
     answers it as passing: a blocking query on the server's /v1/health/checks/<service>
     is waiting, and the clock runs from just before the PUT to the agent until that query
     returns the new status.

Peers: the Consul client is not in Debian, so it cannot run side by side here; the report
compares with HashiCorp's published figure for the client on ECS (87 MB,
reference/consul-ecs.md) and with the issue's targets.

Prints RESULT lines and, with --markdown FILE, writes the report section there. Every wait is
bounded; every process it starts is stopped by PID.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, timeout=30):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Proc:
    def __init__(self, args, log):
        self.log = log
        with open(log, "wb") as f:
            self.p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)

    def status(self, key):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def start_server(binary, work, name, procs):
    port, raft = free_port(), free_port()
    p = Proc([binary, "server", "-data-dir", os.path.join(work, name), "-bootstrap", "-node", name,
              "-http-addr", f"{HOST}:{port}", "-server-port", str(raft)],
             os.path.join(work, name + ".log"))
    procs.append(p)
    wait_until(lambda: call(port, "PUT", "/v1/kv/ready", b"1", timeout=2)[0] == 200, 60,
               f"server {name}")
    return port


def start_agent(binary, work, name, server_port, procs):
    port = free_port()
    p = Proc([binary, "agent", "-data-dir", os.path.join(work, name), "-node", name,
              "-http-addr", f"{HOST}:{port}", "-advertise", HOST,
              "-retry-join", f"{HOST}:{server_port}"], os.path.join(work, name + ".log"))
    procs.append(p)
    wait_until(lambda: call(port, "GET", "/v1/agent/self", timeout=2)[0] == 200, 60,
               f"agent {name}")
    return port, p


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100.0 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taskmesh", required=True)
    ap.add_argument("--markdown")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--cpu-window", type=float, default=30.0)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="taskmesh-agent-bench-")
    procs = []
    out = {}
    try:
        server = start_server(args.taskmesh, work, "srv", procs)
        target = start_server(args.taskmesh, work, "target", procs)  # answers the HTTP checks
        check_url = f"http://{HOST}:{target}/v1/status/leader"

        # 1. RSS with 10 services and 20 checks.
        aport, agent = start_agent(args.taskmesh, work, "agent-small", server, procs)
        for i in range(10):
            st, _, body = call(aport, "PUT", "/v1/agent/service/register", {
                "Name": f"svc{i}", "Port": 8000 + i,
                "Checks": [{"TTL": "60s", "Status": "passing"},
                           {"HTTP": check_url, "Interval": "1s"}]})
            assert st == 200, body
        wait_until(lambda: len(json.loads(call(server, "GET", "/v1/health/node/agent-small")[2]))
                   >= 21, 30, "20 checks and serfHealth on the server")
        time.sleep(5)  # a few check rounds and a full sync
        out["rss_small_kb"] = agent.status("VmRSS")
        out["hwm_small_kb"] = agent.status("VmHWM")
        print(f"RESULT agent-rss-10-services rss_kb={out['rss_small_kb']} hwm_kb={out['hwm_small_kb']}")

        # 3. check → server latency (the small agent, TTL check of svc0).
        check_id = "service:svc0:1"
        latencies = []
        status = "passing"
        st, headers, _ = call(server, "GET", "/v1/health/checks/svc0")
        index = int(headers["X-Consul-Index"])
        for i in range(args.rounds):
            status = "critical" if status == "passing" else "passing"
            result = {}

            def watch(idx=index):
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    st, h, body = call(server, "GET", f"/v1/health/checks/svc0?index={idx}&wait=15s")
                    idx = int(h.get("X-Consul-Index", idx))
                    checks = {c["CheckID"]: c["Status"] for c in json.loads(body)}
                    if checks.get(check_id) == status:
                        result["t"] = time.monotonic()
                        result["index"] = idx
                        return

            t = threading.Thread(target=watch)
            t.start()
            time.sleep(0.01)  # the watcher is parked on the server
            t0 = time.monotonic()
            verb = "pass" if status == "passing" else "fail"
            st, _, body = call(aport, "PUT", f"/v1/agent/check/{verb}/{check_id}")
            assert st == 200, body
            t.join(25)
            if "t" not in result:
                raise RuntimeError(f"round {i}: the server never answered {status}")
            latencies.append((result["t"] - t0) * 1000.0)
            index = result["index"]
        out["lat_p50"] = percentile(latencies, 50)
        out["lat_p99"] = percentile(latencies, 99)
        out["lat_max"] = max(latencies)
        print(f"RESULT check-to-server rounds={len(latencies)} p50_ms={out['lat_p50']:.2f} "
              f"p99_ms={out['lat_p99']:.2f} max_ms={out['lat_max']:.2f}")

        # 2. CPU for 1,000 HTTP checks at 1 s.
        bport, big = start_agent(args.taskmesh, work, "agent-big", server, procs)
        for i in range(100):
            checks = [{"CheckID": f"c{i}-{k}", "Name": f"c{i}-{k}", "HTTP": check_url,
                       "Interval": "1s"} for k in range(10)]
            st, _, body = call(bport, "PUT", "/v1/agent/service/register",
                               {"Name": f"big{i}", "Port": 9000 + i, "Checks": checks})
            assert st == 200, body
        wait_until(lambda: sum(1 for c in json.loads(call(bport, "GET", "/v1/agent/checks")[2]).values()
                               if c["Status"] == "passing") == 1000, 60, "1,000 passing checks")
        time.sleep(3)
        c0, w0 = big.cpu_seconds(), time.monotonic()
        time.sleep(args.cpu_window)
        c1, w1 = big.cpu_seconds(), time.monotonic()
        out["cpu_pct"] = 100.0 * (c1 - c0) / (w1 - w0)
        out["rss_big_kb"] = big.status("VmRSS")
        print(f"RESULT agent-1000-http-checks cpu_pct={out['cpu_pct']:.2f} "
              f"rss_kb={out['rss_big_kb']} window_s={w1 - w0:.1f}")
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(work, ignore_errors=True)

    if args.markdown:
        consul_mb = 87.0
        rss_mb = out["rss_small_kb"] / 1024.0
        lines = [
            "### Client agent (`bench/agent_bench.py`; Consul client figure: HashiCorp's, not rerun here)",
            "",
            "| measure | taskmesh agent | peer / target | ratio | verdict |",
            "|---|---:|---:|---:|---|",
            f"| RSS, 10 services + 20 checks (10 TTL, 10 HTTP at 1 s) | {rss_mb:.1f} MB "
            f"(peak {out['hwm_small_kb'] / 1024.0:.1f} MB) | Consul client on ECS: 87 MB; target ≤ 10 MB "
            f"| {consul_mb / rss_mb:.1f}× smaller | {'met' if rss_mb <= 10 else 'NOT met'} |",
            f"| CPU, 1,000 HTTP checks at 1 s | {out['cpu_pct']:.2f} % of a core "
            f"(RSS {out['rss_big_kb'] / 1024.0:.1f} MB) | target ≤ 5 % | — | "
            f"{'met' if out['cpu_pct'] <= 5 else 'NOT met'} |",
            f"| check passing → server answers passing, p99 of {args.rounds} | "
            f"{out['lat_p99']:.2f} ms (p50 {out['lat_p50']:.2f}, max {out['lat_max']:.2f}) "
            f"| target p99 ≤ 20 ms | — | {'met' if out['lat_p99'] <= 20 else 'NOT met'} |",
            "",
            "The latency runs from just before the TTL update is sent to the agent until a blocking "
            "query parked on the server returns the new status: the agent's sync (one Raft write, "
            "fsync'd) plus the server's wake-up. The HTTP checks hit a second taskmesh server's "
            "/v1/status/leader, so the agent's CPU is its own.",
            "",
        ]
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
