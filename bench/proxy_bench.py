#!/usr/bin/env python3
"""bench/proxy_bench.py — the sidecar proxy's benchmark (issue 5), run by bench/run_all.

The path client → sidecar A → mutual TLS 1.3 (client certificate required) → sidecar B → HTTP
server (nginx, 1 worker, 100-byte body), in one run, on the same certificates, through two
`taskmesh proxy --concurrency 1`, two HAProxy 2.6 (nbthread 1) and two nginx stream (1 worker;
configurations in bench/proxy_peers/), and direct. A real `taskmesh server` and `taskmesh agent`
issue the leaves of `web` (A) and `api` (B); HAProxy and nginx read them from files.

Every path runs all along; each load figure is taken in --rounds rounds in which the paths take
turns in a rotating order, so that a slow spell of this shared machine falls on all alike:
  1. requests/s: wrk -t1 -c32 keep-alive, with the CPU the two sidecars used meanwhile;
  2. latency at a fixed rate, open loop: request i is sent at t0 + i/rate on a free one of 16
     keep-alive connections and timed from that *scheduled* instant, so a stall that delays
     later sends counts against the path (no coordinated omission);
  3. new connections/s: wrk with `Connection: close`, an mTLS handshake A → B per request:
     full handshakes (HAProxy `no-ssl-reuse`, nginx `proxy_ssl_session_reuse off`, taskmesh
     through a sidecar A' started with `--tls-resumption=false`), and with TLS session
     resumption on, each one's default.
Then 4. VmRSS of A and B (nginx: master + worker) idle and with 1,000 connections held open.
Pinning (--no-pin: none): sidecars on CPU 1, everything else on CPU 0. Prints RESULT lines and
the report (--json, --markdown: also to files). Every process is started here and stopped by
PID; every wait is bounded.
"""

import argparse
import gc
import json
import os
import resource
import select
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.request

HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
HOLD = 1000  # connections held open for the memory figure
PATHS = ("direct", "taskmesh", "haproxy", "nginx")
TICK = os.sysconf("SC_CLK_TCK")
BIN = {}  # wrk, nginx, haproxy: full paths (nginx and haproxy live in /usr/sbin)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def call(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def wait_until(pred, timeout, what):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except (OSError, ValueError) as e:  # not up yet
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q / 100))] if s else float("nan")


def proc_sum(pids, field):
    """Sum over `pids` of a /proc/PID/status field (kB), or of utime+stime (s) for "cpu"."""
    total = 0
    for pid in pids:
        if field == "cpu":
            with open(f"/proc/{pid}/stat") as f:
                total += sum(map(int, f.read().rsplit(")", 1)[1].split()[11:13])) / TICK
        else:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(x.split()[1]) for x in f if x.startswith(field + ":")), 0)
    return total


