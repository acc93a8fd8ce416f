"""Hostile and malformed input (STYLE.md rule 5: outside input is never trusted).

After every test, tearDown proves that the server still serves reads and writes and that the
writes acknowledged before the bad input (in setUpClass and in the test) are still there.
"""

import base64
import json
import socket
import time
import unittest

from harness import HOST, ServerTestCase, request, run_thread

RAW_TIMEOUT = 10.0


def raw_exchange(port, data, read_timeout=RAW_TIMEOUT):
    """Sends `data` on a fresh connection and reads until the server closes or times out.

    Returns (bytes received, closed_by_server).
    """
    with socket.create_connection((HOST, port), timeout=RAW_TIMEOUT) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(s, read_timeout)


def read_until_close(s, timeout):
    s.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return got, False
        except ConnectionResetError:
            return got, True
        if not chunk:
            return got, True
        got += chunk
    return got, False


def status_of(raw):
    """The status code of the first HTTP response in `raw`, or None."""
    if not raw.startswith(b"HTTP/1."):
        return None
    return int(raw.split(b" ", 2)[1])


class BadInputTest(ServerTestCase):
    BASELINE = {"baseline/one": b"1", "baseline/two": "zwei \u2713".encode(),
                "baseline/bin": bytes(range(256))}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for k, v in cls.BASELINE.items():
            r = cls.server.kv_put(k, v)
            assert (r.status, r.body) == (200, b"true"), r
        r = cls.server.put("/v1/catalog/register", {
            "Node": "baseline-node", "Address": "10.9.9.9",
            "Service": {"ID": "base-1", "Service": "base", "Port": 1}})
        assert (r.status, r.body) == (200, b"true"), r

    def setUp(self):
        self.acked = {}

    def tearDown(self):
        self.assert_serving()
        for k, v in {**self.BASELINE, **self.acked}.items():
            self.assertEqual(self.server.kv_value(k), v, f"acknowledged write {k!r} lost")
        ids = [e["ServiceID"] for e in self.server.get("/v1/catalog/service/base").json()]
        self.assertEqual(ids, ["base-1"])

    def still_serving(self, context):
        """A cheap read of an acknowledged key, between two bad requests."""
        r = self.server.get("/v1/kv/baseline/one?raw", timeout=10)
        self.assertEqual((r.status, r.body), (200, b"1"), f"after {context!r}")

    def ack(self, key, value):
        """Writes `key` and records it as acknowledged (checked again in tearDown)."""
        r = self.server.kv_put(key, value)
        self.assertEqual((r.status, r.body), (200, b"true"), r)
        self.acked[key] = value

    def register(self, body):
        return self.server.put("/v1/catalog/register", body)

    def assert_400(self, r, contains=None):
        self.assertEqual(r.status, 400, r)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"), r.headers)
        if contains:
            self.assertIn(contains, r.text)

    # -- JSON bodies ----------------------------------------------------------------------

    def test_malformed_json(self):
        self.ack("bad/json/before", b"x")
        bodies = [b"{", b"}", b"nul", b'{"Node":', b'{"Node": "n",}', b"\xff\xfe\x00",
                  b"[]", b'"a string"', b"42", b"null", b"", b"{" * 100000,
                  b"[" * 100000 + b"]" * 100000, b'{"Node": "n"' + b", " * 1000,
                  b'{"Node": "\xed\xa0\x80", "Address": "1.2.3.4"}']
        for body in bodies:
            r = self.register(body)
            self.assert_400(r)
            self.assertTrue(r.text.startswith("Request decode failed"), (body[:30], r.text))
            self.still_serving(body[:30])
        self.assertNotIn("n", [n["Node"] for n in self.server.get("/v1/catalog/nodes").json()])

    def test_error_bodies_are_valid_utf8(self):
        # Error texts are served as "text/plain; charset=utf-8"; echoing the client's raw
        # bytes into them must not make the body invalid UTF-8 (Go's Consul quotes them).
        cases = [
            ("PUT", "/v1/catalog/register", b"\xff\xfe\x00"),
            ("PUT", "/v1/catalog/register", b'{"Node": "\xff", "Address": "1.2.3.4"}'),
            ("PUT", "/v1/kv/bad/utf8?flags=%ff", b"v"),
            ("GET", "/v1/health/state/%ff", None),
        ]
        bad = []
        for method, path, body in cases:
            r = self.server.request(method, path, body)
            self.assertEqual(r.status, 400, (path, r))
            self.assertIn("charset=utf-8", r.header("Content-Type"))
            try:
                r.body.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(f"{method} {path} {body!r} -> {r.body!r}")
        self.assertFalse(bad, "error bodies that are not valid UTF-8:\n" + "\n".join(bad))

    def test_wrong_types(self):
        base = {"Node": "typed", "Address": "10.0.0.1"}
        cases = [
            ({**base, "Service": {"Service": "s", "Port": "80"}}, "Service.Port"),
            ({**base, "Service": {"Service": "s", "Port": 70000}}, "Service.Port"),
            ({**base, "Service": {"Service": "s", "Port": -1}}, "Service.Port"),
            ({**base, "Service": {"Service": "s", "Port": 8.5}}, "Service.Port"),
            ({**base, "Service": {"Service": "s", "Tags": "a,b"}}, "Service.Tags"),
            ({**base, "Service": {"Service": "s", "Tags": [1]}}, "Service.Tags"),
            ({**base, "Service": {"Service": "s", "Meta": {"k": 1}}}, "Service.Meta"),
            ({**base, "Service": "s"}, "Service"),
            ({**base, "Service": {"Service": 5}}, "Service.Service"),
            ({"Node": 5, "Address": "10.0.0.1"}, "Node"),
            ({"Node": "typed", "Address": ["10.0.0.1"]}, "Address"),
            ({**base, "NodeMeta": {"a": 1}}, "NodeMeta"),
            ({**base, "NodeMeta": []}, "NodeMeta"),
            ({**base, "TaggedAddresses": "lan"}, "TaggedAddresses"),
            ({**base, "Checks": {"Name": "c"}}, "Checks"),
            ({**base, "Checks": ["c"]}, "Checks[0]"),
            ({**base, "Check": {"Name": "c", "Status": 1}}, "Check.Status"),
            ({**base, "SkipNodeUpdate": "yes"}, "SkipNodeUpdate"),
        ]
        for body, field in cases:
            r = self.register(body)
            self.assert_400(r, field)
            self.still_serving(field)
        self.assertIsNone(self.server.get("/v1/catalog/node/typed").json(),
                          "a rejected registration must not create the node")

    def test_missing_node_or_address(self):
        r = self.register({"Address": "10.0.0.1", "Service": {"Service": "s"}})
        self.assert_400(r)
        self.assertIn("node", r.text.lower())
        r = self.register({"Node": "no-address", "Service": {"Service": "s"}})
        self.assert_400(r)
        self.assertIn("address", r.text.lower())
        r = self.register({"Node": "", "Address": ""})
        self.assert_400(r)
        self.assertIsNone(self.server.get("/v1/catalog/node/no-address").json())
        r = self.server.put("/v1/catalog/deregister", {"ServiceID": "x"})
        self.assert_400(r)
        r = self.register({"Node": "no-svc-name", "Address": "10.0.0.1",
                           "Service": {"ID": "x", "Port": 1}})
        self.assert_400(r, "Missing service name")

    def test_unknown_check_status(self):
        self.ack("bad/fluffy/before", b"x")
        for body in (
            {"Node": "fluffy", "Address": "10.0.0.2",
             "Check": {"Name": "c", "Status": "fluffy"}},
            {"Node": "fluffy", "Address": "10.0.0.2",
             "Service": {"ID": "f1", "Service": "fluffy-svc"},
             "Checks": [{"Name": "ok", "Status": "passing", "ServiceID": "f1"},
                        {"Name": "bad", "Status": "fluffy", "ServiceID": "f1"}]},
            {"Node": "fluffy", "Address": "10.0.0.2",
             "Check": {"Name": "c", "Status": "PASSING"}},
        ):
            r = self.register(body)
            self.assert_400(r, "Status for checks must 'passing', 'warning', 'critical'")
        # Nothing of a rejected registration is applied.
        self.assertIsNone(self.server.get("/v1/catalog/node/fluffy").json())
        self.assertEqual(self.server.get("/v1/catalog/service/fluffy-svc").json(), [])
        self.assertEqual(self.server.get("/v1/health/node/fluffy").json(), [])

    def test_check_for_unknown_service(self):
        r = self.register({"Node": "orphan", "Address": "10.0.0.3",
                           "Check": {"Name": "c", "ServiceID": "does-not-exist"}})
        # Consul answers this with an error from its state store; any 4xx/5xx error is fine
        # as long as nothing is registered.
        self.assertIn(r.status, (400, 500), r)
        self.assertIsNone(self.server.get("/v1/catalog/node/orphan").json())

    # -- oversized bodies -----------------------------------------------------------------

    def test_oversized_body_by_content_length(self):
        self.ack("bad/big/before", b"x")
        port = self.server.http_port
        head = (b"PUT /v1/kv/bad/big/huge HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Length: %d\r\n\r\n" % (2 * 1024 * 1024))
        got, closed = raw_exchange(port, head + b"x" * 4096)
        self.assertEqual(status_of(got), 413, got[:300])
        self.assertIn(b"too large", got)
        self.assertTrue(closed, "the server must close the connection after a 413")
        # Same through a catalog endpoint, whose body is JSON.
        head = (b"PUT /v1/catalog/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Length: %d\r\n\r\n" % (1024 * 1024 + 1))
        got, closed = raw_exchange(port, head + b"{")
        self.assertEqual(status_of(got), 413, got[:300])
        self.assertTrue(closed)
        self.assertEqual(self.server.kv_get("bad/big/huge").status, 404)

    def test_oversized_body_chunked(self):
        """A chunked body that grows past 1 MiB is cut off while it streams in."""
        port = self.server.http_port
        sock = socket.create_connection((HOST, port), timeout=RAW_TIMEOUT)
        try:
            sock.sendall(b"PUT /v1/kv/bad/chunked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n" % 65536 + b"y" * 65536 + b"\r\n"

            def send_all():
                try:
                    for _ in range(40):  # 2.5 MiB
                        sock.sendall(chunk)
                    sock.sendall(b"0\r\n\r\n")
                except OSError:
                    pass  # the server closed on us: expected

            sender = run_thread(send_all)
            got, closed = read_until_close(sock, RAW_TIMEOUT)
            sender.join(RAW_TIMEOUT)
        finally:
            sock.close()
        self.assertTrue(closed, "the server must close an over-limit chunked upload")
        if got:
            self.assertEqual(status_of(got), 413, got[:300])
        self.assertEqual(self.server.kv_get("bad/chunked").status, 404)

    # -- broken HTTP ------------------------------------------------------------------------

    def test_garbage_request_lines(self):
        self.ack("bad/garbage/before", b"x")
        port = self.server.http_port
        garbage = [
            b"\x00\x01\x02\x03 garbage\r\n\r\n",
            b"HELLO\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /v1/kv/x HTTP/9.9\r\n\r\n",
            b"GET /v1/kv/x HTTP/1.1\r\nNo colon header line\r\n\r\n",
            b"GET /v1/kv/x HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
            b"PUT /v1/kv/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET /v1/kv/\x7f\xff HTTP/1.1\r\n\r\n",
            b"\xff" * 5000 + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: " + b"a" * (100 * 1024) + b"\r\n\r\n",
        ]
        for data in garbage:
            got, closed = raw_exchange(port, data, read_timeout=3)
            status = status_of(got)
            self.assertTrue(status in (400, 413, 414, 431, 501, 505) or (not got and closed),
                            f"{data[:40]!r} -> {got[:200]!r} closed={closed}")
            # After a request it could not parse, the server cannot find the next one.
            self.assertTrue(closed, f"{data[:40]!r}: connection left open after garbage")
            self.still_serving(data[:40])
        self.assertNotEqual(self.server.kv_value("x"), b"hello")

    def test_slowloris_does_not_block_others(self):
        """Half-sent headers occupy a connection, never the server."""
        self.ack("bad/slow/before", b"x")
        port = self.server.http_port
        slow = []
        opened = time.monotonic()
        try:
            for i in range(5):
                s = socket.create_connection((HOST, port), timeout=RAW_TIMEOUT)
                s.sendall(b"GET /v1/kv/baseline/one HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-%d: "
                          % i)
                slow.append(s)
            for i in range(20):
                r = self.server.get("/v1/kv/baseline/one?raw", timeout=5)
                self.assertEqual((r.status, r.body), (200, b"1"))
                self.ack(f"bad/slow/during/{i}", b"%d" % i)
            # The server closes the stalled connections after its 30 s read timeout.
            for s in slow:
                got, closed = read_until_close(s, max(0.1, opened + 40 - time.monotonic()))
                self.assertTrue(closed, "stalled connection still open after 40 s")
                self.assertNotIn(b"HTTP/1.1 200", got)
        finally:
            for s in slow:
                s.close()

    def test_many_idle_connections(self):
        port = self.server.http_port
        idle = []
        try:
            for _ in range(200):
                idle.append(socket.create_connection((HOST, port), timeout=RAW_TIMEOUT))
            for i in range(20):
                self.ack(f"bad/idle/{i}", b"v%d" % i)
                self.assertEqual(self.server.kv_value(f"bad/idle/{i}"), b"v%d" % i)
            # The idle connections still work when they finally speak.
            for s in idle[:10]:
                s.sendall(b"GET /v1/kv/baseline/one?raw HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
                got, _ = read_until_close(s, RAW_TIMEOUT)
                self.assertEqual(status_of(got), 200, got[:200])
                self.assertTrue(got.endswith(b"\r\n\r\n1"), got[-50:])
        finally:
            for s in idle:
                s.close()

    # -- paths ------------------------------------------------------------------------------

    def test_invalid_percent_escapes_and_newlines(self):
        self.ack("bad/escape/before", b"x")
        for path in ("/v1/kv/a%zz", "/v1/kv/a%", "/v1/kv/a%4", "/v1/kv/a%g1",
                     "/v1/kv/a%0a", "/v1/kv/a%0Ab", "/v1/kv/a%00b",
                     "/v1/catalog/service/web%0a", "/v1/health/service/web%0A",
                     "/v1/kv/x?index=%zz", "/v1/kv/x?%"):
            for method in ("GET", "PUT", "DELETE"):
                r = self.server.request(method, path, b"v" if method == "PUT" else None)
                self.assertEqual(r.status, 400, f"{method} {path}: {r}")
            self.still_serving(path)
        self.assertEqual(self.server.get("/v1/kv/a?keys").json(), [])

    def test_kv_key_edge_cases(self):
        keys = [
            "edge/with space/and  two",
            "edge/ключ/日本語/🙂",
            "edge/" + "k" * 8192,
            "edge/plus+sign",
            "edge/percent%literal",
            "edge/semi;colon,comma=eq&amp",
            "edge/trailing/",
            "edge/dots/...",
            "edge/question?mark#hash",
        ]
        for k in keys:
            self.ack(k, k.encode("utf-8")[:64])
        listed = [e["Key"] for e in self.server.get("/v1/kv/edge/?recurse").json()]
        self.assertEqual(listed, sorted(keys, key=lambda s: s.encode("utf-8")))
        # '+' in a path is a literal plus (Go's PathUnescape), not a space.
        r = request(self.server.http_port, "GET", "/v1/kv/edge/plus+sign?raw")
        self.assertEqual(r.body, b"edge/plus+sign")

    def test_kv_key_with_dot_dot(self):
        # Consul either stores such keys verbatim (older releases) or rejects them (400). It
        # must never resolve them to another key.
        self.ack("dotdot/target", b"original")
        for key in ("dotdot/a/../target", "dotdot/../dotdot/target", "dotdot/.."):
            r = self.server.kv_put(key, b"via dots")
            self.assertIn(r.status, (200, 400), r)
            if r.status == 200:
                self.assertEqual(r.body, b"true")
                self.acked[key] = b"via dots"
                self.assertEqual(self.server.kv_value(key), b"via dots")
                entries = self.server.kv_get(key).json()
                self.assertEqual(entries[0]["Key"], key)
        self.assertEqual(self.server.kv_value("dotdot/target"), b"original")

    def test_very_long_key_over_header_limit(self):
        target = b"/v1/kv/long/" + b"k" * (80 * 1024)
        got, closed = raw_exchange(self.server.http_port,
                                   b"PUT " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Length: 1\r\n\r\nx")
        self.assertTrue(status_of(got) in (400, 414, 431) or (not got and closed), got[:200])
        self.assertEqual(self.server.get("/v1/kv/long/?keys").json(), [])

    def test_method_not_allowed(self):
        for method, path in (("PATCH", "/v1/kv/x"), ("POST", "/v1/catalog/nodes"),
                             ("DELETE", "/v1/catalog/register"), ("GET", "/v1/catalog/register"),
                             ("PUT", "/v1/status/leader"), ("PUT", "/v1/health/service/x"),
                             ("DELETE", "/v1/agent/self"), ("PUT", "/v1/catalog/services"),
                             ("OPTIONS", "/v1/kv/x")):
            r = self.server.request(method, path, b"{}" if method in ("PUT", "POST") else None)
            self.assertEqual(r.status, 405, f"{method} {path}: {r}")
        r = self.server.request("PATCH", "/v1/kv/x")
        self.assertIn("GET", r.header("Allow") or "", "KV's 405 lists the allowed methods")

    def test_unknown_endpoints(self):
        for path in ("/", "/v1", "/v1/", "/v1/nope", "/v2/kv/x", "/v1/catalog/nope",
                     "/v1/health/nope/x", "/v1/status/nope", "/v1/agent/nope"):
            r = self.server.get(path)
            self.assertEqual(r.status, 404, f"{path}: {r}")
        for path in ("/v1/catalog/service/", "/v1/health/service/", "/v1/health/node/",
                     "/v1/health/checks/", "/v1/health/state/"):
            r = self.server.get(path)
            self.assertEqual(r.status, 400, f"{path}: {r}")

    def test_bad_kv_query_values(self):
        self.ack("bad/query/key", b"kept")
        for q in ("?flags=abc", "?flags=-1", "?flags=1e3", "?cas=abc", "?cas=-1", "?cas=",
                  "?acquire=x&release=y", "?cas=1&acquire=x"):
            r = self.server.kv_put("bad/query/key", b"changed", q)
            self.assertEqual(r.status, 400, f"{q}: {r}")
        r = self.server.delete("/v1/kv/bad/query/?recurse&cas=5")
        self.assertEqual(r.status, 400, r)
        r = self.server.delete("/v1/kv/bad/query/key?cas=abc")
        self.assertEqual(r.status, 400, r)

    def test_values_are_bytes_not_text(self):
        value = bytes(range(256)) * 4 + b"\x00\xff\r\n\r\n"
        self.ack("bad/binary", value)
        e = self.server.kv_get("bad/binary").json()[0]
        self.assertEqual(base64.b64decode(e["Value"]), value)
        self.ack("bad/json-looking", json.dumps({"Node": "x"}).encode())


if __name__ == "__main__":
    unittest.main()
