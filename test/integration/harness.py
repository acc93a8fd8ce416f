"""Shared helpers for the integration tests: start `taskmesh server` processes and talk HTTP.

Every server runs in its own temporary data dir on free loopback ports, is waited for with a
deadline (never a fixed sleep), and is stopped by PID: SIGTERM, then SIGKILL after a timeout.
Processes a test forgets to stop are stopped at interpreter exit.

Environment:
  TASKMESH_BIN        path of the taskmesh binary (required; ctest sets it)
  TASKMESH_KEEP_DATA  if set, data dirs and logs of stopped servers are left on disk
"""

import atexit
import functools
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HOST = "127.0.0.1"
# Generous enough for an ASan+UBSan build on a busy 2-core machine.
START_TIMEOUT = float(os.environ.get("TASKMESH_START_TIMEOUT", "60"))
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 30.0

_live = set()
_live_lock = threading.Lock()


def binary():
    """Returns the taskmesh binary named by TASKMESH_BIN, or raises with a clear message."""
    path = os.environ.get("TASKMESH_BIN")
    if not path:
        raise RuntimeError(
            "TASKMESH_BIN is not set: point it at the built binary, e.g. "
            "TASKMESH_BIN=build/src/main/taskmesh (ctest sets it)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"TASKMESH_BIN={path!r} is not an executable file")
    return path


@functools.lru_cache(maxsize=None)
def _ephemeral_low():
    """The first port of the kernel's ephemeral range, read once per test process."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port that was free a moment ago, chosen below the kernel's ephemeral range.

    Binding port 0 gives one from that range (/proc/sys/net/ipv4/ip_local_port_range), which
    any outgoing connection on the machine can take meanwhile as its local port; a listener
    then fails with EADDRINUSE for as long as that connection lives."""
    hi = max(10000 + 1000, _ephemeral_low()) - 1
    for _ in range(1000):
        port = random.randint(10000, hi)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range after 1000 tries")


def stop_process(proc, timeout):
    """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


class ServerExited(RuntimeError):
    """The server process ended while we waited for it: no point in polling further."""


def wait_until(predicate, timeout, interval=0.02, message="condition"):
    """Polls `predicate` until it returns a truthy value or `timeout` seconds pass.

    Exceptions from `predicate` count as "not yet", except ServerExited, which ends the wait.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ServerExited:
            raise
        except Exception as e:  # noqa: BLE001 - the last error is reported on timeout
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}{detail}")
        time.sleep(interval)