def cpu_busy(cpu):
    """Seconds CPU `cpu` has been busy (neither idle nor iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in next(x for x in f if x.startswith(f"cpu{cpu} ")).split()[1:9]]
    return (sum(v) - v[3] - v[4]) / TICK


class Proc:
    """A process we started: own session, log file, pinned to `cpus` from its first instruction."""

    def __init__(self, name, args, work, cpus):
        self.name, self.log = name, os.path.join(work, name + ".log")
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        with open(self.log, "wb") as f:
            self.p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, preexec_fn=pin,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    def check(self):
        if self.p.poll() is not None:
            with open(self.log, errors="replace") as f:
                raise RuntimeError(f"{self.name} exited with {self.p.returncode}: "
                                   + f.read()[-1000:])
        return True

    def pids(self):
        """The process and its children (nginx: master and worker)."""
        try:
            with open(f"/proc/{self.p.pid}/task/{self.p.pid}/children") as f:
                return [self.p.pid] + [int(x) for x in f.read().split()]
        except OSError:
            return [self.p.pid]

    def stop(self):
        """SIGTERM; after 10 s SIGKILL, and then SIGKILL to the children it had, by PID."""
        if self.p.poll() is not None:
            return
        children = self.pids()[1:]
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(10)
            return
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(10)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# ---- the processes ------------------------------------------------------------------------

class Bench:
    """Owns the temp dir and every process; stop_all() ends them by PID."""

    def __init__(self, args):
        self.args, self.procs = args, []
        self.work = tempfile.mkdtemp(prefix="taskmesh-proxy-bench-")
        pin = not args.no_pin and {0, 1} <= os.sched_getaffinity(0)
        self.client_cpus, self.proxy_cpus = ({0}, {1}) if pin else (None, None)
        if pin:
            os.sched_setaffinity(0, self.client_cpus)  # this script, and wrk after it

    def start(self, name, args, cpus=None):
        self.procs.append(Proc(name, args, self.work, cpus or self.client_cpus))
        return self.procs[-1]

    def file(self, name, text=None):
        path = os.path.join(self.work, name)
        if text is not None:
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(text)
        return path

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def control_plane(self):
        tm, sport, raft, self.agent = self.args.taskmesh, free_port(), free_port(), free_port()
        server = self.start("server", [tm, "server", "-data-dir", self.file("server"), "-bootstrap",
                                       "-node", "bench-server", "-http-addr", f"{HOST}:{sport}",
                                       "-server-port", str(raft)])
        wait_until(lambda: server.check() and call(sport, "PUT", "/v1/kv/ready", "1")[0] == 200,
                   60, "the taskmesh server")
        agent = self.start("agent", [tm, "agent", "-data-dir", self.file("agent"), "-node",
                                     "bench-node", "-http-addr", f"{HOST}:{self.agent}",
                                     "-advertise", HOST, "-retry-join", f"{HOST}:{sport}"])
        wait_until(lambda: agent.check() and call(self.agent, "GET", "/v1/agent/self")[0] == 200,
                   60, "the taskmesh agent")

    def certificates(self):
        """<svc>.crt/.key (nginx), <svc>.pem (cert + key, HAProxy), roots.pem, from the agent."""
        roots = json.loads(call(self.agent, "GET", "/v1/agent/connect/ca/roots")[1])["Roots"]
        self.file("roots.pem", "".join(r["RootCert"].strip() + "\n" for r in roots))
        chain = "".join(c.strip() + "\n" for r in roots if r.get("Active")
                        for c in r.get("IntermediateCerts") or [])
        for svc in ("web", "api"):
            leaf = json.loads(call(self.agent, "GET", f"/v1/agent/connect/ca/leaf/{svc}")[1])
            cert = leaf["CertPEM"].strip() + "\n" + chain
            self.file(f"{svc}.crt", cert)
            self.file(f"{svc}.key", leaf["PrivateKeyPEM"])
            self.file(f"{svc}.pem", cert + leaf["PrivateKeyPEM"])

    def config(self, template, **values):
        """bench/proxy_peers/<template> with its placeholders filled in; returns its path here."""
        with open(os.path.join(ROOT, "bench", "proxy_peers", template)) as f:
            text = string.Template(f.read()).substitute(
                values, host=HOST, dir=self.work, stream_module=STREAM_MODULE)
        return self.file(template, text)

    def nginx(self, template, cpus=None, **values):
        """An nginx in the foreground (daemon off: the master is our child), 1 worker."""
        run = self.file(template + ".run")  # its pid file, error log and temp files
        os.makedirs(run)
        conf = self.config(template, run=run, **values)
        return self.start(template.split(".")[0],
                          [BIN["nginx"], "-p", run, "-e", f"{run}/error.log", "-c", conf], cpus)

    def backend(self):
        port = free_port()
        self.nginx("nginx-backend.conf", port=port)
        wait_until(lambda: probe(port), 30, "the HTTP server")
        return port

    # Each *_pair starts sidecars A and B on the proxies' CPU and returns {port: A's listener,
    # resume_port: A's listener that resumes TLS sessions, procs: [A, B]}; taskmesh resumes on
    # every listener, so its full handshakes go through a third sidecar A' (full_port,
    # full_procs: [A', B]).

    def taskmesh_pair(self, backend):
        pa, pa_full, pb = free_port(), free_port(), free_port()
        for body in [  # as test/integration/mesh_test.py registers them
            {"Name": "api", "ID": "api-1", "Port": backend},
            {"Kind": "connect-proxy", "Name": "api-sidecar-proxy", "ID": "api-1-sidecar-proxy",
             "Address": HOST, "Port": pb,
             "Proxy": {"DestinationServiceName": "api", "DestinationServiceID": "api-1",
                       "LocalServicePort": backend, "Config": {"bind_address": HOST}}},
            {"Name": "web", "ID": "web-1", "Port": free_port()},
            {"Kind": "connect-proxy", "Name": "web-sidecar-proxy", "ID": "web-1-sidecar-proxy",
             "Address": HOST, "Port": free_port(),
             "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "web-1",
                       "LocalServicePort": 1, "Config": {"bind_address": HOST},
                       "Upstreams": [{"DestinationName": "api", "LocalBindPort": pa}]}},
            {"Kind": "connect-proxy", "Name": "web-sidecar-proxy", "ID": "web-1-full-proxy",
             "Address": HOST, "Port": free_port(),
             "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "web-1",
                       "LocalServicePort": 1, "Config": {"bind_address": HOST},
                       "Upstreams": [{"DestinationName": "api", "LocalBindPort": pa_full}]}}]:
            call(self.agent, "PUT", "/v1/agent/service/register", body)
        procs = []
        for side, proxy_id, resume in (("a", "web-1-sidecar-proxy", "true"),
                                       ("b", "api-1-sidecar-proxy", "true"),
                                       ("a-full", "web-1-full-proxy", "false")):
            admin = free_port()
            p = self.start(f"taskmesh-{side}", [
                self.args.taskmesh, "proxy", "-proxy-id", proxy_id, "-http-addr",
                f"{HOST}:{self.agent}", "-admin-addr", f"{HOST}:{admin}", "--concurrency", "1",
                f"--tls-resumption={resume}"], self.proxy_cpus)
            wait_until(lambda: p.check() and call(admin, "GET", "/ready")[0] == 200, 60,
                       f"{p.name} /ready")
            procs.append(p)
        return {"port": pa, "resume_port": pa, "full_port": pa_full, "procs": procs[:2],
                "full_procs": [procs[2], procs[1]]}

    def haproxy_pair(self, backend):
        pa, pa_resume, pb = free_port(), free_port(), free_port()
        a = self.config("haproxy-a.cfg", port=pa, resume_port=pa_resume, b_port=pb)
        b = self.config("haproxy-b.cfg", port=pb, backend_port=backend)
        procs = [self.start(f"haproxy-{n}", [BIN["haproxy"], "-db", "-f", cfg], self.proxy_cpus)
                 for n, cfg in (("a", a), ("b", b))]
        return {"port": pa, "resume_port": pa_resume, "procs": procs}

    def nginx_pair(self, backend):
        pa, pa_resume, pb = free_port(), free_port(), free_port()
        a = self.nginx("nginx-a.conf", self.proxy_cpus, port=pa, resume_port=pa_resume, b_port=pb)
        b = self.nginx("nginx-b.conf", self.proxy_cpus, port=pb, backend_port=backend)
        return {"port": pa, "resume_port": pa_resume, "procs": [a, b]}


# ---- load -----------------------------------------------------------------------------------

def response_done(buf):
    """True when `buf` holds a complete HTTP response (the server always sends Content-Length)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(buf) >= end + 4 + int(value)
    raise ValueError(f"response without Content-Length: {buf[:200]!r}")


