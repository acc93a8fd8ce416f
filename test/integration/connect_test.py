"""Connect on the control plane: the server's CA (roots, configuration, rotation, CSR signing),
intentions, and the agent's Connect endpoints (roots, leaf, authorize, proxy snapshot).

Certificates are checked with the `openssl` command-line tool (Debian's openssl package)."""

import json
import os
import subprocess
import tempfile
import threading
import time
import unittest

from harness import Agent, Server, wait_until

OPENSSL = "/usr/bin/openssl"


def openssl(*args, stdin=None):
    r = subprocess.run([OPENSSL, *args], input=stdin, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def cert_text(pem):
    code, out = openssl("x509", "-noout", "-text", stdin=pem)
    assert code == 0, out
    return out


def verify(leaf_chain, roots_pem, directory):
    """openssl verify of the first certificate of `leaf_chain`, with the rest as untrusted
    intermediates and `roots_pem` as the only trust anchors."""
    certs = [c + "-----END CERTIFICATE-----\n"
             for c in leaf_chain.split("-----END CERTIFICATE-----") if c.strip()]
    paths = {}
    for name, text in (("leaf", certs[0]), ("inter", "".join(certs[1:])), ("roots", roots_pem)):
        paths[name] = os.path.join(directory, name + ".pem")
        with open(paths[name], "w") as f:
            f.write(text)
    args = ["verify", "-CAfile", paths["roots"]]
    if len(certs) > 1:
        args += ["-untrusted", paths["inter"]]
    return openssl(*args, paths["leaf"])


class ConnectTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["-bootstrap"]).start()
        cls.agent = Agent("node-a", servers=[f"127.0.0.1:{cls.server.http_port}"]).start()
        cls.tmp = tempfile.mkdtemp(prefix="taskmesh-connect-")
        wait_until(lambda: cls.server.get("/v1/connect/ca/roots").json()["ActiveRootID"], 30,
                   message="the CA to be initialised")

    @classmethod
    def tearDownClass(cls):
        cls.agent.cleanup()
        cls.server.cleanup()

    def roots(self):
        return self.server.get("/v1/connect/ca/roots").json()

    def roots_pem(self):
        return "".join(r["RootCert"] for r in self.roots()["Roots"])

    def test_root_certificate(self):
        roots = self.roots()
        self.assertRegex(roots["TrustDomain"], r"^[0-9a-f-]{36}\.consul$")
        active = [r for r in roots["Roots"] if r["Active"]]
        self.assertEqual(len(active), 1)
        self.assertEqual(active[0]["ID"], roots["ActiveRootID"])
        self.assertRegex(active[0]["ID"], r"^([0-9a-f]{2}:){19}[0-9a-f]{2}$")
        self.assertNotIn("PRIVATE KEY", json.dumps(roots))
        text = cert_text(active[0]["RootCert"])
        self.assertIn("prime256v1", text)
        self.assertIn("CA:TRUE", text)
        self.assertIn("URI:spiffe://" + roots["TrustDomain"], text)
        self.assertIn("Certificate Sign", text)
        pem = self.server.get("/v1/connect/ca/roots?pem")
        self.assertEqual(pem.status, 200)
        self.assertIn("BEGIN CERTIFICATE", pem.text)
        # The agent serves the same roots from its cache.
        wait_until(lambda: self.agent.get("/v1/agent/connect/ca/roots").status == 200, 10)
        self.assertEqual(self.agent.get("/v1/agent/connect/ca/roots").json()["ActiveRootID"],
                         roots["ActiveRootID"])

    def test_leaf_from_the_agent(self):
        r = self.agent.get("/v1/agent/connect/ca/leaf/web")
        self.assertEqual(r.status, 200, r.text)
        leaf = r.json()
        td = self.roots()["TrustDomain"]
        self.assertEqual(leaf["Service"], "web")
        self.assertEqual(leaf["ServiceURI"], f"spiffe://{td}/ns/default/dc/dc1/svc/web")
        self.assertIn("BEGIN EC PRIVATE KEY", leaf["PrivateKeyPEM"])
        text = cert_text(leaf["CertPEM"])
        self.assertIn("URI:" + leaf["ServiceURI"], text)
        self.assertIn("TLS Web Client Authentication", text)
        self.assertIn("TLS Web Server Authentication", text)
        self.assertIn("CA:FALSE", text)
        va = time.strptime(leaf["ValidAfter"], "%Y-%m-%dT%H:%M:%SZ")
        vb = time.strptime(leaf["ValidBefore"], "%Y-%m-%dT%H:%M:%SZ")
        self.assertEqual(time.mktime(vb) - time.mktime(va), 72 * 3600)
        code, out = verify(leaf["CertPEM"], self.roots_pem(), self.tmp)
        self.assertEqual(code, 0, out)
        # Cached: the same certificate again, and a blocking query on its index waits.
        again = self.agent.get("/v1/agent/connect/ca/leaf/web")
        self.assertEqual(again.json()["SerialNumber"], leaf["SerialNumber"])
        start = time.monotonic()
        held = self.agent.get(f"/v1/agent/connect/ca/leaf/web?index={again.index}&wait=300ms")
        self.assertGreaterEqual(time.monotonic() - start, 0.25)
        self.assertEqual(held.json()["SerialNumber"], leaf["SerialNumber"])

    def test_sign_refuses_bad_csrs(self):
        r = self.server.request("POST", "/v1/internal/connect/sign", body=json.dumps({"CSR": "nope"}))
        self.assertEqual(r.status, 400)
        r = self.server.request("POST", "/v1/internal/connect/sign", body="{")
        self.assertEqual(r.status, 400)
        # A CSR for another trust domain.
        key = os.path.join(self.tmp, "k.pem")
        code, out = openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-subj", "/CN=web", "-addext",
                            "subjectAltName=URI:spiffe://other.consul/ns/default/dc/dc1/svc/web")
        self.assertEqual(code, 0, out)
        csr = out[out.index("-----BEGIN CERTIFICATE REQUEST-----"):]
        r = self.server.request("POST", "/v1/internal/connect/sign", body=json.dumps({"CSR": csr}))
        self.assertEqual(r.status, 400)
        self.assertIn("trust domain", r.text)

    def test_ca_configuration_validation(self):
        cfg = self.server.get("/v1/connect/ca/configuration").json()
        self.assertEqual(cfg["Provider"], "consul")
        self.assertIn(cfg["Config"]["LeafCertTTL"], ("72h", "72h0m0s"))
        for body, fragment in [
            ({"Provider": "vault"}, "not supported"),
            ({"Provider": "consul", "Config": {"LeafCertTTL": "10m"}}, "between"),
            ({"Provider": "consul", "Config": {"LeafCertTTL": 5}}, "duration"),
            ({"Provider": "consul", "Config": {"PrivateKey": "x"}}, "not supported"),
        ]:
            r = self.server.put("/v1/connect/ca/configuration", body=json.dumps(body))
            self.assertEqual(r.status, 400, body)
            self.assertIn(fragment, r.text)
        self.assertEqual(self.server.put("/v1/connect/ca/configuration", body="[").status, 400)


