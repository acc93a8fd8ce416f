"""The whole Connect path with real processes on loopback: a server, two agents, two
`taskmesh proxy` sidecars and an HTTP app. Requests go app → upstream listener of web's proxy →
mutual TLS → api's proxy → the api app; intentions written to the server allow or deny them."""

import http.client
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import unittest
import urllib.request

from harness import HOST, Agent, Server, binary, free_port, stop_process, wait_until


class App(http.server.ThreadingHTTPServer):
    """The api service: answers every GET with its name and a counter."""

    daemon_threads = True

    def __init__(self):
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(h):  # noqa: N805
                self.hits += 1
                body = f"api says hello #{self.hits}\n".encode()
                h.send_response(200)
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)

            def log_message(h, *args):  # noqa: N805
                pass

        super().__init__((HOST, 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Proxy:
    def __init__(self, proxy_id, agent_port, root):
        self.admin_port = free_port()
        self.log = os.path.join(root, proxy_id + ".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [binary(), "proxy", "-proxy-id", proxy_id, "-http-addr", f"{HOST}:{agent_port}",
                 "-admin-addr", f"{HOST}:{self.admin_port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def admin(self, path):
        with urllib.request.urlopen(f"http://{HOST}:{self.admin_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"proxy exited {self.proc.returncode}: {open(self.log).read()[-2000:]}")
        try:
            return self.admin("/ready")[0] == 200
        except OSError:
            return False

    def stat(self, name):
        total = 0
        for line in self.admin("/stats")[1].splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self):
        return stop_process(self.proc, 20)


def get(port, timeout=5):
    """One request on a fresh connection; the body, or None when the mesh refused it."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=timeout) as r:
            return r.read().decode()
    except (OSError, http.client.HTTPException):
        return None


class MeshTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["-bootstrap"]).start()
        join = [f"{HOST}:{cls.server.http_port}"]
        cls.agent_web = Agent("node-web", servers=join).start()
        cls.agent_api = Agent("node-api", servers=join).start()
        cls.app = App()
        cls.public_port = free_port()
        cls.upstream_port = free_port()
        cls.register(cls.agent_api, {"Name": "api", "ID": "api-1", "Port": cls.app.port})
        cls.register(cls.agent_api, {
            "Kind": "connect-proxy", "Name": "api-sidecar-proxy", "ID": "api-1-sidecar-proxy",
            "Address": HOST, "Port": cls.public_port,
            "Proxy": {"DestinationServiceName": "api", "DestinationServiceID": "api-1",
                      "LocalServicePort": cls.app.port, "Config": {"bind_address": HOST}}})
        cls.register(cls.agent_web, {"Name": "web", "ID": "web-1", "Port": free_port()})
        cls.register(cls.agent_web, {
            "Kind": "connect-proxy", "Name": "web-sidecar-proxy", "ID": "web-1-sidecar-proxy",
            "Address": HOST, "Port": free_port(),
            "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "web-1",
                      "LocalServicePort": 1, "Config": {"bind_address": HOST},
                      "Upstreams": [{"DestinationName": "api", "LocalBindPort": cls.upstream_port}]}})
        cls.proxy_api = Proxy("api-1-sidecar-proxy", cls.agent_api.http_port, cls.agent_api.root)
        cls.proxy_web = Proxy("web-1-sidecar-proxy", cls.agent_web.http_port, cls.agent_web.root)
        wait_until(cls.proxy_api.ready, 60, message="api's proxy to be ready")
        wait_until(cls.proxy_web.ready, 60, message="web's proxy to be ready")

    @classmethod
    def tearDownClass(cls):
        for p in (cls.proxy_web, cls.proxy_api):
            p.stop()
        cls.app.shutdown()
        for a in (cls.agent_web, cls.agent_api):
            a.cleanup()
        cls.server.cleanup()

    @staticmethod
    def register(agent, body):
        r = agent.put("/v1/agent/service/register", body=json.dumps(body))
        assert r.status == 200, r.text

    def intention(self, action):
        r = self.server.put("/v1/connect/intentions/exact?source=web&destination=api",
                            body=json.dumps({"Action": action}))
        self.assertEqual(r.status, 200, r.text)

    def test_request_through_the_mesh_and_intentions(self):
        body = wait_until(lambda: get(self.upstream_port), 30, message="a request through the mesh")
        self.assertIn("api says hello", body)
        for _ in range(20):
            self.assertIn("api says hello", get(self.upstream_port))

        # A connection opened before the deny keeps working; new ones are refused within 1 s.
        held = socket.create_connection((HOST, self.upstream_port), timeout=5)
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", held.recv(4096))
        denied_before = self.proxy_api.stat("taskmesh_proxy_denied_total")
        start = time.monotonic()
        self.intention("deny")
        wait_until(lambda: get(self.upstream_port, timeout=2) is None, 5, interval=0.01,
                   message="the deny to take effect")
        took = time.monotonic() - start
        self.assertLess(took, 1.0, f"deny took {took:.3f} s")
        self.assertIsNone(get(self.upstream_port))
        self.assertGreater(self.proxy_api.stat("taskmesh_proxy_denied_total"), denied_before)
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", held.recv(4096))
        held.close()

        self.intention("allow")
        wait_until(lambda: get(self.upstream_port), 5, interval=0.01, message="the allow")
        self.server.delete("/v1/connect/intentions/exact?source=web&destination=api")

    def test_admin_endpoints(self):
        status, dump = self.proxy_web.admin("/config_dump")
        self.assertEqual(status, 200)
        self.assertNotIn("PRIVATE KEY", dump)
        self.assertIn("web-1-sidecar-proxy", dump)
        status, clusters = self.proxy_web.admin("/clusters")
        self.assertEqual(status, 200)
        self.assertIn("api", clusters)
        status, stats = self.proxy_web.admin("/stats")
        self.assertEqual(status, 200)
        self.assertIn("# TYPE", stats)


if __name__ == "__main__":
    unittest.main()
