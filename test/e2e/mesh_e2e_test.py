"""End to end: examples/hello on the local runtime through `taskmesh up` (root, runc, CNI).

One runtime (its own bridge, /24, ports) and one `taskmesh up` for the class; the tests then
drive it the way a user would: curl through the frontend, intentions on the server, the AWS CLI
for task definitions and services, kill -9 of a container. Requests go from the host to the
frontend task's IP only; everything else stays inside the runtime's own network namespaces.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

from ecs_harness import AwsError, EcsRuntime  # noqa: E402
from harness import binary, wait_until  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(ROOT, "examples", "hello")


def http_get(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def first_event(events, subject, event):
    for e in events:
        if e["subject"] == subject and e["event"] == event:
            return e
    raise AssertionError(f"no {subject} {event} in the timeline")


class Load:
    """Steady requests to the frontend (every 20 ms) on a thread; counts what failed."""

    def __init__(self, url):
        self.url = url
        self.ok = 0
        self.failed = []
        self.bodies = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                status, body = http_get(self.url, timeout=5)
                if status == 200:
                    self.ok += 1
                    self.bodies.append(body)
                else:
                    self.failed.append(f"HTTP {status}")
            except (urllib.error.URLError, OSError) as e:
                self.failed.append(str(e))
            time.sleep(0.02)

    def stop(self, what):
        """Stops after one more second of load and prints what happened during `what`."""
        time.sleep(1)
        self._stop.set()
        self._thread.join(10)
        print(f"\n{what}: {self.ok} requests ok, {len(self.failed)} failed "
              f"({sorted(set(self.failed))[:3]})", file=sys.stderr)
        return self


class MeshE2ETest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ecs = EcsRuntime().start()
        cls.root = tempfile.mkdtemp(prefix="taskmesh-e2e-")
        cls.report_path = os.path.join(cls.root, "report.json")
        cls.up_log = os.path.join(cls.root, "up.log")
        with open(cls.up_log, "wb") as log:
            cls.up = subprocess.Popen(
                [binary(), "up", EXAMPLE, "-api-addr", f"127.0.0.1:{cls.ecs.port}",
                 "-report", cls.report_path, "-timeout", "3m"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        try:
            wait_until(lambda: cls.up.poll() is None and cls.report().get("ready"), 200,
                       interval=0.2, message="taskmesh up to report the mesh ready")
        except Exception:
            print(cls.up_output(), file=sys.stderr)
            cls.tearDownClass()
            raise
        report = cls.report()
        cls.server = report["serverAddr"]
        front = [t for t in report["tasks"] if t["service"] == "frontend"][0]
        cls.frontend_url = f"http://{front['ip']}:8080/"

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "up", None) and cls.up.poll() is None:
            cls.up.send_signal(signal.SIGINT)
            try:
                cls.up.wait(180)
            except subprocess.TimeoutExpired:
                cls.up.kill()
        cls.ecs.cleanup()
        if os.environ.get("TASKMESH_KEEP_DATA"):
            print(f"kept: {cls.root}", file=sys.stderr)
        else:
            shutil.rmtree(cls.root, ignore_errors=True)

    @classmethod
    def report(cls):
        try:
            with open(cls.report_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    @classmethod
    def up_output(cls):
        with open(cls.up_log, errors="replace") as f:
            return f.read()

    def consul(self, method, path, body=None):
        req = urllib.request.Request(f"http://{self.server}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def running_tasks(self, service):
        arns = self.ecs.api("ListTasks", {"cluster": "hello", "serviceName": service})["taskArns"]
        if not arns:
            return []
        return self.ecs.api("DescribeTasks", {"cluster": "hello", "tasks": arns})["tasks"]

    def describe(self, arn):
        return self.ecs.api("DescribeTasks", {"cluster": "hello", "tasks": [arn]})["tasks"][0]

    def passing_backends(self):
        return {e["Service"]["ID"] for e in self.consul("GET", "/v1/health/service/backend?passing")}

    # 0 -----------------------------------------------------------------------------------------
    def test_0_task_definitions_validate_against_the_ecs_model(self):
        # The ECS API model of the AWS CLI's botocore (Debian's awscli package).
        from awscli.botocore.session import get_session
        from awscli.botocore.validate import ParamValidator
        shape = get_session().get_service_model("ecs").operation_model(
            "RegisterTaskDefinition").input_shape
        runs = [["-server"]] + [["-app", os.path.join(EXAMPLE, f"{n}.task.json"), "-mesh-config",
                                  os.path.join(EXAMPLE, f"{n}.mesh.json")]
                                 for n in ("backend", "frontend")]
        for args in runs:
            out = subprocess.run([binary(), "task-definition", *args], capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            result = ParamValidator().validate(json.loads(out.stdout), shape)
            self.assertFalse(result.has_errors(), result.generate_report())
        bad = subprocess.run([binary(), "task-definition", "-app",
                              os.path.join(EXAMPLE, "backend.task.json"), "-mesh-config",
                              os.path.join(EXAMPLE, "stack.json")],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("mesh config: cluster: unknown field", bad.stderr)

    # 1 -----------------------------------------------------------------------------------------
    def test_1_startup_follows_the_timeline(self):
        report = self.report()
        apps = [t for t in report["tasks"] if t["service"] != "taskmesh-server"]
        self.assertEqual(len(apps), 3, report)
        for t in apps:
            times = [t[f"t{i}"] for i in range(5)]
            self.assertEqual(times, sorted(times), t)
            events = self.ecs.timeline(t["taskArn"])
            at = lambda s, e: first_event(events, s, e)["at"]  # noqa: E731
            self.assertEqual(first_event(events, "discover-servers", "STOPPED")["detail"],
                             "exitCode=0")
            self.assertEqual(first_event(events, "mesh-init", "STOPPED")["detail"], "exitCode=0")
            self.assertLessEqual(at("discover-servers", "STOPPED"), at("consul-client", "CREATED"))
            self.assertLessEqual(at("discover-servers", "STOPPED"), at("mesh-init", "CREATED"))
            self.assertLessEqual(at("mesh-init", "STOPPED"), at("sidecar-proxy", "CREATED"))
            self.assertLessEqual(at("sidecar-proxy", "HEALTHY"), at("app", "CREATED"))
            # The app's process exists from `runc start` on, and the runtime notes RUNNING only
            # once that returns, so the service may pass (T4) a few ms before RUNNING is noted;
            # what the timeline promises is that the app was being started before it passed.
            self.assertLessEqual(at("app", "CREATED"), t["t4"])
        self.assertIn("T4", self.up_output())
        self.assertIn("curl " + self.frontend_url, self.up_output())

    def test_2_request_flows_through_the_sidecars(self):
        seen = set()
        for _ in range(8):
            status, body = http_get(self.frontend_url)
            self.assertEqual(status, 200)
            self.assertTrue(body.startswith("hello from backend ip-"), body)
            seen.add(body.strip())
        self.assertEqual(len(seen), 2, f"both backends answer (round robin): {seen}")

    def test_3_backend_app_port_is_not_reachable_from_another_task(self):
        front = [t for t in self.report()["tasks"] if t["service"] == "frontend"][0]
        back = [t for t in self.report()["tasks"] if t["service"] == "backend"][0]
        netns = [e["detail"].split()[1] for e in self.ecs.timeline(front["taskArn"])
                 if e["event"] == "NETWORK_ATTACHED"][0]
        probe = ("import socket,sys\n"
                 "def dial(port):\n"
                 "    try:\n"
                 f"        socket.create_connection(('{back['ip']}', port), timeout=2).close()\n"
                 "        return 'open'\n"
                 "    except OSError as e:\n"
                 "        return type(e).__name__\n"
                 "print(dial(8080), dial(20000))\n")
        r = subprocess.run(["nsenter", f"--net={netns}", "/usr/bin/python3", "-c", probe],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        app_port, sidecar_port = r.stdout.split()
        self.assertEqual(app_port, "ConnectionRefusedError", "the app listens on loopback only")
        self.assertEqual(sidecar_port, "open", "only the sidecar's mTLS listener is reachable")

    def test_4_deny_intention_blocks_within_one_second_and_allow_restores(self):
        self.consul("PUT", "/v1/connect/intentions/exact?source=frontend&destination=backend",
                    {"Action": "deny"})
        try:
            start = time.monotonic()

            def denied():
                try:
                    return http_get(self.frontend_url)[0] != 200
                except urllib.error.HTTPError as e:
                    return e.code == 502
            wait_until(denied, 5, interval=0.02, message="the deny to take effect")
            took = time.monotonic() - start
            self.assertLess(took, 1.0, f"deny took {took:.3f} s")
            time.sleep(0.3)
            with self.assertRaises(urllib.error.HTTPError):
                http_get(self.frontend_url)
        finally:
            self.consul("PUT", "/v1/connect/intentions/exact?source=frontend&destination=backend",
                        {"Action": "allow"})
        wait_until(lambda: http_get(self.frontend_url)[0] == 200, 5, interval=0.02,
                   message="the allow to restore traffic")
        self.consul("DELETE", "/v1/connect/intentions/exact?source=frontend&destination=backend")

    def test_5_killed_backend_container_is_replaced(self):
        victim = self.running_tasks("backend")[0]
        pid = int(first_event(self.ecs.timeline(victim["taskArn"]), "app",
                              "RUNNING")["detail"].split("=")[1])
        load = Load(self.frontend_url)
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: self.describe(victim["taskArn"])["lastStatus"] == "STOPPED", 60,
                   interval=0.2, message="the task with the killed app to stop")
        self.assertEqual(self.describe(victim["taskArn"])["stopCode"], "EssentialContainerExited")

        def replaced():
            tasks = [t for t in self.running_tasks("backend") if t["lastStatus"] == "RUNNING"]
            return len(tasks) == 2 and len(self.passing_backends()) == 2
        wait_until(replaced, 90, interval=0.2, message="a replacement backend passing")
        load.stop("kill -9 of a backend app")
        self.assertGreater(load.ok, 20)
        self.assertEqual(len({b for b in load.bodies[-10:]}), 2, "both backends serve again")

    def test_6_rolling_update_under_steady_load(self):
        with open(os.path.join(EXAMPLE, "backend.task.json")) as f:
            app = json.load(f)
        env = app["containerDefinitions"][0]["environment"][0]
        env["value"] = env["value"].replace("hello from backend", "hello from backend v2")
        app_path = os.path.join(self.root, "backend-v2.task.json")
        with open(app_path, "w") as f:
            json.dump(app, f)
        out = subprocess.run([binary(), "task-definition", "-app", app_path, "-mesh-config",
                              os.path.join(EXAMPLE, "backend.mesh.json")],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        definition = json.loads(out.stdout)
        registered = self.ecs.aws("register-task-definition", "--cli-input-json",
                                  json.dumps(definition))["taskDefinition"]
        load = Load(self.frontend_url)
        time.sleep(0.5)
        self.ecs.aws("update-service", "--cluster", "hello", "--service", "backend",
                     "--task-definition", registered["taskDefinitionArn"])

        def rolled():
            tasks = self.running_tasks("backend")
            return (len(tasks) == 2 and all(t["taskDefinitionArn"] == registered["taskDefinitionArn"]
                                            and t["lastStatus"] == "RUNNING" for t in tasks)
                    and len(self.passing_backends()) == 2
                    and all("v2" in b for b in load.bodies[-6:]))
        wait_until(rolled, 120, interval=0.2, message="the rolling update")
        load.stop("rolling update of the backend")
        self.assertGreater(load.ok, 20)
        # New tasks count as healthy only once their service passes (consul-client's health
        # check), and a stopping task's sidecar refuses the handshake once its app is gone, so
        # the caller's sidecar retries elsewhere: nothing fails.
        self.assertEqual(load.failed, [], "no request fails during a rolling update")

    # last ----------------------------------------------------------------------------------------
    def test_9_ctrl_c_stops_everything(self):
        self.up.send_signal(signal.SIGINT)
        self.assertEqual(self.up.wait(180), 0, self.up_output()[-3000:])
        self.assertIn("Stopped.", self.up_output())
        self.assertEqual(self.ecs.leftovers(), {})
        try:
            running = self.ecs.api("ListTasks", {"cluster": "hello"})["taskArns"]
        except AwsError as e:  # up deleted the cluster
            self.assertEqual(e.code, "ClusterNotFoundException")
            running = []
        self.assertEqual(running, [])


if __name__ == "__main__":
    unittest.main()