def exchange(sock):
    """One request on a blocking keep-alive socket; raises unless the answer is a 200."""
    sock.sendall(REQUEST)
    buf = b""
    while not response_done(buf):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response ended")
        buf += chunk
    if b" 200 " not in buf[:16]:
        raise ConnectionError(f"answer {buf[:40]!r}")


def probe(port):
    with socket.create_connection((HOST, port), timeout=5) as s:
        exchange(s)
    return True


def wrk(port, seconds, close=False):
    """wrk -t1 -c32 through bench/load.lua (whose RESULT line every part of run_all uses)."""
    args = [BIN["wrk"], "-t1", "-c32", f"-d{seconds}s", "--timeout", "5s",
            "-s", os.path.join(ROOT, "bench", "load.lua")]
    args += ["-H", "Connection: close"] if close else []
    out = subprocess.run(args + [f"http://{HOST}:{port}/", "--", "get"], capture_output=True,
                         text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stderr.strip()[-300:]}")
    r = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    return {"requests": r["requests"], "duration_us": r["duration_us"],
            "errors": r["non2xx"] + r["sockerr"]}


def open_loop(port, rate, seconds, conns=16, warmup=0.5):
    """Latency at a fixed rate, from each request's scheduled send time (see the module doc)."""
    socks = []
    for _ in range(conns):  # each carries one request first, so every leg is established
        socks.append(socket.create_connection((HOST, port), timeout=5))
        socks[-1].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        exchange(socks[-1])
        socks[-1].setblocking(False)
    free, busy = list(socks), {}  # busy: socket -> [scheduled send time, response so far]
    lat, lag, errors, sent = [], [], 0, 0
    total, t0 = int(rate * (warmup + seconds)), time.perf_counter() + 0.01
    measured_from, deadline = t0 + warmup, t0 + warmup + seconds + 10
    gc.disable()  # no collector pauses inside the timed loop
    while (sent < total or busy) and time.perf_counter() < deadline:
        now = time.perf_counter()
        while free and sent < total and t0 + sent / rate <= now:  # every request now due
            due, s = t0 + sent / rate, free.pop()
            sent += 1
            try:
                s.send(REQUEST)
            except OSError:
                errors += 1
                continue
            busy[s] = [due, b""]
            if due >= measured_from:
                lag.append((now - due) * 1000)
        wait = max(0.0, t0 + sent / rate - now) if free and sent < total else 0.05
        for s in select.select(list(busy), [], [], wait)[0]:
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            entry = busy[s]
            entry[1] += chunk
            if chunk and not response_done(entry[1]):
                continue
            done = time.perf_counter()
            del busy[s]
            if not chunk or b" 200 " not in entry[1][:16]:
                errors += 1  # and the connection is dropped
                continue
            free.append(s)
            if entry[0] >= measured_from:
                lat.append((done - entry[0]) * 1000)
    gc.enable()
    for s in socks:
        s.close()
    return {"lat_ms": lat, "lag_ms": lag, "errors": errors + len(busy), "seconds": seconds}