class Response:
    """An HTTP answer: status code, headers (case-insensitive) and raw body bytes."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name)

    @property
    def text(self):
        """The body as text; bytes that are not UTF-8 show as U+FFFD."""
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    @property
    def index(self):
        """X-Consul-Index as an int (None when absent)."""
        v = self.headers.get("X-Consul-Index")
        return int(v) if v is not None else None

    def __repr__(self):
        return f"Response({self.status}, {self.body[:200]!r})"


def request(port, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT):
    """One HTTP request to 127.0.0.1:`port` (urllib, fresh connection, always a timeout).

    `path` is sent as given (already percent-encoded, with its query string). `body` may be
    bytes, str or a JSON-serialisable object. Non-2xx answers are returned, not raised.
    """
    data = None
    if body is not None:
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body).encode("utf-8")
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, e.headers, e.read())


class KeepAliveClient:
    """A persistent HTTP/1.1 connection for bulk writes (reconnects after errors)."""

    def __init__(self, port, timeout=REQUEST_TIMEOUT):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body)
            r = self.conn.getresponse()
            return Response(r.status, r.headers, r.read())
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Server:
    """One `taskmesh server -bootstrap` process on free loopback ports.

    The data dir and the ports survive kill9()/stop() so that restart() reopens the same
    Raft log; the Raft address is part of the bootstrapped configuration, so it never changes.
    """

    def __init__(self, node="node1", extra_args=()):
        self.node = node
        self.extra_args = list(extra_args)
        self.root = tempfile.mkdtemp(prefix="taskmesh-it-")  # data dir and logs
        self.data_dir = os.path.join(self.root, "data")
        self.http_port = None
        self.raft_port = None
        self.proc = None
        self.log_path = None
        self._logs = []
        self._starts = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout=START_TIMEOUT):
        """Starts the process and waits until it leads and has registered itself."""
        binary()  # fail clearly before anything else
        attempts = 3 if self.http_port is None else 1
        for attempt in range(attempts):
            if self.http_port is None or attempt > 0:
                self.http_port, self.raft_port = free_port(), free_port()
                while self.raft_port == self.http_port:
                    self.raft_port = free_port()
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except Exception:
                exited = self.proc.poll() is not None
                self.kill9()
                # A port grabbed by someone else between free_port() and bind: retry on
                # fresh ports, but only on a first start (the Raft address is then unset).
                if exited and attempt + 1 < attempts and self._starts == 1:
                    shutil.rmtree(self.data_dir, ignore_errors=True)
                    self._starts = 0
                    continue
                raise
        raise AssertionError("unreachable")

    def _spawn(self):
        os.makedirs(self.root, exist_ok=True)
        self._starts += 1
        self.log_path = os.path.join(self.root, f"server-{len(self._logs) + 1}.log")
        self._logs.append(self.log_path)
        args = [binary(), "server", "-data-dir", self.data_dir, "-bootstrap", "-node", self.node,
                "-http-addr", f"{HOST}:{self.http_port}", "-server-port", str(self.raft_port)]
        args += self.extra_args
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        with _live_lock:
            _live.add(self)

    def wait_ready(self, timeout=START_TIMEOUT):
        """Leader known, catalog reads answered by a leader, and the self-registration done."""

        def ready():
            if self.proc.poll() is not None:
                raise ServerExited(
                    f"taskmesh server exited with {self.proc.returncode} while starting; "
                    f"its log:\n{self.log_tail()}")
            r = self.get("/v1/status/leader", timeout=2)
            if r.status != 200 or not r.json():
                return False
            r = self.get("/v1/catalog/nodes", timeout=2)
            if r.status != 200 or r.header("X-Consul-KnownLeader") != "true":
                return False
            return any(n["Node"] == self.node for n in r.json())

        try:
            wait_until(ready, timeout, interval=0.05, message=f"server {self.node} to be ready")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n--- server log ---\n{self.log_tail()}") from None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code (None if not running)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        try:
            return stop_process(proc, timeout)
        finally:
            with _live_lock:
                _live.discard(self)

    def kill9(self):
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            if proc.poll() is None:
                proc.kill()
            proc.wait(STOP_TIMEOUT)
        finally:
            with _live_lock:
                _live.discard(self)

    def restart(self, graceful=True, timeout=START_TIMEOUT):
        """Stops (SIGTERM, or SIGKILL when not graceful) and starts on the same data dir."""
        if graceful:
            self.stop()
        else:
            self.kill9()
        return self.start(timeout)

    def cleanup(self):
        self.stop()
        if not os.environ.get("TASKMESH_KEEP_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=40):
        out = []
        for path in self._logs[-2:]:
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace").splitlines()
                out.append(f"[{os.path.basename(path)}]")
                out.extend(text[-lines:])
            except OSError:
                pass
        return "\n".join(out)

    # -- HTTP --------------------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT):
        return request(self.http_port, method, path, body, headers, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def kv_put(self, key, value, query=""):
        """PUT /v1/kv/<key>; returns the Response (caller checks status and body)."""
        return self.put("/v1/kv/" + quote_key(key) + query, value)

    def kv_get(self, key, query=""):
        return self.get("/v1/kv/" + quote_key(key) + query)

    def kv_value(self, key):
        """The stored bytes of `key`, or None when it is missing."""
        r = self.kv_get(key, "?raw")
        if r.status == 404:
            return None
        if r.status != 200:
            raise AssertionError(f"GET {key!r}?raw: {r.status} {r.body[:200]!r}")
        return r.body

    def raft_dir(self):
        return os.path.join(self.data_dir, "raft")


class Agent:
    """One `taskmesh agent` process on a free loopback port, joined to `servers` (HOST:PORT
    strings) and/or a join file. Like Server, it keeps its data dir across restarts."""

    def __init__(self, node, servers=(), join_file=None, extra_args=()):
        self.node = node
        self.servers = list(servers)
        self.join_file = join_file
        self.extra_args = list(extra_args)
        self.root = tempfile.mkdtemp(prefix="taskmesh-agent-")
        self.data_dir = os.path.join(self.root, "data")
        self.http_port = None
        self.proc = None
        self._logs = []

    def start(self, timeout=START_TIMEOUT):
        binary()
        if self.http_port is None:
            self.http_port = free_port()
        log_path = os.path.join(self.root, f"agent-{len(self._logs) + 1}.log")
        self._logs.append(log_path)
        args = [binary(), "agent", "-data-dir", self.data_dir, "-node", self.node,
                "-http-addr", f"{HOST}:{self.http_port}", "-advertise", HOST]
        for s in self.servers:
            args += ["-retry-join", s]
        if self.join_file:
            args += ["-retry-join-file", self.join_file]
        args += self.extra_args
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        with _live_lock:
            _live.add(self)

        def ready():
            if self.proc.poll() is not None:
                raise ServerExited(f"taskmesh agent exited with {self.proc.returncode}; "
                                   f"its log:\n{self.log_tail()}")
            return self.get("/v1/agent/self", timeout=2).status == 200

        wait_until(ready, timeout, interval=0.05, message=f"agent {self.node} to answer")
        return self

    stop = Server.stop
    kill9 = Server.kill9
    alive = Server.alive
    pid = Server.pid
    log_tail = Server.log_tail
    request = Server.request
    get = Server.get
    put = Server.put
    delete = Server.delete

    def restart(self, timeout=START_TIMEOUT):
        self.stop()
        return self.start(timeout)

    def cleanup(self):
        self.stop()
        if not os.environ.get("TASKMESH_KEEP_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)


def quote_key(key):
    """Percent-encodes a KV key for a URL path, keeping '/' as the separator."""
    return urllib.parse.quote(key, safe="/")


def _stop_all():
    with _live_lock:
        servers = list(_live)
    for s in servers:
        try:
            s.stop(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)


class ServerTestCase(unittest.TestCase):
    """Starts one server for the whole class (setUpClass) and stops it afterwards.

    Tests in such a class must not depend on each other: each uses its own key prefix or
    node name, so order does not matter.
    """

    server = None
    server_args = ()  # extra `taskmesh server` flags for the class's server

    @classmethod
    def setUpClass(cls):
        cls.server = Server(node=cls.node_name(), extra_args=cls.server_args)
        try:
            cls.server.start()
        except Exception:
            cls.server.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.cleanup()

    @classmethod
    def node_name(cls):
        return "srv-" + cls.__name__.lower()

    def assert_serving(self):
        """The server still answers a read and a write."""
        s = self.server
        self.assertTrue(s.alive(), "server process died:\n" + s.log_tail())
        r = s.get("/v1/status/leader", timeout=10)
        self.assertEqual(r.status, 200, r)
        r = s.kv_put("health/probe", b"ok")
        self.assertEqual((r.status, r.body), (200, b"true"), r)

    def unique(self, prefix):
        """A name unique to this test method (its id plus a counter)."""
        n = getattr(self, "_unique_n", 0) + 1
        self._unique_n = n
        return f"{prefix}-{self._testMethodName}-{n}".replace("_", "-")


def run_thread(target, *args, **kwargs):
    """Starts a daemon thread running `target`; the result or exception lands in .result/.error."""

    class T(threading.Thread):
        def __init__(self):
            super().__init__(daemon=True)
            self.result = None
            self.error = None
            self.finished_at = None

        def run(self):
            try:
                self.result = target(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - re-raised by the test
                self.error = e
            finally:
                self.finished_at = time.monotonic()

    t = T()
    t.start()
    return t