class RotationTest(unittest.TestCase):
    """A separate cluster: rotation changes the roots every other test reads."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["-bootstrap"]).start()
        cls.agent = Agent("node-r", servers=[f"127.0.0.1:{cls.server.http_port}"]).start()
        cls.tmp = tempfile.mkdtemp(prefix="taskmesh-rotation-")
        wait_until(lambda: cls.server.get("/v1/connect/ca/roots").json()["ActiveRootID"], 30)

    @classmethod
    def tearDownClass(cls):
        cls.agent.cleanup()
        cls.server.cleanup()

    def test_rotation_cross_signs_and_reissues_leaves(self):
        old = self.server.get("/v1/connect/ca/roots").json()
        old_pem = old["Roots"][0]["RootCert"]
        first = wait_until(lambda: self.agent.get("/v1/agent/connect/ca/leaf/api").json(), 10)
        leaf_index = self.agent.get("/v1/agent/connect/ca/leaf/api").index

        # A blocking leaf query is woken by the rotation with a certificate from the new root.
        result = {}

        def block():
            result["r"] = self.agent.get(f"/v1/agent/connect/ca/leaf/api?index={leaf_index}&wait=20s")

        t = threading.Thread(target=block)
        t.start()
        r = self.server.put("/v1/connect/ca/configuration",
                            body=json.dumps({"Provider": "consul", "Config": {"LeafCertTTL": "24h"}}))
        self.assertEqual(r.status, 200, r.text)
        t.join(30)
        new = self.server.get("/v1/connect/ca/roots").json()
        self.assertEqual(len(new["Roots"]), 2)
        self.assertNotEqual(new["ActiveRootID"], old["ActiveRootID"])
        inactive = [x for x in new["Roots"] if not x["Active"]]
        self.assertEqual(inactive[0]["ID"], old["ActiveRootID"])
        active = [x for x in new["Roots"] if x["Active"]][0]
        self.assertEqual(len(active["IntermediateCerts"]), 1)
        self.assertEqual(self.server.get("/v1/connect/ca/configuration").json()["Config"]["LeafCertTTL"], "24h0m0s")

        leaf = result["r"].json()
        self.assertNotEqual(leaf["SerialNumber"], first["SerialNumber"])
        # The new leaf chains to the old root alone (through the cross-signed certificate), to
        # the new root alone, and the old leaf still verifies while the old root is trusted.
        self.assertEqual(verify(leaf["CertPEM"], old_pem, self.tmp)[0], 0)
        self.assertEqual(verify(leaf["CertPEM"], active["RootCert"], self.tmp)[0], 0)
        both = old_pem + active["RootCert"]
        self.assertEqual(verify(first["CertPEM"], both, self.tmp)[0], 0)
        self.assertNotEqual(verify(first["CertPEM"], active["RootCert"], self.tmp)[0], 0)

        # The rotation is durable.
        self.server.restart()
        again = wait_until(lambda: self.server.get("/v1/connect/ca/roots").json(), 30)
        self.assertEqual(again["ActiveRootID"], new["ActiveRootID"])
        self.assertEqual(again["TrustDomain"], old["TrustDomain"])


class IntentionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["-bootstrap"]).start()
        cls.agent = Agent("node-i", servers=[f"127.0.0.1:{cls.server.http_port}"]).start()
        cls.td = wait_until(lambda: cls.server.get("/v1/connect/ca/roots").json()["TrustDomain"], 30)

    @classmethod
    def tearDownClass(cls):
        cls.agent.cleanup()
        cls.server.cleanup()

    def put(self, src, dst, action, **extra):
        body = {"SourceType": "consul", "Action": action, **extra}
        return self.server.put(f"/v1/connect/intentions/exact?source={src}&destination={dst}",
                               body=json.dumps(body))

    def check(self, src, dst):
        r = self.server.get(f"/v1/connect/intentions/check?source={src}&destination={dst}")
        self.assertEqual(r.status, 200, r.text)
        return r.json()["Allowed"]

    def authorize(self, src, target):
        uri = f"spiffe://{self.td}/ns/default/dc/dc1/svc/{src}"
        r = self.agent.request("POST", "/v1/agent/connect/authorize",
                               body=json.dumps({"Target": target, "ClientCertURI": uri}))
        self.assertEqual(r.status, 200, r.text)
        return r.json()

    def test_exact_crud_and_precedence(self):
        self.assertEqual(self.put("web", "db", "allow", Description="web may call db").json(), True)
        got = self.server.get("/v1/connect/intentions/exact?source=web&destination=db")
        self.assertEqual(got.status, 200)
        j = got.json()
        self.assertEqual((j["SourceName"], j["DestinationName"], j["Action"], j["Precedence"]),
                         ("web", "db", "allow", 9))
        self.assertEqual(j["Description"], "web may call db")
        self.assertEqual(self.put("*", "db", "deny").status, 200)
        self.assertTrue(self.check("web", "db"))     # exact allow (9) beats * deny (8)
        self.assertFalse(self.check("other", "db"))  # * deny
        self.assertTrue(self.check("other", "cache"))  # nothing matches: default allow
        listed = self.server.get("/v1/connect/intentions").json()
        pairs = [(i["SourceName"], i["DestinationName"]) for i in listed]
        self.assertLess(pairs.index(("web", "db")), pairs.index(("*", "db")))
        match = self.server.get("/v1/connect/intentions/match?by=destination&name=db")
        self.assertEqual(match.header("X-Consul-Default-ACL-Policy"), "allow")
        self.assertEqual([i["SourceName"] for i in match.json()["db"]], ["web", "*"])
        by_source = self.server.get("/v1/connect/intentions/match?by=source&name=web").json()
        # By source, the wildcard-source intention applies to web too.
        self.assertEqual([(i["SourceName"], i["DestinationName"]) for i in by_source["web"]],
                         [("web", "db"), ("*", "db")])
        # The agent answers authorize from its cache, with Consul's reasons.
        a = self.authorize("web", "db")
        self.assertTrue(a["Authorized"])
        self.assertIn("web => db (allow)", a["Reason"])
        self.assertFalse(self.authorize("other", "db")["Authorized"])
        # A change reaches the agent's cache through its blocking watch.
        self.assertEqual(self.put("web", "db", "deny").status, 200)
        wait_until(lambda: not self.authorize("web", "db")["Authorized"], 5,
                   message="the deny to reach the agent")
        self.assertEqual(self.server.delete("/v1/connect/intentions/exact?source=web&destination=db").status, 200)
        self.assertEqual(self.server.get("/v1/connect/intentions/exact?source=web&destination=db").status, 404)
        self.assertFalse(self.check("web", "db"))  # now the * deny applies
        self.server.delete("/v1/connect/intentions/exact?source=*&destination=db")

    def test_blocking_list(self):
        idx = self.server.get("/v1/connect/intentions").index
        result = {}
        t = threading.Thread(target=lambda: result.setdefault(
            "r", self.server.get(f"/v1/connect/intentions?index={idx}&wait=10s")))
        t.start()
        time.sleep(0.2)
        start = time.monotonic()
        self.put("a", "b", "allow")
        t.join(15)
        self.assertLess(time.monotonic() - start, 2)
        self.assertGreater(result["r"].index, idx)
        self.server.delete("/v1/connect/intentions/exact?source=a&destination=b")

    def test_bad_input(self):
        cases = [
            ("/v1/connect/intentions/exact?destination=db", {"Action": "allow"}, "source"),
            ("/v1/connect/intentions/exact?source=web", {"Action": "allow"}, "destination"),
            ("/v1/connect/intentions/exact?source=web&destination=db", {"Action": "maybe"}, "maybe"),
            ("/v1/connect/intentions/exact?source=web&destination=db", {"Action": "allow", "Permissions": [{}]}, "Permissions"),
            ("/v1/connect/intentions/exact?source=we*&destination=db", {"Action": "allow"}, "we*"),
            ("/v1/connect/intentions/exact?source=web&destination=db", {"Action": 1}, "Action"),
        ]
        for path, body, fragment in cases:
            r = self.server.put(path, body=json.dumps(body))
            self.assertEqual(r.status, 400, (path, body, r.text))
            self.assertIn(fragment, r.text)
        self.assertEqual(self.server.put("/v1/connect/intentions/exact?source=a&destination=b", body="{").status, 400)
        self.assertEqual(self.server.get("/v1/connect/intentions/match?by=sideways&name=x").status, 400)
        self.assertEqual(self.server.get("/v1/connect/intentions/match?by=source").status, 400)
        r = self.agent.request("POST", "/v1/agent/connect/authorize",
                               body=json.dumps({"Target": "db", "ClientCertURI": "https://x"}))
        self.assertEqual(r.status, 400)
        r = self.agent.request("POST", "/v1/agent/connect/authorize",
                               body=json.dumps({"Target": "db", "ClientCertURI":
                                                "spiffe://other.consul/ns/default/dc/dc1/svc/web"}))
        self.assertEqual(r.status, 200)
        self.assertFalse(r.json()["Authorized"])


class DefaultDenyTest(unittest.TestCase):
    def test_default_deny(self):
        server = Server(extra_args=["-bootstrap", "-default-intention-policy", "deny"]).start()
        try:
            r = server.get("/v1/connect/intentions/check?source=a&destination=b")
            self.assertEqual(r.header("X-Consul-Default-ACL-Policy"), "deny")
            self.assertFalse(r.json()["Allowed"])
            server.put("/v1/connect/intentions/exact?source=a&destination=b",
                       body=json.dumps({"Action": "allow"}))
            self.assertTrue(server.get("/v1/connect/intentions/check?source=a&destination=b").json()["Allowed"])
            # Intentions survive a restart.
            server.restart()
            wait_until(lambda: server.get("/v1/connect/intentions/check?source=a&destination=b").json()["Allowed"], 30)
        finally:
            server.cleanup()


class ProxySnapshotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["-bootstrap"]).start()
        cls.agent = Agent("node-p", servers=[f"127.0.0.1:{cls.server.http_port}"]).start()
        wait_until(lambda: cls.server.get("/v1/connect/ca/roots").json()["ActiveRootID"], 30)

    @classmethod
    def tearDownClass(cls):
        cls.agent.cleanup()
        cls.server.cleanup()

    def register(self, body):
        r = self.agent.put("/v1/agent/service/register", body=json.dumps(body))
        self.assertEqual(r.status, 200, r.text)

    def test_snapshot_follows_catalog_and_intentions(self):
        self.register({"Name": "web", "ID": "web-1", "Port": 8080})
        self.register({"Kind": "connect-proxy", "Name": "web-sidecar-proxy", "ID": "web-1-sidecar-proxy",
                       "Port": 21000, "Address": "127.0.0.1",
                       "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "web-1",
                                 "LocalServicePort": 8080,
                                 "Upstreams": [{"DestinationName": "db", "LocalBindPort": 9191}]}})
        r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
            self.agent.get("/v1/agent/connect/proxy/web-1-sidecar-proxy")), 20,
            message="the snapshot to be ready")
        s = r.json()
        self.assertEqual(s["Service"], "web")
        self.assertEqual(s["PublicListener"]["Port"], 21000)
        self.assertEqual(s["LocalApp"], {"Address": "127.0.0.1", "Port": 8080, "ConnectTimeoutMs": 5000})
        self.assertIn("BEGIN CERTIFICATE", s["Leaf"]["CertPEM"])
        self.assertTrue(s["Roots"])
        self.assertEqual(s["Upstreams"][0]["DestinationName"], "db")
        self.assertTrue(s["Upstreams"][0]["SpiffeID"].endswith("/ns/default/dc/dc1/svc/db"))
        self.assertEqual(s["Upstreams"][0]["Endpoints"], [])
        self.assertEqual(r.index, s["Index"])

        # A db sidecar appearing in the catalog wakes the blocking snapshot within a second.
        def later():
            time.sleep(0.3)
            self.register({"Kind": "connect-proxy", "Name": "db-sidecar-proxy", "ID": "db-1-sidecar-proxy",
                           "Port": 21001, "Address": "127.0.0.9",
                           "Proxy": {"DestinationServiceName": "db", "LocalServicePort": 5432}})
        t = threading.Thread(target=later)
        t.start()
        start = time.monotonic()
        r2 = self.agent.get(f"/v1/agent/connect/proxy/web-1-sidecar-proxy?index={r.index}&wait=10s")
        while not r2.json()["Upstreams"][0]["Endpoints"] and time.monotonic() - start < 10:
            r2 = self.agent.get(f"/v1/agent/connect/proxy/web-1-sidecar-proxy?index={r2.index}&wait=10s")
        t.join()
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(r2.json()["Upstreams"][0]["Endpoints"][0]["Address"], "127.0.0.9")
        self.assertEqual(r2.json()["Upstreams"][0]["Endpoints"][0]["Port"], 21001)

        # An intention for web reaches it too.
        self.server.put("/v1/connect/intentions/exact?source=api&destination=web",
                        body=json.dumps({"Action": "deny"}))
        r3 = wait_until(lambda: (lambda x: x if x.json()["Intentions"] else None)(
            self.agent.get("/v1/agent/connect/proxy/web-1-sidecar-proxy")), 5)
        self.assertEqual(r3.json()["Intentions"][0]["Action"], "deny")
        self.assertEqual(self.agent.get("/v1/agent/connect/proxy/nope").status, 404)


if __name__ == "__main__":
    unittest.main()
