"""The real third-party client python3-consul (Debian, 0.7.1) against `taskmesh server`.

DESIGN.md §9: real clients, never an imitation. The KV assertions follow python-consul's own
tests (tests/test_std.py; reference/consul-http-api.md §21.4). Agent service/check endpoints
are not implemented by the server yet, so only agent.self and agent.members are used.
"""

import os
import time
import unittest

from harness import ServerTestCase, run_thread

try:
    import consul
    import consul.base
except ImportError as e:  # pragma: no cover - reported as a clear failure below
    consul = None
    IMPORT_ERROR = e


class PythonConsulTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        if consul is None:
            raise RuntimeError(
                f"python3-consul is not importable ({IMPORT_ERROR}); install the Debian package "
                "python3-consul (scripts/setup does)")
        # python-consul reads these and would override host/port/token.
        for var in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_SSL"):
            os.environ.pop(var, None)
        super().setUpClass()

    def setUp(self):
        self.c = self.client()
        self.p = self.unique("pc")  # this test's KV prefix / name stem

    def client(self, **kwargs):
        """A python-consul client whose requests session is closed after the test."""
        c = consul.Consul(host="127.0.0.1", port=self.server.http_port, **kwargs)
        self.addCleanup(c.http.session.close)
        return c

    # -- KV, as python-consul's own tests do ----------------------------------------------

    def test_kv_missing_and_put_get(self):
        key = self.p + "/foo"
        index, data = self.c.kv.get(key)
        self.assertIsNone(data)
        self.assertGreaterEqual(int(index), 1)
        self.assertIs(self.c.kv.put(key, "bar"), True)
        index, data = self.c.kv.get(key)
        self.assertEqual(data["Value"], b"bar")
        self.assertEqual(data["Key"], key)

    def test_kv_put_cas(self):
        key = self.p + "/foo"
        self.assertIs(self.c.kv.put(key, "bar", cas=50), False)
        self.assertIs(self.c.kv.put(key, "bar", cas=0), True)
        index, data = self.c.kv.get(key)
        self.assertIs(self.c.kv.put(key, "bar2", cas=data["ModifyIndex"] - 1), False)
        self.assertIs(self.c.kv.put(key, "bar2", cas=data["ModifyIndex"]), True)
        index, data = self.c.kv.get(key)
        self.assertEqual(data["Value"], b"bar2")

    def test_kv_put_flags(self):
        key = self.p + "/foo"
        self.c.kv.put(key, "bar")
        index, data = self.c.kv.get(key)
        self.assertEqual(data["Flags"], 0)
        self.assertIs(self.c.kv.put(key, "bar", flags=50), True)
        index, data = self.c.kv.get(key)
        self.assertEqual(data["Flags"], 50)

    def test_kv_recurse(self):
        p = self.p + "/foo/"
        index, data = self.c.kv.get(p, recurse=True)
        self.assertIsNone(data)
        self.c.kv.put(p, None)
        index, data = self.c.kv.get(p, recurse=True)
        self.assertEqual(len(data), 1)
        self.c.kv.put(p + "bar3", "3")
        self.c.kv.put(p + "bar1", "1")
        self.c.kv.put(p + "bar2", "2")
        index, data = self.c.kv.get(p, recurse=True)
        self.assertEqual([x["Key"] for x in data], [p, p + "bar1", p + "bar2", p + "bar3"])
        self.assertEqual([x["Value"] for x in data], [None, b"1", b"2", b"3"])

    def test_kv_keys_and_separator(self):
        p = self.p + "/"
        for k in ("a/1", "a/2", "b", "c/d/e"):
            self.c.kv.put(p + k, "v")
        index, keys = self.c.kv.get(p, keys=True)
        self.assertEqual(keys, [p + "a/1", p + "a/2", p + "b", p + "c/d/e"])
        index, keys = self.c.kv.get(p, keys=True, separator="/")
        self.assertEqual(keys, [p + "a/", p + "b", p + "c/"])

    def test_kv_delete(self):
        p = self.p + "/"
        self.c.kv.put(p + "foo1", "1")
        self.c.kv.put(p + "foo2", "2")
        self.c.kv.put(p + "foo3", "3")
        index, data = self.c.kv.get(p, recurse=True)
        self.assertEqual([x["Key"] for x in data], [p + "foo1", p + "foo2", p + "foo3"])
        self.assertIs(self.c.kv.delete(p + "foo2"), True)
        index, data = self.c.kv.get(p, recurse=True)
        self.assertEqual([x["Key"] for x in data], [p + "foo1", p + "foo3"])
        self.assertIs(self.c.kv.delete(p, recurse=True), True)
        index, data = self.c.kv.get(p, recurse=True)
        self.assertIsNone(data)

    def test_kv_delete_cas(self):
        key = self.p + "/foo"
        self.c.kv.put(key, "bar")
        index, data = self.c.kv.get(key)
        self.assertIs(self.c.kv.delete(key, cas=data["ModifyIndex"] - 1), False)
        self.assertEqual(self.c.kv.get(key), (index, data))
        self.assertIs(self.c.kv.delete(key, cas=data["ModifyIndex"]), True)
        index, data = self.c.kv.get(key)
        self.assertIsNone(data)

    def test_kv_binary_value(self):
        key = self.p + "/bin"
        value = bytes(range(256))
        self.assertIs(self.c.kv.put(key, value), True)
        index, data = self.c.kv.get(key)
        self.assertEqual(data["Value"], value)

    def test_kv_blocking_get(self):
        key = self.p + "/watched"
        self.c.kv.put(key, "before")
        index, data = self.c.kv.get(key)
        # A client of its own, as a watcher thread would have.
        watcher = self.client()
        started = time.monotonic()
        t = run_thread(lambda: (watcher.kv.get(key, index=index, wait="5s"),
                                time.monotonic() - started))
        time.sleep(0.3)  # let the watch reach the server; the outcome does not depend on it
        writer = run_thread(self.c.kv.put, key, "after")
        writer.join(10)
        self.assertIsNone(writer.error)
        self.assertIs(writer.result, True)
        t.join(10)
        self.assertFalse(t.is_alive(), "blocking kv.get did not return")
        if t.error:
            raise t.error
        (new_index, new_data), elapsed = t.result
        self.assertEqual(new_data["Value"], b"after")
        self.assertGreater(int(new_index), int(index))
        self.assertLess(elapsed, 4.5, "woken by the put, not by the 5 s wait")

    def test_kv_blocking_get_times_out(self):
        key = self.p + "/quiet"
        self.c.kv.put(key, "same")
        index, data = self.c.kv.get(key)
        started = time.monotonic()
        new_index, new_data = self.c.kv.get(key, index=index, wait="1s")
        self.assertGreaterEqual(time.monotonic() - started, 0.95)
        self.assertEqual(new_index, index)
        self.assertEqual(new_data, data)

    def test_consistency_modes(self):
        key = self.p + "/mode"
        self.c.kv.put(key, "v")
        for mode in ("stale", "consistent"):
            client = self.client(consistency=mode)
            index, data = client.kv.get(key)
            self.assertEqual(data["Value"], b"v", mode)

    def test_bad_request_maps_to_exception(self):
        with self.assertRaises(consul.base.BadRequest):
            self.c.kv.get(self.p + "/x", index="not-a-number")

    # -- catalog --------------------------------------------------------------------------

    def test_catalog_register_service_deregister(self):
        node, svc = self.p + "-node", self.p + "-svc"
        self.assertIs(self.c.catalog.register(
            node, "10.1.10.11",
            service={"Service": svc, "ID": svc + "-1", "Tags": ["master", "v1"],
                     "Port": 8000}), True)
        index, nodes = self.c.catalog.service(svc)
        self.assertGreaterEqual(int(index), 1)
        self.assertEqual(len(nodes), 1, nodes)
        n = nodes[0]
        self.assertEqual((n["Node"], n["Address"], n["ServiceID"], n["ServiceName"],
                          n["ServiceTags"], n["ServicePort"]),
                         (node, "10.1.10.11", svc + "-1", svc, ["master", "v1"], 8000))
        index, tagged = self.c.catalog.service(svc, tag="v1")
        self.assertEqual(len(tagged), 1)
        index, tagged = self.c.catalog.service(svc, tag="v2")
        self.assertEqual(tagged, [])

        index, services = self.c.catalog.services()
        self.assertEqual(sorted(services[svc]), ["master", "v1"])
        self.assertIn("consul", services)
        index, nodes = self.c.catalog.nodes()
        self.assertIn(node, [x["Node"] for x in nodes])
        index, one = self.c.catalog.node(node)
        self.assertEqual(one["Node"]["Address"], "10.1.10.11")
        self.assertEqual(list(one["Services"]), [svc + "-1"])
        self.assertEqual(self.c.catalog.datacenters(), ["dc1"])

        self.assertIs(self.c.catalog.deregister(node, service_id=svc + "-1"), True)
        index, nodes = self.c.catalog.service(svc)
        self.assertEqual(nodes, [])
        index, nodes = self.c.catalog.nodes()
        self.assertIn(node, [x["Node"] for x in nodes])
        self.assertIs(self.c.catalog.deregister(node), True)
        index, nodes = self.c.catalog.nodes()
        self.assertNotIn(node, [x["Node"] for x in nodes])

    def test_catalog_blocking_service(self):
        svc = self.p + "-bsvc"
        index, nodes = self.c.catalog.service(svc)
        self.assertEqual(nodes, [])
        watcher = self.client()
        t = run_thread(watcher.catalog.service, svc, index=index, wait="5s")
        time.sleep(0.3)
        self.c.catalog.register(self.p + "-bnode", "10.0.0.1", service={"Service": svc})
        t.join(10)
        self.assertFalse(t.is_alive())
        if t.error:
            raise t.error
        new_index, nodes = t.result
        self.assertGreater(int(new_index), int(index))
        self.assertEqual([n["ServiceName"] for n in nodes], [svc])

    # -- health ---------------------------------------------------------------------------

    def register_instance(self, node, svc, status):
        sid = node + "-" + svc
        self.assertIs(self.c.catalog.register(
            node, "10.2.0.1", service={"Service": svc, "ID": sid, "Port": 80},
            check={"Node": node, "CheckID": "service:" + sid, "Name": "Service check",
                   "Notes": "set by the test", "Status": status, "ServiceID": sid}), True)

    def test_health_service_passing(self):
        svc = self.p + "-hsvc"
        good, bad = self.p + "-good", self.p + "-bad"
        self.register_instance(good, svc, "passing")
        self.register_instance(bad, svc, "critical")

        index, nodes = self.c.health.service(svc)
        self.assertEqual(sorted(n["Node"]["Node"] for n in nodes), sorted([good, bad]))
        index, nodes = self.c.health.service(svc, passing=True)
        self.assertEqual([n["Node"]["Node"] for n in nodes], [good])
        check = next(c for c in nodes[0]["Checks"] if c["CheckID"] == "service:" + good + "-"
                     + svc)
        self.assertEqual((check["Status"], check["Notes"]), ("passing", "set by the test"))

        # Re-registering with another Status is how catalog checks change.
        self.register_instance(bad, svc, "passing")
        index, nodes = self.c.health.service(svc, passing=True)
        self.assertEqual(sorted(n["Node"]["Node"] for n in nodes), sorted([good, bad]))
        self.register_instance(good, svc, "warning")
        index, nodes = self.c.health.service(svc, passing=True)
        self.assertEqual([n["Node"]["Node"] for n in nodes], [bad])

        index, checks = self.c.health.checks(svc)
        self.assertEqual(sorted((c["Node"], c["Status"]) for c in checks),
                         sorted([(good, "warning"), (bad, "passing")]))
        index, checks = self.c.health.node(good)
        self.assertEqual([c["Status"] for c in checks], ["warning"])
        index, checks = self.c.health.state("warning")
        self.assertIn((good, "service:" + good + "-" + svc),
                      [(c["Node"], c["CheckID"]) for c in checks])

        self.c.catalog.deregister(good)
        self.c.catalog.deregister(bad)
        index, nodes = self.c.health.service(svc)
        self.assertEqual(nodes, [])

    # -- agent and status -----------------------------------------------------------------

    def test_agent_self_members_status(self):
        me = self.c.agent.self()
        self.assertEqual(me["Config"]["NodeName"], self.server.node)
        self.assertEqual(me["Member"]["Name"], self.server.node)
        members = self.c.agent.members()
        self.assertEqual([m["Name"] for m in members], [self.server.node])
        leader = self.c.status.leader()
        self.assertEqual(leader, f"127.0.0.1:{self.server.raft_port}")
        self.assertEqual(self.c.status.peers(), [leader])


if __name__ == "__main__":
    unittest.main()