class Quiet:
    """Before each run, waits (at most `budget` seconds in all) until both CPUs have been at
    least 80 % idle for 0.3 s: other developers' builds come in bursts on this machine."""

    def __init__(self, budget):
        self.left, self.waited = budget, 0.0

    def wait(self):
        start = time.monotonic()
        while self.left > 0:
            busy0, t0 = cpu_busy(0) + cpu_busy(1), time.monotonic()
            time.sleep(0.3)
            if cpu_busy(0) + cpu_busy(1) - busy0 <= 0.4 * (time.monotonic() - t0):
                break
            self.left -= time.monotonic() - t0
        self.waited += time.monotonic() - start


def per_proxy(path, field, procs="procs"):
    return [proc_sum(p.pids(), field) for p in path.get(procs, path["procs"])]


def run_rounds(paths, args):
    """The load figures: ({path: {figure: totals}}, seconds waited for quiet CPUs); a path
    whose run or sidecar fails gets "failed" and is left out from then on."""
    chunk = max(1, round(args.duration / args.rounds))
    runs = {"wrk": lambda p: wrk(p["port"], chunk),
            "open_loop": lambda p: open_loop(p["port"], args.rate, chunk),
            "conn": lambda p: wrk(p.get("full_port", p["port"]), chunk, close=True),
            "conn_resume": lambda p: wrk(p["resume_port"], chunk, close=True)}
    names, out, quiet = list(paths), {name: {} for name in paths}, Quiet(args.quiet_wait)
    for group in (["wrk"], ["open_loop"], ["conn", "conn_resume"]):  # a group shares rounds
        for n, figure in ((n, f) for n in range(args.rounds) for f in group):
            run = runs[figure]
            print(f"proxy_bench: {figure}, round {n + 1}", file=sys.stderr, flush=True)
            for name in names[n % len(names):] + names[:n % len(names)]:
                path, total = paths[name], out[name]
                if "failed" in total or (figure == "conn_resume" and "resume_port" not in path):
                    continue
                quiet.wait()
                try:
                    procs = "full_procs" if figure == "conn" else "procs"
                    cpu0, busy0 = sum(per_proxy(path, "cpu", procs)), cpu_busy(1)
                    t0 = time.monotonic()
                    r = run(path)
                    r.update(wall=time.monotonic() - t0, cpu1=cpu_busy(1) - busy0,
                             cpu=sum(per_proxy(path, "cpu", procs)) - cpu0)
                    for p in path.get(procs, path["procs"]):
                        p.check()
                except Exception as e:  # noqa: BLE001 - reported as the path's failure
                    dead = [f"{p.name} exited ({p.p.returncode})"
                            for p in path["procs"] + path.get("full_procs", [])
                            if p.p.poll() is not None]
                    total["failed"] = f"{figure}: " + " ".join((dead or [str(e)])[0].split())[:300]
                    continue
                acc = total.setdefault(figure, {})
                for k, v in r.items():  # numbers add up, latency lists are pooled
                    acc[k] = acc.get(k, type(v)()) + v
    return out, quiet.waited


