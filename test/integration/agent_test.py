"""`taskmesh agent` against a real `taskmesh server`: registration through the local agent API,
check status reaching the servers, forwarding, anti-entropy across server restarts and drift,
node death (serfHealth critical, then reaped), leave on terminate, restart with state, and
python3-consul driving the agent.

The server runs with -node-failure-timeout 2s and -reconnect-timeout 3s so that liveness is
observable within a test; the agents with -sync-interval 1s so that drift repair is.
"""

import http.server
import json
import os
import socket
import stat
import subprocess
import tempfile
import threading
import time
import unittest

import consul

from harness import HOST, Agent, ServerTestCase, binary, wait_until

FAILURE_TIMEOUT = 2.0
RECONNECT_TIMEOUT = 3.0


class AgentTestCase(ServerTestCase):
    server_args = ("-node-failure-timeout", f"{FAILURE_TIMEOUT}s",
                   "-reconnect-timeout", f"{RECONNECT_TIMEOUT}s")

    def setUp(self):
        self.agents = []

    def tearDown(self):
        for a in self.agents:
            a.cleanup()

    def agent(self, suffix="", extra_args=(), **kw):
        node = f"{self._testMethodName}{suffix}".replace("_", "-")
        a = Agent(node, servers=[f"{HOST}:{self.server.http_port}"] if "join_file" not in kw else [],
                  extra_args=["-sync-interval", "1s", *extra_args], **kw)
        self.agents.append(a)
        return a.start()

    def server_checks(self, node):
        r = self.server.get(f"/v1/health/node/{node}")
        self.assertEqual(r.status, 200, r)
        return {c["CheckID"]: c for c in r.json()}

    def server_services(self, node):
        r = self.server.get(f"/v1/catalog/node-services/{node}")
        if r.status == 404 or r.json() is None:
            return {}
        return {s["ID"]: s for s in r.json()["Services"]}

    def wait_check(self, node, check_id, status, timeout=10):
        return wait_until(
            lambda: self.server_checks(node).get(check_id, {}).get("Status") == status,
            timeout, message=f"{check_id} on {node} to be {status} on the server")

    # ---------------------------------------------------------------------------------------

    def test_registration_reaches_the_server(self):
        a = self.agent()
        r = a.put("/v1/agent/service/register", {
            "Name": "web", "ID": "web-1", "Port": 8080, "Tags": ["v1"], "Meta": {"k": "v"},
            "Check": {"TTL": "30s"}})
        self.assertEqual((r.status, r.body), (200, b""), r)
        services = wait_until(lambda: self.server_services(a.node).get("web-1"), 10,
                              message="web-1 in the catalog")
        self.assertEqual(services["Service"], "web")
        self.assertEqual(services["Tags"], ["v1"])
        self.assertEqual(services["Meta"], {"k": "v"})
        checks = self.server_checks(a.node)
        self.assertEqual(checks["service:web-1"]["Status"], "critical")  # new checks start critical
        self.wait_check(a.node, "serfHealth", "passing")  # added by the leader on a heartbeat
        # The node carries the advertised address.
        node = self.server.get(f"/v1/catalog/node/{a.node}").json()["Node"]
        self.assertEqual(node["Address"], HOST)

    def test_check_status_reaches_the_server_and_passing_filter(self):
        a = self.agent()
        a.put("/v1/agent/service/register", {"Name": "api", "Port": 9000,
                                              "Check": {"CheckID": "api-ttl", "TTL": "30s"}})
        self.wait_check(a.node, "api-ttl", "critical")
        r = self.server.get("/v1/health/service/api?passing")
        self.assertEqual([e for e in r.json() if e["Node"]["Node"] == a.node], [])
        self.assertEqual(a.put("/v1/agent/check/pass/api-ttl?note=fine").status, 200)
        self.wait_check(a.node, "api-ttl", "passing")
        self.assertEqual(self.server_checks(a.node)["api-ttl"]["Output"], "fine")
        r = self.server.get("/v1/health/service/api?passing")
        self.assertEqual([e["Node"]["Node"] for e in r.json()], [a.node])
        self.assertEqual(a.put("/v1/agent/check/update/api-ttl",
                               {"Status": "warning", "Output": "slow"}).status, 200)
        self.wait_check(a.node, "api-ttl", "warning")
        self.assertEqual(a.put("/v1/agent/check/fail/api-ttl").status, 200)
        self.wait_check(a.node, "api-ttl", "critical")

    def test_service_health_command_follows_the_local_agent(self):
        a = self.agent()

        def health(name):
            r = subprocess.run([binary(), "service-health", name, "-http-addr",
                                f"{HOST}:{a.http_port}"], capture_output=True, text=True,
                               timeout=30)
            return r.returncode, r.stdout + r.stderr

        code, out = health("api")
        self.assertEqual(code, 1, out)  # not registered: 404
        a.put("/v1/agent/service/register", {"Name": "api", "Port": 9000,
                                              "Check": {"CheckID": "api-ttl", "TTL": "30s"}})
        code, out = health("api")
        self.assertEqual((code, out.strip()), (1, "api critical"))
        a.put("/v1/agent/check/pass/api-ttl")
        code, out = health("api")
        self.assertEqual((code, out.strip()), (0, "api passing"))
        a.put("/v1/agent/check/update/api-ttl", {"Status": "warning"})
        self.assertEqual(health("api")[0], 1)
        bad = subprocess.run([binary(), "service-health", "api", "-http-addr", "https://x:1"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("-http-addr", bad.stderr + bad.stdout)

    def test_http_check_runs_at_once_not_after_an_interval(self):
        a = self.agent()
        url = f"http://{HOST}:{self.server.http_port}/v1/status/leader"
        a.put("/v1/agent/service/register", {
            "Name": "probe", "Port": 1, "Check": {"HTTP": url, "Interval": "60s"}})
        # With a 60 s interval, passing within 10 s means the first run was immediate.
        self.wait_check(a.node, "service:probe", "passing", timeout=10)
        out = self.server_checks(a.node)["service:probe"]["Output"]
        self.assertIn("HTTP GET " + url + ": 200", out)

    def test_sidecar_expansion_and_agent_endpoints(self):
        a = self.agent()
        r = a.put("/v1/agent/service/register", {
            "Name": "web", "ID": "web-1", "Port": 8080,
            "Check": {"CheckID": "web-ttl", "TTL": "30s"},
            "Connect": {"SidecarService": {"Proxy": {"Upstreams": [
                {"DestinationName": "db", "LocalBindPort": 9191}]}}}})
        self.assertEqual(r.status, 200, r)
        services = a.get("/v1/agent/services").json()
        self.assertEqual(sorted(services), ["web-1", "web-1-sidecar-proxy"])
        sidecar = a.get("/v1/agent/service/web-1-sidecar-proxy")
        self.assertEqual(sidecar.status, 200)
        body = sidecar.json()
        self.assertEqual(body["Kind"], "connect-proxy")
        self.assertEqual(body["Service"], "web-sidecar-proxy")
        self.assertTrue(21000 <= body["Port"] <= 21255)
        self.assertEqual(body["Proxy"]["DestinationServiceName"], "web")
        self.assertEqual(body["Proxy"]["DestinationServiceID"], "web-1")
        self.assertEqual(body["Proxy"]["LocalServicePort"], 8080)
        self.assertEqual(body["Proxy"]["Upstreams"][0]["DestinationName"], "db")
        self.assertEqual(body["ContentHash"], sidecar.header("X-Consul-ContentHash"))
        self.assertEqual(a.get("/v1/agent/service/nope").status, 404)

        # Local aggregated health: critical (503), then passing (200).
        r = a.get("/v1/agent/health/service/id/web-1?format=text")
        self.assertEqual((r.status, r.text), (503, "critical"))
        a.put("/v1/agent/check/pass/web-ttl")
        r = a.get("/v1/agent/health/service/name/web?format=text")
        self.assertEqual((r.status, r.text), (200, "passing"))
        # The sidecar's alias check follows the service at once.
        checks = a.get("/v1/agent/checks").json()
        alias = [c for c in checks.values() if c["Name"] == "Connect Sidecar Aliasing web-1"]
        self.assertEqual(len(alias), 1)
        wait_until(lambda: a.get("/v1/agent/checks").json()[alias[0]["CheckID"]]["Status"]
                   == "passing", 5, message="alias check to follow")

        # Hash blocking: a read with the current hash waits until the definition changes.
        h = sidecar.header("X-Consul-ContentHash")
        t0 = time.monotonic()
        r = a.get(f"/v1/agent/service/web-1-sidecar-proxy?hash={h}&wait=300ms")
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        self.assertEqual(r.header("X-Consul-ContentHash"), h)

        wait_until(lambda: "web-1-sidecar-proxy" in self.server_services(a.node), 10,
                   message="sidecar in the catalog")
        # Re-registering without the sidecar removes it.
        a.put("/v1/agent/service/register", {"Name": "web", "ID": "web-1", "Port": 8080})
        self.assertEqual(sorted(a.get("/v1/agent/services").json()), ["web-1"])
        wait_until(lambda: "web-1-sidecar-proxy" not in self.server_services(a.node), 10,
                   message="sidecar gone from the catalog")

    def test_catalog_health_and_kv_are_forwarded(self):
        a = self.agent()
        self.assertEqual(a.put("/v1/kv/agent-fwd/x", b"1").body, b"true")
        self.assertEqual(self.server.kv_value("agent-fwd/x"), b"1")
        r = a.get("/v1/kv/agent-fwd/x")
        self.assertEqual(r.status, 200)
        index = r.index
        self.assertIsNotNone(index)
        self.assertEqual(a.get("/v1/kv/agent-fwd/missing").status, 404)
        self.assertEqual(a.get("/v1/status/leader").status, 200)
        # A blocking query through the agent wakes on a change made at the server.
        from harness import run_thread
        t = run_thread(a.get, f"/v1/kv/agent-fwd/x?index={index}&wait=20s")
        time.sleep(0.3)
        self.server.kv_put("agent-fwd/x", b"2")
        t.join(15)
        self.assertFalse(t.is_alive())
        self.assertEqual(t.result.status, 200)
        self.assertGreater(t.result.index, index)
        wait_until(lambda: a.node in [m["Name"] for m in a.get("/v1/agent/members").json()], 10,
                   message="the agent among the members")

    def test_bad_input_is_named(self):
        a = self.agent()
        cases = [
            ({"Port": 1}, "Missing service name"),
            ({"Name": "x", "Check": {"TTL": "nope"}}, "invalid duration"),
            ({"Name": "x", "Check": {"TTL": "10s", "Status": "fluffy"}}, "fluffy"),
            ({"Name": "x", "Check": {"HTTP": "http://127.0.0.1:1/"}}, "Interval"),
            ({"Name": "x", "Check": {"Args": ["/bin/true"], "Interval": "1s"}}, "Scripts are disabled"),
            ({"Name": "x", "Port": "80"}, "Port"),
            ({"Name": "x", "Connect": {"SidecarService": {"ID": "y"}}}, "SidecarService"),
        ]
        for body, needle in cases:
            r = a.put("/v1/agent/service/register", body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertIn(needle, r.text, body)
        r = a.put("/v1/agent/service/register", b"{not json")
        self.assertEqual(r.status, 400)
        self.assertEqual(a.put("/v1/agent/check/pass/no-such-check").status, 404)
        self.assertEqual(a.get("/v1/agent/service/register").status, 405)
        r = a.put("/v1/agent/check/register", {"Name": "c", "TTL": "1s", "ServiceID": "nope"})
        self.assertEqual(r.status, 400)
        self.assertIn("nope", r.text)
        r = a.put("/v1/agent/service/maintenance/nope?enable=true")
        self.assertEqual(r.status, 404)
        self.assertEqual(a.get("/v1/agent/self").status, 200)  # still serving

    def test_maintenance_mode(self):
        a = self.agent()
        a.put("/v1/agent/service/register", {"Name": "m", "Port": 1, "Check": {"TTL": "30s", "Status": "passing"}})
        self.assertEqual(a.put("/v1/agent/service/maintenance/m").status, 400)
        self.assertEqual(a.put("/v1/agent/service/maintenance/m?enable=true&reason=deploy").status, 200)
        self.wait_check(a.node, "_service_maintenance:m", "critical")
        self.assertEqual(self.server_checks(a.node)["_service_maintenance:m"]["Notes"], "deploy")
        self.assertEqual(a.put("/v1/agent/service/maintenance/m?enable=false").status, 200)
        wait_until(lambda: "_service_maintenance:m" not in self.server_checks(a.node), 10,
                   message="maintenance check removed")

    def test_server_restart_loses_nothing(self):
        a = self.agent()
        a.put("/v1/agent/service/register", {"Name": "before", "Port": 1, "Check": {"TTL": "60s"}})
        wait_until(lambda: "before" in self.server_services(a.node), 10, message="before")
        self.server.kill9()
        # Changes made while the servers are down are kept by the agent...
        self.assertEqual(a.put("/v1/agent/service/register",
                               {"Name": "during", "Port": 2, "Check": {"TTL": "60s"}}).status, 200)
        self.assertEqual(a.put("/v1/agent/check/pass/service:before").status, 200)
        self.assertEqual(a.put("/v1/agent/service/deregister/nothing-here").status, 200)
        time.sleep(1.0)  # let the agent fail and back off at least once
        self.server.start()
        # ...and reach the servers once they are back.
        wait_until(lambda: {"before", "during"} <= set(self.server_services(a.node)), 20,
                   message="both services after the restart")
        self.wait_check(a.node, "service:before", "passing", timeout=20)

    def test_drift_on_the_servers_is_repaired(self):
        a = self.agent()
        a.put("/v1/agent/service/register", {"Name": "own", "Port": 1})
        wait_until(lambda: "own" in self.server_services(a.node), 10, message="own")
        # Someone deletes the agent's service and adds a foreign one on its node directly.
        r = self.server.put("/v1/catalog/deregister", {"Node": a.node, "ServiceID": "own"})
        self.assertEqual(r.status, 200)
        r = self.server.put("/v1/catalog/register", {"Node": a.node, "Address": HOST,
                                                     "Service": {"Service": "foreign"}})
        self.assertEqual(r.status, 200)
        # The periodic full sync (1 s here) puts the node back as the agent has it.
        wait_until(lambda: set(self.server_services(a.node)) == {"own"}, 15,
                   message="drift repaired")

    def test_node_death_marks_critical_then_reaps(self):
        a = self.agent()
        a.put("/v1/agent/service/register", {"Name": "doomed", "Port": 1,
                                              "Check": {"TTL": "60s", "Status": "passing"}})
        self.wait_check(a.node, "serfHealth", "passing")
        wait_until(lambda: [e for e in self.server.get("/v1/health/service/doomed?passing").json()
                            if e["Node"]["Node"] == a.node], 10, message="doomed passing")
        t0 = time.monotonic()
        a.kill9()
        self.wait_check(a.node, "serfHealth", "critical", timeout=10)
        self.assertLess(time.monotonic() - t0, 10.0)  # the bound, not a benchmark
        self.assertEqual([e for e in self.server.get("/v1/health/service/doomed?passing").json()
                          if e["Node"]["Node"] == a.node], [])
        self.assertIn("Agent not live", self.server_checks(a.node)["serfHealth"]["Output"])
        # After the reconnect timeout the node is reaped with its services.
        wait_until(lambda: self.server.get(f"/v1/catalog/node/{a.node}").status == 404
                   or self.server.get(f"/v1/catalog/node/{a.node}").json() is None, 15,
                   message="node reaped")
        # Started again, the agent registers everything anew (it keeps its state on disk).
        a.start()
        self.wait_check(a.node, "serfHealth", "passing", timeout=10)
        wait_until(lambda: "doomed" in self.server_services(a.node), 10, message="back")

    def test_leave_on_terminate_deregisters_the_node(self):
        a = self.agent(extra_args=["-leave-on-terminate"])
        a.put("/v1/agent/service/register", {"Name": "leaver", "Port": 1})
        wait_until(lambda: "leaver" in self.server_services(a.node), 10, message="leaver")
        self.assertEqual(a.stop(), 0)
        r = self.server.get(f"/v1/catalog/node/{a.node}")
        self.assertTrue(r.status == 404 or r.json() is None, r)
        self.assertEqual(self.server.get("/v1/catalog/service/leaver").json(), [])

    def test_restart_keeps_services_and_checks(self):
        a = self.agent()
        a.put("/v1/agent/service/register", {"Name": "keep", "Port": 7,
                                              "Check": {"CheckID": "keep-ttl", "TTL": "60s"},
                                              "Connect": {"SidecarService": {}}})
        a.put("/v1/agent/service/maintenance/keep?enable=true&reason=r")
        a.put("/v1/agent/check/pass/keep-ttl?note=before")
        a.restart()
        self.assertEqual(sorted(a.get("/v1/agent/services").json()), ["keep", "keep-sidecar-proxy"])
        checks = a.get("/v1/agent/checks").json()
        # A TTL check keeps its last status while its TTL (60 s) has not run out.
        self.assertEqual((checks["keep-ttl"]["Status"], checks["keep-ttl"]["Output"]),
                         ("passing", "before"))
        self.assertIn("_service_maintenance:keep", checks)
        wait_until(lambda: {"keep", "keep-sidecar-proxy"} <= set(self.server_services(a.node)), 10,
                   message="services after restart")

    def test_join_file_written_later(self):
        join_file = os.path.join(tempfile.mkdtemp(prefix="taskmesh-join-"), "server-ip")
        a = self.agent(join_file=join_file)
        a.put("/v1/agent/service/register", {"Name": "late", "Port": 1})
        time.sleep(0.5)
        self.assertEqual(self.server_services(a.node), {})
        # discover-servers writes the file atomically; a port may follow the address.
        tmp = join_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{HOST}:{self.server.http_port}\n")
        os.rename(tmp, join_file)
        wait_until(lambda: "late" in self.server_services(a.node), 20, message="late service")

    def test_python_consul_drives_the_agent(self):
        a = self.agent()
        c = consul.Consul(host=HOST, port=a.http_port)
        self.assertTrue(c.agent.service.register("pyweb", service_id="pyweb-1", port=8000,
                                                 tags=["py"], check=consul.Check.ttl("30s")))
        self.assertIn("pyweb-1", c.agent.services())
        self.assertTrue(c.agent.check.ttl_pass("service:pyweb-1", notes="ok"))
        def passing():
            _, nodes = c.health.service("pyweb", passing=True)
            return [n for n in nodes if n["Node"]["Node"] == a.node]
        nodes = wait_until(passing, 10, message="pyweb passing through the agent")
        self.assertEqual(nodes[0]["Service"]["Tags"], ["py"])
        self.assertEqual(c.agent.self()["Config"]["NodeName"], a.node)
        self.assertTrue(c.agent.service.deregister("pyweb-1"))
        wait_until(lambda: "pyweb-1" not in self.server_services(a.node), 10, message="gone")


    def test_mesh_init_registers_through_the_real_agent(self):
        a = self.agent()
        # The task metadata endpoint v4, served from the test.
        task = {"Cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/demo",
                "TaskARN": "arn:aws:ecs:us-east-1:123456789012:task/demo/0f1e2d3c",
                "Family": "web", "Revision": "3", "KnownStatus": "RUNNING",
                "Containers": [{"Name": "app", "Networks": [{"IPv4Addresses": [HOST]}]}]}

        class Metadata(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                body = json.dumps(task).encode() if self.path == "/task" else b"{}"
                self.send_response(200 if self.path == "/task" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        metadata = http.server.ThreadingHTTPServer((HOST, 0), Metadata)
        threading.Thread(target=metadata.serve_forever, daemon=True).start()
        self.addCleanup(metadata.server_close)
        self.addCleanup(metadata.shutdown)
        # Something listening where the proxy's public listener will be.
        listener = socket.socket()
        listener.bind((HOST, 0))
        listener.listen()
        self.addCleanup(listener.close)
        public_port = listener.getsockname()[1]
        bootstrap_dir = tempfile.mkdtemp(prefix="taskmesh-bootstrap-")
        config = {"bootstrapDir": bootstrap_dir,
                  "service": {"name": "web", "port": 18080,
                              "checks": [{"CheckID": "web-ttl", "Name": "web", "TTL": "60s"}]},
                  "proxy": {"publicListenerPort": public_port,
                            "upstreams": [{"destinationName": "backend", "localBindPort": 18081}]}}
        env = dict(os.environ, TASKMESH_CONFIG_JSON=json.dumps(config),
                   ECS_CONTAINER_METADATA_URI_V4=f"http://{HOST}:{metadata.server_address[1]}",
                   CONSUL_HTTP_ADDR=f"{HOST}:{a.http_port}")
        for run in range(2):  # running it twice is harmless
            p = subprocess.run([binary(), "mesh-init", "-timeout", "20s"], env=env,
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
        path = os.path.join(bootstrap_dir, "bootstrap.json")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o444)
        with open(path) as f:
            boot = json.load(f)
        self.assertEqual(boot["proxyId"], "web-0f1e2d3c-sidecar-proxy")
        self.assertEqual(boot["publicListenerPort"], public_port)
        services = wait_until(
            lambda: (lambda s: s if {"web-0f1e2d3c", "web-0f1e2d3c-sidecar-proxy"} <= set(s)
                     else None)(self.server_services(a.node)), 10, message="both services")
        sidecar = services["web-0f1e2d3c-sidecar-proxy"]
        self.assertEqual(sidecar["Kind"], "connect-proxy")
        self.assertEqual(sidecar["Port"], public_port)
        self.assertEqual(sidecar["Proxy"]["DestinationServiceID"], "web-0f1e2d3c")
        self.assertEqual(sidecar["Proxy"]["Upstreams"][0]["LocalBindPort"], 18081)
        # The public-listener TCP check passes; the alias follows the service's TTL check.
        self.wait_check(a.node, "web-0f1e2d3c-sidecar-proxy:public-listener", "passing")
        self.wait_check(a.node, "web-0f1e2d3c-sidecar-proxy:destination-alias", "critical")
        a.put("/v1/agent/check/pass/web-ttl")
        self.wait_check(a.node, "web-0f1e2d3c-sidecar-proxy:destination-alias", "passing")
        # A bad config names the field and exits 2 without touching anything.
        bad = dict(env, TASKMESH_CONFIG_JSON=json.dumps({"bootstrapDir": bootstrap_dir,
                                                          "service": {"port": "x"}}))
        p = subprocess.run([binary(), "mesh-init"], env=bad, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("service.port", p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
