"""Index-based blocking queries and consistency modes (reference/consul-http-api.md §4, §10).

A blocking GET runs in a thread; the main thread writes and joins it with a timeout. Waits are
kept short (1-2 s) so the file runs in seconds. Where a test needs the blocking request to be
parked on the server before it writes, it gives the request SETTLE seconds to arrive: the server
exposes no count of parked queries to poll, and for a correct server the outcome of those tests
does not depend on the order anyway.
"""

import base64
import time
import unittest

from harness import Server, ServerTestCase, run_thread

SETTLE = 0.3  # time for a blocking request to reach the server and park
PROMPT = 5.0  # a woken query must answer within this many seconds
JITTER_SLACK = 1.0  # wait/16 of jitter plus scheduling on a loaded machine


class BlockingTest(ServerTestCase):
    def blocking_get(self, path, index, wait):
        sep = "&" if "?" in path else "?"
        full = f"{path}{sep}index={index}&wait={wait}"
        started = time.monotonic()

        def go():
            r = self.server.get(full, timeout=60)
            return r, time.monotonic() - started

        return run_thread(go)

    def join(self, thread, timeout):
        thread.join(timeout)
        self.assertFalse(thread.is_alive(), f"blocking query still waiting after {timeout}s")
        if thread.error:
            raise thread.error
        return thread.result

    def put(self, key, value):
        r = self.server.kv_put(key, value)
        self.assertEqual((r.status, r.body), (200, b"true"), r)
        return r.index

    def register(self, node, service, status="passing", service_id=None, node_check=None):
        sid = service_id or service
        body = {"Node": node, "Address": "10.1.0.1",
                "Service": {"ID": sid, "Service": service, "Port": 80},
                "Checks": [{"CheckID": f"{sid}-chk", "Name": "c", "Status": status,
                            "ServiceID": sid}]}
        if node_check:
            body["Checks"].append({"CheckID": "serfHealth", "Name": "Serf Health Status",
                                   "Status": node_check})
        r = self.server.put("/v1/catalog/register", body)
        self.assertEqual((r.status, r.body), (200, b"true"), r)
        return r.index

    # -- KV key ---------------------------------------------------------------------------

    def test_kv_key_wakes_on_write(self):
        key = self.unique("blk")
        self.put(key, b"v1")
        r0 = self.server.kv_get(key)
        t = self.blocking_get(f"/v1/kv/{key}", r0.index, "30s")
        time.sleep(SETTLE)
        write_index = self.put(key, b"v2")
        r, elapsed = self.join(t, PROMPT + SETTLE)
        self.assertEqual(r.status, 200, r)
        self.assertLess(elapsed, PROMPT + SETTLE, "woken by the write, not by ?wait")
        self.assertGreater(r.index, r0.index)
        self.assertEqual(r.index, write_index)
        self.assertEqual(base64.b64decode(r.json()[0]["Value"]), b"v2")

    def test_kv_missing_key_wakes_when_created(self):
        key = self.unique("blk-new")
        r0 = self.server.kv_get(key)
        self.assertEqual(r0.status, 404)
        t = self.blocking_get(f"/v1/kv/{key}", r0.index, "30s")
        time.sleep(SETTLE)
        self.put(key, b"born")
        r, _ = self.join(t, PROMPT + SETTLE)
        self.assertEqual(r.status, 200, r)
        self.assertGreater(r.index, r0.index)
        self.assertEqual(base64.b64decode(r.json()[0]["Value"]), b"born")

    def test_kv_key_wakes_on_delete(self):
        key = self.unique("blk-del")
        self.put(key, b"x")
        r0 = self.server.kv_get(key)
        t = self.blocking_get(f"/v1/kv/{key}", r0.index, "30s")
        time.sleep(SETTLE)
        self.assertEqual(self.server.delete(f"/v1/kv/{key}").body, b"true")
        r, _ = self.join(t, PROMPT + SETTLE)
        self.assertEqual(r.status, 404, r)
        self.assertGreater(r.index, r0.index)

    def test_kv_key_ignores_unrelated_write(self):
        key, other = self.unique("blk-quiet"), self.unique("blk-other")
        self.put(key, b"same")
        r0 = self.server.kv_get(key)
        t = self.blocking_get(f"/v1/kv/{key}", r0.index, "2s")
        time.sleep(SETTLE)
        self.put(other, b"unrelated")
        self.put(other + "/child", b"unrelated")
        r, elapsed = self.join(t, 2 + JITTER_SLACK + PROMPT)
        self.assertGreaterEqual(elapsed, 1.9, "returned early on a write to another key")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, r0.body)

    def test_kv_wait_expires_with_same_index(self):
        key = self.unique("blk-wait")
        self.put(key, b"still")
        r0 = self.server.kv_get(key)
        t = self.blocking_get(f"/v1/kv/{key}", r0.index, "1s")
        r, elapsed = self.join(t, 1 + JITTER_SLACK + PROMPT)
        self.assertGreaterEqual(elapsed, 0.95)
        self.assertLess(elapsed, 1 + JITTER_SLACK + 1)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.index, r0.index)
        self.assertEqual(r.body, r0.body)

    def test_index_zero_and_past_index_return_at_once(self):
        key = self.unique("blk-now")
        self.put(key, b"1")
        r0 = self.server.kv_get(key)
        for index in (0, r0.index - 1):
            started = time.monotonic()
            r = self.server.get(f"/v1/kv/{key}?index={index}&wait=10s")
            self.assertLess(time.monotonic() - started, 3, f"index={index} must not block")
            self.assertEqual(r.status, 200)

    def test_many_waiters_all_wake(self):
        key = self.unique("blk-many")
        self.put(key, b"0")
        r0 = self.server.kv_get(key)
        threads = [self.blocking_get(f"/v1/kv/{key}", r0.index, "30s") for _ in range(20)]
        time.sleep(SETTLE)
        self.put(key, b"1")
        for t in threads:
            r, _ = self.join(t, PROMPT + SETTLE)
            self.assertEqual(r.status, 200)
            self.assertEqual(base64.b64decode(r.json()[0]["Value"]), b"1")

    # -- X-Consul-Index of KV reads (Consul: agent/consul/kvs_endpoint.go, state/kvs.go) -

    def test_kv_key_index_is_its_modify_index(self):
        # Consul answers a single existing key with X-Consul-Index = the entry's ModifyIndex,
        # not the KV table's index, so writes to other keys do not move it.
        key = self.unique("idx-key")
        self.put(key, b"v")
        self.put(self.unique("idx-other"), b"later write elsewhere")
        r = self.server.kv_get(key)
        self.assertEqual(r.index, r.json()[0]["ModifyIndex"])

    def test_kv_block_on_modify_index_ignores_earlier_unrelated_write(self):
        # A client that blocks with the entry's ModifyIndex (as watchers and python-consul
        # users do) must wait for a change of that key, not return because another key was
        # written before its request arrived.
        key = self.unique("idx-mi")
        self.put(key, b"v")
        mi = self.server.kv_get(key).json()[0]["ModifyIndex"]
        self.put(self.unique("idx-mi-other"), b"x")
        started = time.monotonic()
        r = self.server.get(f"/v1/kv/{key}?index={mi}&wait=1s")
        elapsed = time.monotonic() - started
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(elapsed, 0.95,
                                f"returned after {elapsed:.3f}s with X-Consul-Index {r.index} "
                                f"although key's ModifyIndex is still {mi}")

    def test_kv_recurse_index_is_max_modify_index_in_prefix(self):
        # Reference §10: with ?recurse, X-Consul-Index is the latest ModifyIndex within the
        # prefix.
        p = self.unique("idx-pfx") + "/"
        self.put(p + "a", b"1")
        self.put(p + "b", b"2")
        self.put(self.unique("idx-pfx-outside"), b"3")
        r = self.server.get(f"/v1/kv/{p}?recurse")
        self.assertEqual(r.index, max(e["ModifyIndex"] for e in r.json()))

    # -- KV prefix --------------------------------------------------------------------------

    def test_kv_prefix_wakes_on_write_below_prefix(self):
        p = self.unique("blk-pfx") + "/"
        self.put(p + "a", b"1")
        r0 = self.server.get(f"/v1/kv/{p}?recurse")
        t = self.blocking_get(f"/v1/kv/{p}?recurse", r0.index, "30s")
        time.sleep(SETTLE)
        self.put(p + "deep/new", b"2")
        r, _ = self.join(t, PROMPT + SETTLE)
        self.assertEqual(r.status, 200)
        self.assertGreater(r.index, r0.index)
        self.assertEqual([e["Key"] for e in r.json()], [p + "a", p + "deep/new"])

    def test_kv_prefix_wakes_on_delete_below_prefix(self):
        p = self.unique("blk-pfxdel") + "/"
        self.put(p + "a", b"1")
        self.put(p + "b", b"1")
        r0 = self.server.get(f"/v1/kv/{p}?keys")
        t = self.blocking_get(f"/v1/kv/{p}?keys", r0.index, "30s")
        time.sleep(SETTLE)
        self.assertEqual(self.server.delete(f"/v1/kv/{p}b").body, b"true")
        r, _ = self.join(t, PROMPT + SETTLE)
        self.assertEqual(r.json(), [p + "a"])
        self.assertGreater(r.index, r0.index)

    def test_kv_prefix_ignores_write_outside_prefix(self):
        p = self.unique("blk-pfxq") + "/"
        self.put(p + "a", b"1")
        r0 = self.server.get(f"/v1/kv/{p}?recurse")
        t = self.blocking_get(f"/v1/kv/{p}?recurse", r0.index, "2s")
        time.sleep(SETTLE)
        self.put(p[:-1] + "-sibling", b"not below the prefix")
        self.put(self.unique("elsewhere"), b"x")
        r, elapsed = self.join(t, 2 + JITTER_SLACK + PROMPT)
        self.assertGreaterEqual(elapsed, 1.9, "returned early on a write outside the prefix")
        self.assertEqual(r.body, r0.body)

    # -- catalog/services -------------------------------------------------------------------

    def test_catalog_services_wakes_on_register(self):
        r0 = self.server.get("/v1/catalog/services")
        t = self.blocking_get("/v1/catalog/services", r0.index, "30s")
        time.sleep(SETTLE)
        svc = self.unique("svc-new")
        self.register(self.unique("svc-node"), svc)
        r, _ = self.join(t, PROMPT + SETTLE)
        self.assertEqual(r.status, 200)
        self.assertGreater(r.index, r0.index)
        self.assertIn(svc, r.json())

    def test_catalog_services_ignores_kv_write(self):
        r0 = self.server.get("/v1/catalog/services")
        t = self.blocking_get("/v1/catalog/services", r0.index, "2s")
        time.sleep(SETTLE)
        self.put(self.unique("kv-not-catalog"), b"x")
        r, elapsed = self.join(t, 2 + JITTER_SLACK + PROMPT)
        self.assertGreaterEqual(elapsed, 1.9, "catalog/services woke on a KV write")
        self.assertEqual(r.index, r0.index)

    # -- health/service/:name ---------------------------------------------------------------

    def test_health_service_wakes_on_check_change(self):
        svc, node = self.unique("hsvc"), self.unique("hnode")
        self.register(node, svc, status="passing")
        r0 = self.server.get(f"/v1/health/service/{svc}?passing")
        self.assertEqual(len(r0.json()), 1)
        t = self.blocking_get(f"/v1/health/service/{svc}?passing", r0.index, "30s")
        time.sleep(SETTLE)
        self.register(node, svc, status="critical")
        r, _ = self.join(t, PROMPT + SETTLE)
        self.assertEqual(r.status, 200)
        self.assertGreater(r.index, r0.index)
        self.assertEqual(r.json(), [])

    def test_health_service_wakes_on_node_check_change(self):
        svc, node = self.unique("hsvc-n"), self.unique("hnode-n")
        self.register(node, svc, node_check="passing")
        r0 = self.server.get(f"/v1/health/service/{svc}?passing")
        self.assertEqual(len(r0.json()), 1)
        t = self.blocking_get(f"/v1/health/service/{svc}?passing", r0.index, "30s")
        time.sleep(SETTLE)
        r = self.server.put("/v1/catalog/register", {
            "Node": node, "Address": "10.1.0.1",
            "Check": {"CheckID": "serfHealth", "Name": "Serf Health Status",
                      "Status": "critical"}})
        self.assertEqual(r.body, b"true")
        r, _ = self.join(t, PROMPT + SETTLE)
        self.assertEqual(r.json(), [], "a critical serfHealth excludes the instance")
        self.assertGreater(r.index, r0.index)

    def test_health_service_ignores_other_service(self):
        svc, node = self.unique("hsvc-q"), self.unique("hnode-q")
        self.register(node, svc)
        r0 = self.server.get(f"/v1/health/service/{svc}")
        t = self.blocking_get(f"/v1/health/service/{svc}", r0.index, "2s")
        time.sleep(SETTLE)
        self.register(self.unique("hnode-other"), self.unique("hsvc-other"), status="critical")
        self.put(self.unique("hkv"), b"x")
        r, elapsed = self.join(t, 2 + JITTER_SLACK + PROMPT)
        self.assertGreaterEqual(elapsed, 1.9, "health/service woke on another service's write")
        self.assertEqual(r.index, r0.index)
        self.assertEqual(r.body, r0.body)

    def test_catalog_service_wakes_on_deregister(self):
        svc, node = self.unique("csvc"), self.unique("cnode")
        self.register(node, svc)
        r0 = self.server.get(f"/v1/catalog/service/{svc}")
        t = self.blocking_get(f"/v1/catalog/service/{svc}", r0.index, "30s")
        time.sleep(SETTLE)
        r = self.server.put("/v1/catalog/deregister", {"Node": node})
        self.assertEqual(r.body, b"true")
        r, _ = self.join(t, PROMPT + SETTLE)
        self.assertEqual(r.json(), [])
        self.assertGreater(r.index, r0.index)

    # -- consistency modes ------------------------------------------------------------------

    def test_stale_and_consistent_reads(self):
        key = self.unique("stale")
        self.put(key, b"v")
        default = self.server.kv_get(key)
        for q in ("?stale", "?stale=1", "?consistent", "?leader"):
            r = self.server.kv_get(key, q)
            self.assertEqual(r.status, 200, q)
            self.assertEqual(r.body, default.body, q)
            self.assertEqual(r.index, default.index, q)
            self.assertEqual(r.header("X-Consul-KnownLeader"), "true", q)
            self.assertIsNotNone(r.header("X-Consul-LastContact"), q)
        r = self.server.get("/v1/catalog/services?stale")
        self.assertEqual(r.status, 200)

    def test_stale_blocking_query(self):
        key = self.unique("stale-blk")
        self.put(key, b"1")
        r0 = self.server.kv_get(key, "?stale")
        t = self.blocking_get(f"/v1/kv/{key}?stale", r0.index, "30s")
        time.sleep(SETTLE)
        self.put(key, b"2")
        r, _ = self.join(t, PROMPT + SETTLE)
        self.assertEqual(base64.b64decode(r.json()[0]["Value"]), b"2")

    # -- bad parameters ---------------------------------------------------------------------

    def test_bad_parameters(self):
        key = self.unique("badparam")
        self.put(key, b"v")
        cases = [
            ("?index=abc", "Invalid index"),
            ("?index=-1", "Invalid index"),
            ("?index=1.5", "Invalid index"),
            ("?index=99999999999999999999999", "Invalid index"),
            ("?index=5&wait=abc", "Invalid wait time"),
            ("?index=5&wait=10", "Invalid wait time"),
            ("?wait=5x", "Invalid wait time"),
            ("?stale&consistent", "Cannot specify ?stale with ?consistent, conflicting semantics."),
        ]
        for path in (f"/v1/kv/{key}", f"/v1/kv/{key}?recurse", "/v1/catalog/services",
                     "/v1/catalog/nodes", "/v1/health/service/consul",
                     f"/v1/health/node/{self.server.node}"):
            for q, text in cases:
                full = path + ("&" + q[1:] if "?" in path else q)
                r = self.server.get(full)
                self.assertEqual((r.status, r.text), (400, text), full)
        self.assertEqual(self.server.kv_value(key), b"v")


class ShutdownWhileBlockingTest(unittest.TestCase):
    def test_sigterm_with_parked_queries(self):
        server = Server(node="shutdown")
        self.addCleanup(server.cleanup)
        server.start()
        self.assertEqual(server.kv_put("k", b"v").body, b"true")
        index = server.kv_get("k").index
        parked = [run_thread(server.get, f"/v1/kv/k?index={index}&wait=60s", timeout=90)
                  for _ in range(5)]
        time.sleep(SETTLE)
        started = time.monotonic()
        self.assertEqual(server.stop(timeout=10), 0, "SIGTERM must end the server cleanly")
        self.assertLess(time.monotonic() - started, 10)
        for t in parked:
            t.join(PROMPT)
            self.assertFalse(t.is_alive(), "a parked query outlived the server")


if __name__ == "__main__":
    unittest.main()
