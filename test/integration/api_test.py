"""Consul HTTP API shapes served by `taskmesh server` (reference/consul-http-api.md §2-§11).

One server for the whole class; every test uses its own node names, service names and KV
prefix, so tests do not depend on each other or on their order.
"""

import base64
import unittest

from harness import ServerTestCase, quote_key

READ_HEADERS = ("X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact")


class ApiTest(ServerTestCase):
    # -- helpers -------------------------------------------------------------------------

    def register(self, body):
        r = self.server.put("/v1/catalog/register", body)
        self.assertEqual((r.status, r.body), (200, b"true"), r)
        self.assertGreaterEqual(r.index or 0, 1, "a write answers with its Raft index")
        return r.index

    def deregister(self, body):
        r = self.server.put("/v1/catalog/deregister", body)
        self.assertEqual((r.status, r.body), (200, b"true"), r)

    def get_json(self, path, status=200):
        r = self.server.get(path)
        self.assertEqual(r.status, status, f"GET {path}: {r}")
        self.assertEqual(r.header("Content-Type"), "application/json", path)
        self.assert_read_headers(r, path)
        return r.json()

    def assert_read_headers(self, r, path):
        for h in READ_HEADERS:
            self.assertIsNotNone(r.header(h), f"{path}: missing {h}")
        self.assertGreaterEqual(int(r.header("X-Consul-Index")), 1, path)
        self.assertEqual(r.header("X-Consul-KnownLeader"), "true", path)

    def put_kv(self, key, value, query=""):
        r = self.server.kv_put(key, value, query)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def web_node(self, node, service_id, service="web", tags=(), status="passing",
                 node_check_status=None, port=8080):
        body = {
            "Node": node, "Address": "10.0.0.5", "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "10.0.0.5", "wan": "198.51.100.5"},
            "NodeMeta": {"rack": "r1"},
            "Service": {"ID": service_id, "Service": service, "Tags": list(tags), "Port": port,
                        "Meta": {"version": "1"}},
            "Checks": [{"CheckID": f"{service_id}-check", "Name": f"{service} check",
                        "Status": status, "ServiceID": service_id, "Output": "out"}],
        }
        if node_check_status is not None:
            body["Checks"].append({"CheckID": "serfHealth", "Name": "Serf Health Status",
                                   "Status": node_check_status})
        return self.register(body)

    # -- the server's own registration ----------------------------------------------------

    def test_self_registration(self):
        s = self.server
        nodes = self.get_json("/v1/catalog/nodes")
        me = [n for n in nodes if n["Node"] == s.node]
        self.assertEqual(len(me), 1, nodes)
        self.assertEqual(me[0]["Address"], "127.0.0.1")
        self.assertEqual(me[0]["Datacenter"], "dc1")
        self.assertRegex(me[0]["ID"], r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                      r"[0-9a-f]{12}$")

        services = self.get_json("/v1/catalog/services")
        self.assertIn("consul", services)
        self.assertEqual(services["consul"], [])

        consul = self.get_json("/v1/catalog/service/consul")
        self.assertEqual(len(consul), 1, consul)
        self.assertEqual(consul[0]["Node"], s.node)
        self.assertEqual(consul[0]["ServiceID"], "consul")
        self.assertEqual(consul[0]["ServicePort"], s.raft_port)

        checks = self.get_json(f"/v1/health/node/{s.node}")
        serf = [c for c in checks if c["CheckID"] == "serfHealth"]
        self.assertEqual(len(serf), 1, checks)
        self.assertEqual(serf[0]["Status"], "passing")
        self.assertEqual(serf[0]["Name"], "Serf Health Status")
        self.assertEqual(serf[0]["ServiceID"], "")
        self.assertEqual(serf[0]["ServiceTags"], [])

        healthy = self.get_json("/v1/health/service/consul?passing")
        self.assertEqual([e["Node"]["Node"] for e in healthy], [s.node])

    # -- catalog --------------------------------------------------------------------------

    def test_catalog_register_and_reads(self):
        node, sid = self.unique("cat-node"), self.unique("cat-web")
        svc = self.unique("catsvc")
        index = self.web_node(node, sid, service=svc, tags=["v1", "primary"])

        nodes = self.get_json("/v1/catalog/nodes")
        row = next(n for n in nodes if n["Node"] == node)
        self.assertEqual(row["Address"], "10.0.0.5")
        self.assertEqual(row["TaggedAddresses"], {"lan": "10.0.0.5", "wan": "198.51.100.5"})
        self.assertEqual(row["Meta"], {"rack": "r1"})
        self.assertEqual(row["CreateIndex"], index)
        self.assertEqual(row["ModifyIndex"], index)

        instances = self.get_json(f"/v1/catalog/service/{svc}")
        self.assertEqual(len(instances), 1, instances)
        sn = instances[0]
        expected = {
            "Node": node, "Address": "10.0.0.5", "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "10.0.0.5", "wan": "198.51.100.5"},
            "NodeMeta": {"rack": "r1"}, "ServiceID": sid, "ServiceName": svc,
            "ServiceTags": ["v1", "primary"], "ServiceAddress": "", "ServicePort": 8080,
            "ServiceMeta": {"version": "1"}, "ServiceEnableTagOverride": False,
            "ServiceWeights": {"Passing": 1, "Warning": 1}, "ServiceKind": "",
            "CreateIndex": index, "ModifyIndex": index,
        }
        for k, v in expected.items():
            self.assertEqual(sn.get(k), v, f"ServiceNode field {k}: {sn}")
        for k in ("ID", "ServiceTaggedAddresses", "ServiceProxy", "ServiceConnect"):
            self.assertIn(k, sn)

        # /catalog/node/:node: Services is a map keyed by service ID.
        cn = self.get_json(f"/v1/catalog/node/{node}")
        self.assertEqual(cn["Node"]["Node"], node)
        self.assertEqual(cn["Node"]["Address"], "10.0.0.5")
        self.assertIsInstance(cn["Services"], dict)
        self.assertEqual(list(cn["Services"]), [sid])
        agent_svc = cn["Services"][sid]
        self.assertEqual(agent_svc["ID"], sid)
        self.assertEqual(agent_svc["Service"], svc)
        self.assertEqual(agent_svc["Tags"], ["v1", "primary"])
        self.assertEqual(agent_svc["Port"], 8080)
        self.assertEqual(agent_svc["Meta"], {"version": "1"})

        # /catalog/node-services/:node: Services is a list.
        ns = self.get_json(f"/v1/catalog/node-services/{node}")
        self.assertEqual(ns["Node"]["Node"], node)
        self.assertIsInstance(ns["Services"], list)
        self.assertEqual([s["ID"] for s in ns["Services"]], [sid])

        services = self.get_json("/v1/catalog/services")
        self.assertEqual(sorted(services[svc]), ["primary", "v1"])

        dcs = self.get_json_plain("/v1/catalog/datacenters")
        self.assertEqual(dcs, ["dc1"])

    def get_json_plain(self, path):
        r = self.server.get(path)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def test_catalog_services_tags_are_union(self):
        svc = self.unique("tagunion")
        self.web_node(self.unique("tu-a"), "i1", service=svc, tags=["b", "a"])
        self.web_node(self.unique("tu-b"), "i2", service=svc, tags=["c", "a"])
        services = self.get_json("/v1/catalog/services")
        self.assertEqual(sorted(services[svc]), ["a", "b", "c"])

    def test_catalog_service_tag_filter(self):
        svc = self.unique("tagged")
        n1, n2, n3 = self.unique("tf"), self.unique("tf"), self.unique("tf")
        self.web_node(n1, "x1", service=svc, tags=["v1", "primary"])
        self.web_node(n2, "x2", service=svc, tags=["v1"])
        self.web_node(n3, "x3", service=svc, tags=["v2"])
        all_ = self.get_json(f"/v1/catalog/service/{svc}")
        self.assertEqual(sorted(e["Node"] for e in all_), sorted([n1, n2, n3]))
        v1 = self.get_json(f"/v1/catalog/service/{svc}?tag=v1")
        self.assertEqual(sorted(e["Node"] for e in v1), sorted([n1, n2]))
        both = self.get_json(f"/v1/catalog/service/{svc}?tag=v1&tag=primary")
        self.assertEqual([e["Node"] for e in both], [n1])
        none = self.get_json(f"/v1/catalog/service/{svc}?tag=nope")
        self.assertEqual(none, [])

    def test_catalog_register_updates_keep_create_index(self):
        node, sid = self.unique("upd"), "u1"
        svc = self.unique("updsvc")
        first = self.web_node(node, sid, service=svc, port=1000)
        second = self.web_node(node, sid, service=svc, port=2000)
        self.assertGreater(second, first)
        sn = self.get_json(f"/v1/catalog/service/{svc}")
        self.assertEqual(len(sn), 1, sn)
        self.assertEqual(sn[0]["ServicePort"], 2000)
        self.assertEqual(sn[0]["CreateIndex"], first)
        self.assertEqual(sn[0]["ModifyIndex"], second)

    def test_catalog_deregister_check_service_node(self):
        node = self.unique("dereg")
        svc = self.unique("deregsvc")
        self.register({
            "Node": node, "Address": "10.0.0.9",
            "Service": {"ID": "s1", "Service": svc, "Port": 1},
            "Checks": [
                {"CheckID": "s1-check", "Name": "c", "Status": "passing", "ServiceID": "s1"},
                {"CheckID": "node-check", "Name": "n", "Status": "passing"},
            ],
        })
        self.register({"Node": node, "Address": "10.0.0.9",
                       "Service": {"ID": "s2", "Service": svc, "Port": 2}})

        def check_ids():
            return sorted(c["CheckID"] for c in self.get_json(f"/v1/health/node/{node}"))

        self.assertEqual(check_ids(), ["node-check", "s1-check"])
        self.deregister({"Node": node, "CheckID": "node-check"})
        self.assertEqual(check_ids(), ["s1-check"])

        # Deregistering a service removes its checks too.
        self.deregister({"Node": node, "ServiceID": "s1"})
        self.assertEqual(check_ids(), [])
        ids = [e["ServiceID"] for e in self.get_json(f"/v1/catalog/service/{svc}")]
        self.assertEqual(ids, ["s2"])

        self.deregister({"Node": node})
        self.assertNotIn(node, [n["Node"] for n in self.get_json("/v1/catalog/nodes")])
        self.assertEqual(self.get_json(f"/v1/catalog/service/{svc}"), [])
        self.assertNotIn(svc, self.get_json("/v1/catalog/services"))
        self.assertEqual(self.get_json(f"/v1/health/node/{node}"), [])

        # Deregistering what is already gone is not an error.
        self.deregister({"Node": node})

    # -- health ---------------------------------------------------------------------------

    def test_health_service_passing_filter(self):
        svc = self.unique("hsvc")
        ok, warn, crit = self.unique("ok"), self.unique("warn"), self.unique("crit")
        serf_crit, node_warn = self.unique("serfcrit"), self.unique("nodewarn")
        self.web_node(ok, "a", service=svc, status="passing", node_check_status="passing")
        self.web_node(warn, "b", service=svc, status="warning")
        self.web_node(crit, "c", service=svc, status="critical")
        # A failing node check (serfHealth) excludes every service on the node.
        self.web_node(serf_crit, "d", service=svc, status="passing",
                      node_check_status="critical")
        self.web_node(node_warn, "e", service=svc, status="passing",
                      node_check_status="warning")

        entries = self.get_json(f"/v1/health/service/{svc}")
        self.assertEqual(len(entries), 5, entries)
        keys = [(e["Node"]["Node"], e["Service"]["ID"]) for e in entries]
        self.assertEqual(keys, sorted(keys), "entries are ordered by node, then service ID")
        for q in ("?passing", "?passing=true", "?passing=1"):
            passing = self.get_json(f"/v1/health/service/{svc}{q}")
            self.assertEqual([e["Node"]["Node"] for e in passing], [ok], q)
        for q in ("?passing=false", "?passing=0"):
            self.assertEqual(len(self.get_json(f"/v1/health/service/{svc}{q}")), 5, q)

        r = self.server.get(f"/v1/health/service/{svc}?passing=maybe")
        self.assertEqual((r.status, r.text), (400, "Invalid value for ?passing"))

    def test_health_service_entry_shape(self):
        svc, node = self.unique("shape"), self.unique("shape-node")
        self.web_node(node, "w1", service=svc, tags=["t1"], node_check_status="passing")
        entries = self.get_json(f"/v1/health/service/{svc}")
        self.assertEqual(len(entries), 1, entries)
        e = entries[0]
        self.assertEqual(set(e), {"Node", "Service", "Checks"})
        self.assertEqual(e["Node"]["Node"], node)
        self.assertEqual(e["Node"]["Address"], "10.0.0.5")
        self.assertEqual(e["Service"]["ID"], "w1")
        self.assertEqual(e["Service"]["Service"], svc)
        self.assertEqual(e["Service"]["Tags"], ["t1"])
        self.assertEqual(e["Service"]["Port"], 8080)
        self.assertEqual(e["Service"]["Weights"], {"Passing": 1, "Warning": 1})
        checks = {c["CheckID"]: c for c in e["Checks"]}
        self.assertEqual(set(checks), {"w1-check", "serfHealth"})
        sc = checks["w1-check"]
        self.assertEqual(sc["ServiceID"], "w1")
        self.assertEqual(sc["ServiceName"], svc)
        self.assertEqual(sc["ServiceTags"], ["t1"])
        self.assertEqual(sc["Status"], "passing")
        self.assertEqual(sc["Output"], "out")
        self.assertEqual(sc["Node"], node)
        nc = checks["serfHealth"]
        self.assertEqual((nc["ServiceID"], nc["ServiceName"], nc["ServiceTags"]), ("", "", []))

    def test_health_service_untagged_lists_are_empty_not_null(self):
        svc, node = self.unique("untagged"), self.unique("untagged-node")
        self.register({"Node": node, "Address": "10.0.0.7",
                       "Service": {"Service": svc}})
        e = self.get_json(f"/v1/health/service/{svc}")
        self.assertEqual(len(e), 1, e)
        self.assertEqual(e[0]["Service"]["ID"], svc, "service ID defaults to the name")
        self.assertEqual(e[0]["Service"]["Tags"], [])
        self.assertEqual(e[0]["Checks"], [])
        self.assertEqual(e[0]["Service"]["Meta"], {})

    def test_health_service_tag_filter(self):
        svc = self.unique("htag")
        n1, n2 = self.unique("ht"), self.unique("ht")
        self.web_node(n1, "t1", service=svc, tags=["blue"])
        self.web_node(n2, "t2", service=svc, tags=["green"])
        blue = self.get_json(f"/v1/health/service/{svc}?tag=blue")
        self.assertEqual([e["Node"]["Node"] for e in blue], [n1])
        self.assertEqual(self.get_json(f"/v1/health/service/{svc}?tag=red"), [])

    def test_health_checks_node_and_state(self):
        svc, node = self.unique("hc"), self.unique("hc-node")
        self.register({
            "Node": node, "Address": "10.0.0.8",
            "Service": {"ID": "hc1", "Service": svc, "Tags": ["x"]},
            "Checks": [
                {"CheckID": "svc-crit", "Name": "svc", "Status": "critical", "ServiceID": "hc1"},
                {"CheckID": "svc-warn", "Name": "svc2", "Status": "warning", "ServiceID": "hc1"},
                {"CheckID": "node-ok", "Name": "node", "Status": "passing"},
            ],
        })
        # /health/checks/:service holds only the service's own checks.
        checks = self.get_json(f"/v1/health/checks/{svc}")
        self.assertEqual(sorted(c["CheckID"] for c in checks), ["svc-crit", "svc-warn"])
        for c in checks:
            self.assertEqual((c["ServiceName"], c["ServiceTags"], c["Node"]), (svc, ["x"], node))

        node_checks = self.get_json(f"/v1/health/node/{node}")
        self.assertEqual(sorted(c["CheckID"] for c in node_checks),
                         ["node-ok", "svc-crit", "svc-warn"])

        def in_state(state):
            return {(c["Node"], c["CheckID"]) for c in self.get_json(f"/v1/health/state/{state}")
                    if c["Node"] == node}

        self.assertEqual(in_state("critical"), {(node, "svc-crit")})
        self.assertEqual(in_state("warning"), {(node, "svc-warn")})
        self.assertEqual(in_state("passing"), {(node, "node-ok")})
        self.assertEqual(in_state("any"), {(node, "svc-crit"), (node, "svc-warn"),
                                           (node, "node-ok")})
        for c in self.get_json("/v1/health/state/critical"):
            self.assertEqual(c["Status"], "critical")
        r = self.server.get("/v1/health/state/fluffy")
        self.assertEqual(r.status, 400, r)

    def test_check_status_defaults_to_critical(self):
        node = self.unique("defcrit")
        self.register({"Node": node, "Address": "10.0.0.10",
                       "Check": {"Name": "no-status"}})
        checks = self.get_json(f"/v1/health/node/{node}")
        self.assertEqual([(c["CheckID"], c["Status"]) for c in checks],
                         [("no-status", "critical")], "CheckID defaults to Name")

    # -- KV -------------------------------------------------------------------------------

    def test_kv_put_get_roundtrip(self):
        key = self.unique("kv") + "/config"
        self.assertIs(self.put_kv(key, b"hello"), True)
        r = self.server.kv_get(key)
        self.assertEqual(r.status, 200, r)
        self.assert_read_headers(r, key)
        entries = r.json()
        self.assertEqual(len(entries), 1, entries)
        e = entries[0]
        self.assertEqual(e["Key"], key)
        self.assertEqual(base64.b64decode(e["Value"]), b"hello")
        self.assertEqual((e["Flags"], e["LockIndex"]), (0, 0))
        self.assertEqual(e["CreateIndex"], e["ModifyIndex"])
        self.assertGreaterEqual(e["CreateIndex"], 1)

        self.assertIs(self.put_kv(key, b"again"), True)
        e2 = self.server.kv_get(key).json()[0]
        self.assertEqual(e2["CreateIndex"], e["CreateIndex"])
        self.assertGreater(e2["ModifyIndex"], e["ModifyIndex"])
        self.assertEqual(base64.b64decode(e2["Value"]), b"again")

    def test_kv_empty_value_is_null(self):
        key = self.unique("kvempty")
        self.assertIs(self.put_kv(key, None), True)
        e = self.server.kv_get(key).json()[0]
        self.assertIsNone(e["Value"])
        self.assertEqual(self.server.kv_value(key), b"")

    def test_kv_missing_key_is_404_with_headers(self):
        r = self.server.kv_get(self.unique("kvmissing"))
        self.assertEqual(r.status, 404)
        self.assertEqual(r.body, b"")
        self.assert_read_headers(r, "kv 404")
        r = self.server.kv_get(self.unique("kvmissing") + "/", "?recurse")
        self.assertEqual((r.status, r.body), (404, b""))
        self.assert_read_headers(r, "kv recurse 404")

    def test_kv_recurse_sorted(self):
        p = self.unique("kvrec") + "/"
        for k in ("c", "a", "b/2", "b/1", "aa"):
            self.assertIs(self.put_kv(p + k, k.encode()), True)
        self.put_kv(p[:-1] + "-sibling", b"outside the prefix")
        entries = self.get_json(f"/v1/kv/{p}?recurse")
        keys = [e["Key"] for e in entries]
        self.assertEqual(keys, [p + k for k in ("a", "aa", "b/1", "b/2", "c")])
        for e in entries:
            self.assertEqual(base64.b64decode(e["Value"]), e["Key"][len(p):].encode())
        r = self.server.get(f"/v1/kv/{p}?recurse")
        self.assertGreaterEqual(r.index, max(e["ModifyIndex"] for e in entries))

    def test_kv_keys_and_separator(self):
        p = self.unique("kvkeys") + "/"
        for k in ("web/foo", "web/bar", "web/sub/x", "web/sub/y", "other"):
            self.put_kv(p + k, b"1")
        keys = self.get_json(f"/v1/kv/{p}web/?keys")
        self.assertEqual(keys, [p + k for k in ("web/bar", "web/foo", "web/sub/x", "web/sub/y")])
        sep = self.get_json(f"/v1/kv/{p}web/?keys&separator=/")
        self.assertEqual(sep, [p + "web/bar", p + "web/foo", p + "web/sub/"])
        top = self.get_json(f"/v1/kv/{p}?keys&separator=/")
        self.assertEqual(top, [p + "other", p + "web/"])
        self.assertEqual(self.get_json(f"/v1/kv/{p}nothing/?keys"), [])

    def test_kv_raw(self):
        key = self.unique("kvraw")
        value = bytes(range(256)) + "ünïcødé".encode()
        self.put_kv(key, value)
        r = self.server.kv_get(key, "?raw")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, value)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"), r.header("Content-Type"))
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        self.assertEqual(r.header("Content-Security-Policy"), "sandbox")
        self.assert_read_headers(r, "raw")

    def test_kv_flags(self):
        key = self.unique("kvflags")
        for flags in (42, 0, 18446744073709551615):
            self.assertIs(self.put_kv(key, b"v", f"?flags={flags}"), True)
            self.assertEqual(self.server.kv_get(key).json()[0]["Flags"], flags)
        r = self.server.kv_put(key, b"v", "?flags=-1")
        self.assertEqual(r.status, 400, r)
        r = self.server.kv_put(key, b"v", "?flags=18446744073709551616")
        self.assertEqual(r.status, 400, r)

    def test_kv_cas(self):
        key = self.unique("kvcas")
        self.assertIs(self.put_kv(key, b"x", "?cas=50"), False, "cas=N on a missing key")
        self.assertEqual(self.server.kv_get(key).status, 404)
        self.assertIs(self.put_kv(key, b"first", "?cas=0"), True)
        self.assertIs(self.put_kv(key, b"second", "?cas=0"), False, "cas=0 on an existing key")
        mi = self.server.kv_get(key).json()[0]["ModifyIndex"]
        self.assertIs(self.put_kv(key, b"stale", f"?cas={mi - 1}"), False)
        self.assertIs(self.put_kv(key, b"stale", f"?cas={mi + 1000}"), False)
        self.assertEqual(self.server.kv_value(key), b"first")
        self.assertIs(self.put_kv(key, b"third", f"?cas={mi}"), True)
        self.assertEqual(self.server.kv_value(key), b"third")
        self.assertIs(self.put_kv(key, b"again", f"?cas={mi}"), False, "index moved on")
        r = self.server.kv_put(key, b"x", "?cas=abc")
        self.assertEqual(r.status, 400, r)

    def test_kv_value_size_limit(self):
        key = self.unique("kvbig")
        limit = 512 * 1024
        self.assertIs(self.put_kv(key, b"a" * limit), True)
        self.assertEqual(len(self.server.kv_value(key)), limit)
        too_big = self.unique("kvbig")
        r = self.server.kv_put(too_big, b"b" * (limit + 1))
        self.assertEqual(r.status, 413, r)
        self.assertTrue(r.text.startswith(
            f"Request body({limit + 1} bytes) too large, max size: {limit} bytes"), r.text)
        self.assertEqual(self.server.kv_get(too_big).status, 404)
        # A rejected overwrite leaves the old value alone.
        r = self.server.kv_put(key, b"c" * (limit + 1))
        self.assertEqual(r.status, 413, r)
        self.assertEqual(self.server.kv_value(key), b"a" * limit)

    def test_kv_delete(self):
        p = self.unique("kvdel") + "/"
        for k in ("one", "two", "dir/a", "dir/b"):
            self.put_kv(p + k, b"1")
        self.put_kv(p + "dirx", b"kept: shares the string prefix 'dir' but not 'dir/'")
        r = self.server.delete("/v1/kv/" + quote_key(p + "one"))
        self.assertEqual((r.status, r.body), (200, b"true"))
        self.assertEqual(self.server.kv_get(p + "one").status, 404)

        r = self.server.delete("/v1/kv/" + quote_key(p + "dir/") + "?recurse")
        self.assertEqual((r.status, r.body), (200, b"true"))
        self.assertEqual(self.get_json(f"/v1/kv/{p}?keys"), [p + "dirx", p + "two"])

        mi = self.server.kv_get(p + "two").json()[0]["ModifyIndex"]
        for bad in (mi - 1, 0):
            r = self.server.delete("/v1/kv/" + quote_key(p + "two") + f"?cas={bad}")
            self.assertEqual((r.status, r.body), (200, b"false"), f"cas={bad}")
            self.assertEqual(self.server.kv_value(p + "two"), b"1")
        r = self.server.delete("/v1/kv/" + quote_key(p + "two") + f"?cas={mi}")
        self.assertEqual((r.status, r.body), (200, b"true"))
        self.assertEqual(self.server.kv_get(p + "two").status, 404)

        # Deleting a missing key succeeds.
        r = self.server.delete("/v1/kv/" + quote_key(p + "never"))
        self.assertEqual((r.status, r.body), (200, b"true"))

    def test_kv_missing_key_name(self):
        r = self.server.get("/v1/kv/")
        self.assertEqual((r.status, r.text), (400, "Missing key name"))
        r = self.server.put("/v1/kv/", b"x")
        self.assertEqual((r.status, r.text), (400, "Missing key name"))

    # -- status and agent -----------------------------------------------------------------

    def test_status(self):
        leader = self.get_json_plain("/v1/status/leader")
        self.assertEqual(leader, f"127.0.0.1:{self.server.raft_port}")
        self.assertEqual(self.get_json_plain("/v1/status/peers"), [leader])

    def test_agent_self_and_members(self):
        s = self.server
        me = self.get_json_plain("/v1/agent/self")
        self.assertEqual(me["Config"]["NodeName"], s.node)
        self.assertEqual(me["Config"]["Datacenter"], "dc1")
        self.assertIs(me["Config"]["Server"], True)
        self.assertTrue(me["Config"]["Version"])
        self.assertEqual(me["Member"]["Name"], s.node)
        self.assertEqual(me["Member"]["Addr"], "127.0.0.1")
        self.assertEqual(me["Member"]["Status"], 1)
        node_id = next(n["ID"] for n in self.get_json("/v1/catalog/nodes") if n["Node"] == s.node)
        self.assertEqual(me["Config"]["NodeID"], node_id)

        members = self.get_json_plain("/v1/agent/members")
        self.assertEqual(len(members), 1, members)
        m = members[0]
        self.assertEqual((m["Name"], m["Addr"], m["Status"]), (s.node, "127.0.0.1", 1))
        self.assertEqual(m["Tags"]["role"], "consul")
        self.assertEqual(m["Tags"]["dc"], "dc1")
        self.assertEqual(m["Tags"]["port"], str(s.raft_port))

    # -- cross-cutting: headers and empty lists -------------------------------------------

    def test_every_read_has_consul_headers(self):
        n = self.server.node
        missing = self.unique("nothing")
        paths = [
            "/v1/catalog/nodes", "/v1/catalog/services", "/v1/catalog/service/consul",
            f"/v1/catalog/service/{missing}", f"/v1/catalog/node/{n}",
            f"/v1/catalog/node-services/{n}", "/v1/health/service/consul",
            f"/v1/health/service/{missing}", "/v1/health/checks/consul",
            f"/v1/health/node/{n}", "/v1/health/state/any", "/v1/health/state/critical",
            f"/v1/kv/{missing}", f"/v1/kv/{missing}/?recurse", f"/v1/kv/{missing}/?keys",
            f"/v1/kv/{missing}?stale", "/v1/health/service/consul?consistent",
        ]
        for path in paths:
            r = self.server.get(path)
            self.assertIn(r.status, (200, 404), f"{path}: {r}")
            self.assert_read_headers(r, path)
            self.assertGreaterEqual(r.index, 1, path)

    def test_empty_collections_are_lists(self):
        missing = self.unique("empty")
        for path in (f"/v1/catalog/service/{missing}", f"/v1/health/service/{missing}",
                     f"/v1/health/checks/{missing}", f"/v1/health/node/{missing}",
                     f"/v1/health/service/{missing}?passing", f"/v1/kv/{missing}/?keys"):
            r = self.server.get(path)
            self.assertEqual((r.status, r.body), (200, b"[]"), path)

    def test_pretty(self):
        r = self.server.get("/v1/catalog/nodes?pretty")
        self.assertEqual(r.status, 200)
        self.assertIn(b"\n", r.body)
        self.assertEqual(r.json(), self.get_json("/v1/catalog/nodes"))


if __name__ == "__main__":
    unittest.main()