def summary(t):
    """One figure's totals → rates, percentiles, and CPU in % of one core: the sidecars', and
    what other processes took of the sidecars' core meanwhile (noise on a shared machine)."""
    s = {"cpu_pct": 100 * t["cpu"] / t["wall"], "errors": int(t["errors"]),
         "cpu1_others_pct": max(0.0, 100 * (t["cpu1"] - t["cpu"]) / t["wall"])}
    if "lat_ms" in t:
        lat = t["lat_ms"]
        s.update(achieved=len(lat) / t["seconds"], p50_ms=percentile(lat, 50),
                 p99_ms=percentile(lat, 99), max_ms=max(lat, default=float("nan")),
                 client_lag_p99_ms=percentile(t["lag_ms"], 99))
    else:
        s["rps"] = t["requests"] / (t["duration_us"] / 1e6)
        s["rps_per_core"] = s["rps"] / (s["cpu_pct"] / 100) if s["cpu_pct"] >= 1 else None
    return s


def hold(path):
    """VmRSS and VmHWM of A and B with HOLD connections open, each having carried a request."""
    socks, failed = [], 0
    for _ in range(HOLD):
        try:
            socks.append(socket.create_connection((HOST, path["port"]), timeout=10))
            exchange(socks[-1])
        except (OSError, ValueError):
            failed += 1
    time.sleep(1)
    r = {"hold_failed": failed, "hold_rss_kb": per_proxy(path, "VmRSS"),
         "hwm_kb": per_proxy(path, "VmHWM")}
    for s in socks:
        s.close()
    return r


# ---- report -------------------------------------------------------------------------------

def errors(r):
    return int(r["wrk"]["errors"] + r["open_loop"]["errors"] + r["conn"]["errors"]
               + r.get("conn_resume", {}).get("errors", 0) + r.get("hold_failed", 0))


