"""`taskmesh proxy` as a process: the real binary against a fake agent (python http.server
serving snapshot JSON with blocking-query semantics) and an echo app, with certificates made by
the `openssl` CLI.

The proxy fronts service "api" and has one upstream, "api" itself, whose only endpoint is its
own public listener: a byte sent to the upstream listener crosses mTLS into the public listener
and reaches the echo app, so one process exercises both directions.
"""

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

from harness import HOST, STOP_TIMEOUT, binary, free_port, request, stop_process, wait_until

TRUST_DOMAIN = "11111111-2222-3333-4444-555555555555.consul"
PROXY_ID = "api-1-sidecar-proxy"


def spiffe(service):
    return f"spiffe://{TRUST_DOMAIN}/ns/default/dc/dc1/svc/{service}"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory):
    """A root CA and an "api" leaf (EC P-256, SPIFFE URI SANs). Returns PEM texts."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "root.key", "-out", "root.pem", "-days", "30",
            "-subj", "/CN=Test Root",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-addext", f"subjectAltName=URI:spiffe://{TRUST_DOMAIN}", cwd=directory)
    with open(os.path.join(directory, "leaf.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement\n"
                "extendedKeyUsage=clientAuth,serverAuth\n"
                f"subjectAltName=URI:{spiffe('api')}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "api.key", "-out", "api.csr", "-subj", "/CN=api", cwd=directory)
    openssl("x509", "-req", "-in", "api.csr", "-CA", "root.pem", "-CAkey", "root.key",
            "-set_serial", "7", "-days", "3", "-extfile", "leaf.ext", "-out", "api.pem",
            cwd=directory)

    def read(name):
        with open(os.path.join(directory, name)) as f:
            return f.read()

    return read("root.pem"), read("api.pem"), read("api.key")


class FakeAgent:
    """GET /v1/agent/connect/proxy/<id>?index=N&wait=Ds, held until the index moves."""

    def __init__(self):
        self.cond = threading.Condition()
        self.index = 0
        self.body = None
        self.tokens = []
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                if url.path != f"/v1/agent/connect/proxy/{PROXY_ID}":
                    self.send_error(404)
                    return
                agent.tokens.append(self.headers.get("X-Consul-Token"))
                since = int(query.get("index", ["0"])[0])
                wait = float(query.get("wait", ["300s"])[0].rstrip("s"))
                deadline = time.monotonic() + min(wait, 30)
                with agent.cond:
                    while agent.index <= since and agent.body is not None:
                        left = deadline - time.monotonic()
                        if left <= 0 or agent.closed:
                            break
                        agent.cond.wait(left)
                    index, body = agent.index, agent.body
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Consul-Index", str(index))
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except ConnectionError:
                    pass  # the proxy exited while its poll was held

        self.closed = False
        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, snapshot):
        with self.cond:
            self.index += 1
            snapshot = dict(snapshot, Index=self.index)
            self.body = json.dumps(snapshot)
            self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


class EchoServer:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def close(self):
        self.sock.close()


def echo_through(port, payload, timeout=10):
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        return exchange(s, payload)


def exchange(s, payload):
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got == payload


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        binary()
        cls.dir = tempfile.mkdtemp(prefix="taskmesh-proxy-it-")
        cls.root, cls.cert, cls.key = make_pki(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.agent = FakeAgent()
        self.echo = EchoServer()
        self.public_port = free_port()
        self.upstream_port = free_port()
        self.admin_port = free_port()
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            stop_process(p, STOP_TIMEOUT)
            if p.stderr:
                p.stderr.close()
        self.agent.close()
        self.echo.close()

    def snapshot(self):
        return {
            "ProxyID": PROXY_ID, "Service": "api", "ServiceID": "api-1", "Datacenter": "dc1",
            "TrustDomain": TRUST_DOMAIN,
            "PublicListener": {"Address": HOST, "Port": self.public_port},
            "LocalApp": {"Address": HOST, "Port": self.echo.port, "ConnectTimeoutMs": 2000},
            "Upstreams": [{
                "DestinationName": "api", "LocalBindAddress": HOST,
                "LocalBindPort": self.upstream_port, "ConnectTimeoutMs": 2000,
                "SpiffeID": spiffe("api"),
                "Endpoints": [{"Address": HOST, "Port": self.public_port, "Node": "n1",
                               "ServiceID": "api-1-sidecar-proxy"}]}],
            "Leaf": {"CertPEM": self.cert, "PrivateKeyPEM": self.key,
                     "ValidBefore": "2030-01-01T00:00:00Z"},
            "Roots": [self.root], "DefaultAllow": True, "Intentions": [],
        }

    def write_bootstrap(self, content):
        path = os.path.join(self.dir, f"bootstrap-{self._testMethodName}-{len(self.procs)}.json")
        with open(path, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        return path

    def bootstrap(self):
        # The file mesh-init writes, extra keys included.
        return {"proxyId": PROXY_ID, "serviceId": "api-1", "serviceName": "api",
                "agentHttpAddr": f"{HOST}:{self.agent.port}", "token": "tok-123",
                "adminAddr": f"{HOST}:{self.admin_port}", "publicListenerPort": self.public_port,
                "localServicePort": self.echo.port,
                "upstreams": [{"destinationName": "api", "localBindPort": self.upstream_port}]}

    def start_proxy(self, *extra):
        path = self.write_bootstrap(self.bootstrap())
        proc = subprocess.Popen([binary(), "proxy", "-c", path, *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def admin(self, path):
        return request(self.admin_port, "GET", path, timeout=5)

    def wait_ready(self, proc):
        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"proxy exited with {proc.returncode}: "
                                     f"{proc.stderr.read().decode(errors='replace')}")
            return self.admin("/ready").status == 200
        wait_until(ready, 30, message="/ready")

    def test_admin_endpoints(self):
        self.agent.publish(self.snapshot())
        proc = self.start_proxy("-concurrency", "2")
        self.wait_ready(proc)
        r = self.admin("/ready")
        self.assertEqual(r.text, "LIVE")
        self.assertTrue(echo_through(self.upstream_port, b"hello through mTLS"))

        stats = self.admin("/stats")
        self.assertEqual(stats.status, 200)
        self.assertTrue(stats.header("Content-Type").startswith("text/plain; version=0.0.4"))
        line = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"\n]*"(,[a-z_]+="[^"\n]*")*\})? [0-9]+$')
        families = set()
        for text in stats.text.splitlines():
            if text.startswith("# TYPE "):
                name, kind = text.split()[2:4]
                self.assertNotIn(name, families)
                self.assertIn(kind, ("counter", "gauge"))
                families.add(name)
            elif not text.startswith("# HELP "):
                self.assertRegex(text, line)
        self.assertIn('taskmesh_proxy_downstream_cx_total{listener="upstream:api"} 1', stats.text)
        self.assertIn('taskmesh_proxy_downstream_cx_total{listener="public"} 1', stats.text)
        self.assertIn("taskmesh_proxy_workers 2", stats.text)
        self.assertIn("taskmesh_proxy_ready 1", stats.text)

        dump = self.admin("/config_dump")
        self.assertEqual(dump.status, 200)
        self.assertNotIn("PRIVATE KEY", dump.text)
        self.assertNotIn("PrivateKeyPEM", dump.text)
        self.assertEqual(dump.json()["Service"], "api")
        self.assertEqual(dump.json()["Leaf"]["CertPEM"], self.cert)

        clusters = self.admin("/clusters").json()
        self.assertEqual(len(clusters), 1)
        self.assertEqual(clusters[0]["Name"], "api")
        self.assertEqual(clusters[0]["Endpoints"][0]["Port"], self.public_port)
        self.assertEqual(clusters[0]["Endpoints"][0]["State"], "healthy")
        self.assertEqual(self.admin("/nope").status, 404)
        self.assertIn("tok-123", self.agent.tokens)

    def test_not_ready_without_a_snapshot(self):
        proc = self.start_proxy()  # the agent has nothing for this proxy yet
        wait_until(lambda: self.admin("/ready").status == 503, 30, message="/ready 503")
        self.assertIsNone(proc.poll())
        self.agent.publish(self.snapshot())
        self.wait_ready(proc)

    def test_bad_bootstrap_exits_1_naming_the_problem(self):
        cases = [
            ("[1, 2]", "expected a JSON object"),
            ("{\"proxyId\": ", "invalid JSON"),
            (json.dumps({"agentHttpAddr": "127.0.0.1:8500"}), "proxyId: is required"),
            (json.dumps({"proxyId": "p"}), "agentHttpAddr: is required"),
            (json.dumps({"proxyId": "p", "agentHttpAddr": "nope"}), "agentHttpAddr"),
        ]
        for content, message in cases:
            with self.subTest(message=message):
                path = self.write_bootstrap(content)
                r = subprocess.run([binary(), "proxy", "-c", path], capture_output=True,
                                   timeout=30)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(message, r.stderr.decode())
                self.assertIn(path, r.stderr.decode())
        r = subprocess.run([binary(), "proxy", "-c", "/nonexistent/bootstrap.json"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/bootstrap.json", r.stderr.decode())
        r = subprocess.run([binary(), "proxy", "-proxy-id", "p", "-concurrency", "0"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--concurrency", r.stderr.decode())

    def test_sigterm_drains_open_connections_then_exits_0(self):
        self.agent.publish(self.snapshot())
        proc = self.start_proxy("-drain-timeout", "30s")
        self.wait_ready(proc)
        conn = socket.create_connection((HOST, self.upstream_port), timeout=10)
        try:
            self.assertTrue(exchange(conn, b"before"))
            proc.send_signal(signal.SIGTERM)
            wait_until(lambda: self.admin("/ready").status == 503, 10, message="/ready 503")
            # Listeners close (each worker closes its own, so shortly after /ready turns 503);
            # the open connection keeps working.
            def refused():
                try:
                    socket.create_connection((HOST, self.upstream_port), timeout=2).close()
                    return False
                except OSError:
                    return True
            wait_until(refused, 10, message="the upstream listener to close")
            self.assertTrue(exchange(conn, b"during the drain"))
            self.assertIsNone(proc.poll())
        finally:
            conn.close()
        self.assertEqual(proc.wait(STOP_TIMEOUT), 0)
        self.assertIn("drained", proc.stderr.read().decode())


if __name__ == "__main__":
    unittest.main()