def markdown(results, args, pinned, ver):
    ok = {r["path"]: r for r in results if "failed" not in r}
    ha, tm = ok.get("haproxy"), ok.get("taskmesh")

    def ratios(r, key):  # "raw× / per-core×" against HAProxy
        out = [r[key][k] / ha[key][k] if ha and r[key][k] and ha[key][k] else None
               for k in ("rps", "rps_per_core")]
        return " / ".join("—" if x is None else f"{x:.2f}×" for x in out)

    def load(r, key):  # rate | sidecars' CPU (others) | rate per core | vs HAProxy
        f = r[key]
        cpu = (f"{f['cpu_pct']:.0f} %" + (f" ({f['cpu1_others_pct']:.0f} %)" if pinned else "")
               if f["rps_per_core"] else "—")
        per_core = f"{f['rps_per_core']:,.0f}" if f["rps_per_core"] else "—"
        return f"{f['rps']:,.0f} | {cpu} | {per_core} | {ratios(r, key)}"

    rows, lat, mem, noisy = [], [], [], []
    for r in results:
        if "failed" in r:
            rows.append(f"| {r['path']} | failed: {r['failed']} |" + " |" * 8)
            continue
        resume = "—"
        if "conn_resume" in r:
            rps, ha_rps = r["conn_resume"]["rps"], (ha or {}).get("conn_resume", {}).get("rps")
            resume = f"{rps:,.0f}" + (f" ({rps / ha_rps:.2f}×)" if ha_rps else "")
        rows.append(f"| {r['path']} | {load(r, 'wrk')} | {load(r, 'conn')} | {resume} |")
        o = r["open_loop"]
        lat.append(f"| {r['path']} | {o['p50_ms']:.2f} | {o['p99_ms']:.2f} | {o['max_ms']:.1f} | "
                   f"{o['achieved']:,.0f} | {errors(r)} |")
        if "idle_rss_kb" in r:
            mem.append(f"| {r['path']} | " + " | ".join(
                " / ".join(f"{kb / 1024:.1f}" for kb in r[k])
                for k in ("idle_rss_kb", "hold_rss_kb", "hwm_kb", "idle_anon_kb")) + " |")
            others = max(r[k]["cpu1_others_pct"] for k in ("wrk", "open_loop", "conn"))
            if pinned and others > 10:
                noisy.append(f"{others:.0f} % ({r['path']})")
    lines = [
        "### Sidecar proxy: client → A → mTLS 1.3 → B → HTTP server (`bench/proxy_bench.py`)",
        "",
        f"One run, same certificates (taskmesh's leaves of `web` and `api`), 1 worker per proxy: "
        f"{ver['haproxy']}; {ver['nginx']} (stream module); {ver['openssl']}. "
        + ("Every sidecar runs on CPU 1; wrk, the HTTP server (nginx, 1 worker, 100-byte body) "
           "and the taskmesh server and agent on CPU 0." if pinned else "No CPU pinning.")
        + f" Each figure: {args.rounds} rounds of {max(1, round(args.duration / args.rounds))} "
        "s per path, the paths taking turns in a rotating order, so that a slow spell of the "
        "shared machine falls on all alike; before each run the script waited for both CPUs to "
        f"be 80 % idle (at most {args.quiet_wait:.0f} s in all; it waited {args.waited:.0f} s).",
        "",
        "| path | req/s, 32 conns | sidecars' CPU (others) | req/s per sidecar core | vs HAProxy "
        "| new conns/s | sidecars' CPU (others) | conns/s per core | vs HAProxy "
        "| new conns/s, TLS resumption on (vs HAProxy) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Sidecars' CPU: A + B, % of one core; others: what other processes took of that core "
        "meanwhile. Per core: the rate divided by the sidecars' CPU. vs HAProxy: rate / per core. "
        "New conns/s: `Connection: close`, full handshakes (HAProxy `no-ssl-reuse`, nginx "
        "`proxy_ssl_session_reuse off`, taskmesh through a sidecar A' with "
        "`--tls-resumption=false`, whose CPU counts instead of A's); the last column: TLS "
        "session resumption on, each one's default."
        + (f" **Noisy run:** other processes took up to {', '.join(noisy)} of the sidecars' "
           "core during a run; compare the per-core columns." if noisy else ""),
        "",
        f"| latency at {args.rate:,} req/s, open loop (ms) | p50 | p99 | max | achieved req/s "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|",
        *lat,
        "",
        "16 keep-alive connections; each request timed from its scheduled send time (0.5 s of "
        "warm-up per round). errors: failed or non-200 requests in every run above, plus "
        f"failures among the {HOLD:,} held connections below.",
        "",
        f"| memory (MB, sidecar A / B) | idle VmRSS | VmRSS, {HOLD:,} connections held "
        "| peak (VmHWM) | idle RssAnon |",
        "|---|---:|---:|---:|---:|",
        *mem,
        "",
    ]
    if tm and ha:
        verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
        key = "rps_per_core" if noisy else "rps"  # on a noisy run, judge by CPU efficiency
        ratio = (tm["wrk"][key] or 0) / (ha["wrk"][key] or 1e-9)
        p99, ha_p99 = tm["open_loop"]["p99_ms"], ha["open_loop"]["p99_ms"]
        idle = max(tm["idle_rss_kb"]) / 1024
        lines += [
            "| target (issue 5) | figure | verdict |",
            "|---|---|---|",
            f"| requests/s ≥ 1.2× HAProxy's | {ratios(tm, 'wrk')} (raw / per core) "
            f"| {verdict(ratio >= 1.2)}{' by the per-core figure (noisy run)' if noisy else ''} |",
            f"| p99 ≤ HAProxy's at {args.rate:,} req/s | {p99:.2f} ms vs {ha_p99:.2f} ms "
            f"| {verdict(p99 <= ha_p99)}{' (noisy run)' if noisy else ''} |",
            f"| idle RSS ≤ 8 MB per proxy | {idle:.1f} MB (larger of A, B) "
            f"| {verdict(idle <= 8)} |",
            "",
        ]
    return "\n".join(lines)


def version(*cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except OSError:
        return os.path.basename(cmd[0]) + " (not installed)"
    return ((p.stdout + p.stderr).strip().splitlines() or ["?"])[0]


def check_tools(args, names):
    for tool in ["wrk", "nginx"] + (["haproxy"] if "haproxy" in names else []):
        BIN[tool] = shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if BIN[tool] is None:
            sys.exit(f"proxy_bench: {tool} not found (Debian package {tool}; scripts/setup)")
    if "nginx" in names and not os.path.exists(STREAM_MODULE):
        sys.exit(f"proxy_bench: {STREAM_MODULE} missing (Debian package libnginx-mod-stream)")
    if not os.access(args.taskmesh, os.X_OK):
        sys.exit(f"proxy_bench: {args.taskmesh} is not an executable")
    if "taskmesh" in names and "-proxy-id" not in subprocess.run(
            [args.taskmesh, "proxy", "--help"], capture_output=True, text=True, timeout=10).stdout:
        sys.exit(f"proxy_bench: {args.taskmesh} has no `proxy` subcommand")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < 4 * HOLD + 1000:
        sys.exit(f"proxy_bench: needs ulimit -n >= {4 * HOLD + 1000} (hard limit: {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the proxies inherit it


def measure(bench, names, args):
    """Starts every path, takes every figure; a path that fails becomes a row saying so."""
    results, paths = {name: {"path": name} for name in names}, {}
    backend = bench.backend()
    start = {"direct": lambda port: {"port": port, "procs": []}, "taskmesh": bench.taskmesh_pair,
             "haproxy": bench.haproxy_pair, "nginx": bench.nginx_pair}
    for name in names:
        try:
            paths[name] = start[name](backend)
            wait_until(lambda: probe(paths[name]["port"]), 30, f"a request through {name}")
        except Exception as e:  # noqa: BLE001
            results[name]["failed"] = "start: " + " ".join(str(e).split())[:300]
            paths.pop(name, None)
    time.sleep(1)
    for name, path in paths.items():
        if path["procs"]:
            results[name].update(idle_rss_kb=per_proxy(path, "VmRSS"),
                                 idle_anon_kb=per_proxy(path, "RssAnon"))
    totals_by_path, args.waited = run_rounds(paths, args)
    for name, totals in totals_by_path.items():
        results[name].update({k: v if k == "failed" else summary(v) for k, v in totals.items()})
    for name, path in paths.items():  # one path at a time
        if path["procs"] and "failed" not in results[name]:
            results[name].update(hold(path))
        for p in path["procs"]:
            p.stop()
    return list(results.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--taskmesh", default=os.path.join(ROOT, "build", "src", "main", "taskmesh"))
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per figure")
    ap.add_argument("--rounds", type=int, default=5, help="turns per figure (at most duration)")
    ap.add_argument("--rate", type=int, default=2000, help="open-loop requests/s")
    ap.add_argument("--paths", default=",".join(PATHS), help="a subset of " + ",".join(PATHS))
    ap.add_argument("--no-pin", action="store_true", help="no CPU pinning")
    ap.add_argument("--quiet-wait", type=float, default=120,
                    help="seconds, in all, to wait for idle CPUs before runs")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--markdown", help="write the report section here")
    args = ap.parse_args()
    names = args.paths.split(",")
    args.rounds = min(args.rounds, args.duration)
    if not set(names) <= set(PATHS) or not 1 <= args.duration <= 60 or args.rate < 1 \
            or args.rounds < 1:
        ap.error(f"--paths: a subset of {','.join(PATHS)}; --duration: 1..60; --rate, --rounds: "
                 ">= 1")
    check_tools(args, names)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops all

    bench = Bench(args)
    try:
        bench.control_plane()
        bench.certificates()
        results = measure(bench, names, args)
    finally:
        bench.stop_all()

    for r in results:  # the headline figures; --json has them all
        print(f"RESULT proxy.{r['path']} " + ("failed=1" if "failed" in r else
              f"rps={r['wrk']['rps']:.0f} p99_ms={r['open_loop']['p99_ms']:.2f} "
              f"conns_per_s={r['conn']['rps']:.0f} errors={errors(r)}"))
    pinned = bench.client_cpus is not None
    ver = {"haproxy": version(BIN.get("haproxy", "haproxy"), "-v"),
           "nginx": version(BIN["nginx"], "-v"), "openssl": version("openssl", "version")}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"duration_s": args.duration, "rounds": args.rounds, "rate": args.rate,
                       "waited_for_quiet_s": args.waited,
                       "pinned": pinned, "versions": ver, "results": results}, f, indent=1)
    md = markdown(results, args, pinned, ver)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    print(md)
    return 0  # a failed path is a row of the report, not a failed benchmark


if __name__ == "__main__":
    sys.exit(main())
