"""`taskmesh ecs` driven by the real AWS CLI: the ECS API, task definition validation,
dependsOn ordering (read back from the timeline), health checks, essential exits, services
(replacement, rolling update), restarts, and leak checks. Runs as root (runc, CNI)."""

import json
import os
import signal
import subprocess
import unittest

from ecs_harness import NETWORK, AwsError, EcsRuntime
from harness import wait_until

PY = "/usr/bin/python3"


def container(name, command, **kw):
    c = {"name": name, "image": "host", "command": command, "stopTimeout": 2}
    c.update(kw)
    return c


def shell(script):
    return ["/bin/sh", "-c", script]


# A container that exits promptly on SIGTERM (a shell as PID 1 ignores it without a trap).
def idle(code=0):
    return shell(f"trap 'exit {code}' TERM; while :; do sleep 0.1; done")


def events(timeline, subject=None):
    return [(e["subject"], e["event"]) for e in timeline
            if subject is None or e["subject"] == subject]


def first_index(timeline, subject, event):
    for i, e in enumerate(timeline):
        if e["subject"] == subject and e["event"] == event:
            return i
    raise AssertionError(f"no {subject} {event} in {events(timeline)}")


class EcsTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("taskmesh ecs needs root (runc, network namespaces)")
        cls.ecs = EcsRuntime()
        cls.addClassCleanup(cls.ecs.cleanup)  # also runs when start() fails
        cls.ecs.start()

    def tearDown(self):
        self.ecs.stop_all()

    def assertAwsError(self, code, fn, *args, contains=""):
        with self.assertRaises(AwsError) as cm:
            fn(*args)
        self.assertEqual(cm.exception.code, code, cm.exception.stderr)
        self.assertEqual(cm.exception.returncode, 254)
        self.assertIn(contains, cm.exception.message)
        return cm.exception

    def assertNoLeftovers(self, timeout=30):
        try:
            wait_until(lambda: not self.ecs.leftovers(), timeout, interval=0.2,
                       message="no leftovers")
        except TimeoutError:
            self.fail(f"leftovers: {self.ecs.leftovers()}")


class ApiTest(EcsTestCase):
    def test_clusters(self):
        ecs = self.ecs
        c = ecs.aws("create-cluster", "--cluster-name", "blue")["cluster"]
        self.assertEqual(c["clusterArn"], "arn:aws:ecs:us-east-1:000000000000:cluster/blue")
        self.assertEqual(c["status"], "ACTIVE")
        arns = ecs.aws("list-clusters")["clusterArns"]
        self.assertIn(c["clusterArn"], arns)
        self.assertTrue(any(a.endswith("/default") for a in arns))
        out = ecs.aws("describe-clusters", "--clusters", "blue", "nope")
        self.assertEqual([x["clusterName"] for x in out["clusters"]], ["blue"])
        self.assertEqual(out["failures"][0]["reason"], "MISSING")
        self.assertEqual(ecs.aws("delete-cluster", "--cluster", "blue")["cluster"]["status"],
                         "INACTIVE")
        self.assertNotIn(c["clusterArn"], ecs.aws("list-clusters")["clusterArns"])
        self.assertAwsError("ClusterNotFoundException", ecs.aws, "list-tasks", "--cluster",
                            "blue", contains="Cluster not found.")

    def test_task_definitions(self):
        ecs = self.ecs
        base = {"family": "tdtest", "containerDefinitions": [container("a", ["true"])]}
        first = ecs.register(base)
        self.assertEqual(first["revision"], 1)
        self.assertEqual(first["status"], "ACTIVE")
        c = first["containerDefinitions"][0]
        self.assertEqual((c["essential"], c["environment"], c["mountPoints"], c["portMappings"],
                          c["volumesFrom"]), (True, [], [], [], []))
        self.assertEqual(first["networkMode"], "awsvpc")
        ecs.register(base)
        ecs.aws("deregister-task-definition", "--task-definition", "tdtest:2")
        third = ecs.register(base)
        self.assertEqual(third["revision"], 3, "revisions never reuse a deregistered number")
        latest = ecs.aws("describe-task-definition", "--task-definition", "tdtest")
        self.assertEqual(latest["taskDefinition"]["revision"], 3)
        two = ecs.aws("describe-task-definition", "--task-definition",
                      "arn:aws:ecs:us-east-1:000000000000:task-definition/tdtest:2")
        self.assertEqual(two["taskDefinition"]["status"], "INACTIVE")
        # The CLI pages with --page-size: every page after the first uses our nextToken.
        arns = ecs.aws("list-task-definitions", "--family-prefix", "tdtest", "--page-size",
                       "1")["taskDefinitionArns"]
        self.assertEqual([a.rsplit(":", 1)[1] for a in arns], ["1", "3"])
        desc = ecs.aws("list-task-definitions", "--family-prefix", "tdtest", "--sort", "DESC")
        self.assertEqual([a.rsplit(":", 1)[1] for a in desc["taskDefinitionArns"]], ["3", "1"])
        inactive = ecs.aws("list-task-definitions", "--status", "INACTIVE")
        self.assertTrue(any(a.endswith("tdtest:2") for a in inactive["taskDefinitionArns"]))
        fams = ecs.aws("list-task-definition-families", "--family-prefix", "tdte")["families"]
        self.assertEqual(fams, ["tdtest"])
        self.assertAwsError("ClientException", ecs.aws, "describe-task-definition",
                            "--task-definition", "nope:1")

    def test_bad_task_definitions(self):
        ecs = self.ecs
        cases = [
            ({"family": "bad", "containerDefinitions": []}, "Container list cannot be empty."),
            ({"family": "bad", "containerDefinitions": [container("a", ["true"]),
                                                         container("a", ["true"])]},
             "Container names must be unique within a Task Definition."),
            ({"family": "bad", "containerDefinitions": [
                container("a", ["true"], essential=False)]},
             "Task definition doesn't have any essential container."),
            ({"family": "bad", "containerDefinitions": [
                container("init", ["true"]),
                container("app", ["true"], dependsOn=[{"containerName": "init",
                                                       "condition": "SUCCESS"}])]},
             "A dependency container with SUCCESS or COMPLETE condition cannot be an essential"),
            ({"family": "bad", "containerDefinitions": [
                container("p", ["true"]),
                container("app", ["true"], dependsOn=[{"containerName": "p",
                                                       "condition": "HEALTHY"}])]},
             "has no healthCheck"),
            ({"family": "bad", "containerDefinitions": [
                container("a", ["true"], dependsOn=[{"containerName": "b",
                                                     "condition": "START"}]),
                container("b", ["true"], dependsOn=[{"containerName": "a",
                                                     "condition": "START"}])]},
             "dependsOn has a cycle"),
            ({"family": "bad", "containerDefinitions": [
                container("a", ["true"], dependsOn=[{"containerName": "ghost",
                                                     "condition": "START"}])]},
             "ghost"),
            ({"family": "bad", "containerDefinitions": [
                container("a", ["true"], healthCheck={"command": ["CMD", "true"],
                                                      "interval": 1})]},
             "interval must be between 5 and 300"),
            ({"family": "bad", "containerDefinitions": [
                container("a", ["true"], mountPoints=[{"sourceVolume": "v",
                                                       "containerPath": "/v"}])]},
             "does not name an entry of volumes"),
        ]
        for definition, message in cases:
            with self.subTest(message=message):
                self.assertAwsError("ClientException", ecs.register, definition,
                                    contains=message)
        # The CLI itself rejects a bad condition before sending; a raw-JSON mistake still
        # gets a clear error from the API.
        self.assertAwsError("ClientException", ecs.register,
                            {"family": "bad b", "containerDefinitions": [container("a", ["x"])]},
                            contains="family")

    def test_run_task_errors(self):
        ecs = self.ecs
        ecs.register({"family": "errs", "containerDefinitions": [container("a", idle())]})
        self.assertAwsError("InvalidParameterException", ecs.aws, "run-task",
                            "--task-definition", "errs", contains="Network Configuration")
        self.assertAwsError("ClientException", ecs.aws, "run-task", "--task-definition",
                            "missing", *NETWORK)
        self.assertAwsError("ClusterNotFoundException", ecs.aws, "run-task", "--cluster",
                            "nope", "--task-definition", "errs", *NETWORK)
        missing = ecs.aws("describe-tasks", "--tasks", "0123456789abcdef0123456789abcdef")
        self.assertEqual(missing["failures"][0]["reason"], "MISSING")
        self.assertAwsError("InvalidParameterException", ecs.aws, "stop-task", "--task",
                            "0123456789abcdef0123456789abcdef")


class LifecycleTest(EcsTestCase):
    def mesh_like_task(self):
        """The shape of a Consul-on-ECS task: an init container (SUCCESS), a proxy with a
        health check (HEALTHY), the app, and an independent sidecar; a shared volume."""
        shared = [{"sourceVolume": "shared", "containerPath": "/shared"}]
        probe = ("import urllib.request,os;"
                 "urllib.request.urlopen('http://127.0.0.1:8080/', timeout=2)")
        fetch_meta = ("import urllib.request,os,json;"
                      "t=json.load(urllib.request.urlopen(os.environ['ECS_CONTAINER_METADATA_URI_V4']"
                      "+'/task', timeout=5));print('meta', t['TaskARN'], t['Family']);"
                      "print('proxy says', urllib.request.urlopen('http://127.0.0.1:8080/ready',"
                      " timeout=5).read().decode().strip())")
        return self.ecs.register({
            "family": "meshlike",
            "containerDefinitions": [
                container("init", shell("echo init-ok > /shared/ready"), essential=False,
                          mountPoints=shared),
                container("proxy", shell(f"cd /shared && exec {PY} -m http.server 8080 "
                                         "--bind 127.0.0.1"),
                          dependsOn=[{"containerName": "init", "condition": "SUCCESS"}],
                          healthCheck={"command": ["CMD", PY, "-c", probe], "interval": 5,
                                       "timeout": 3, "retries": 2},
                          mountPoints=shared),
                container("app", shell(f"{PY} -c \"{fetch_meta}\"; cat /shared/ready; "
                                       "trap 'echo bye; exit 0' TERM; "
                                       "while :; do sleep 0.1; done"),
                          dependsOn=[{"containerName": "proxy", "condition": "HEALTHY"}],
                          volumesFrom=[{"sourceContainer": "init", "readOnly": True}]),
                container("side", idle(), essential=False),
            ],
            "volumes": [{"name": "shared"}],
        })

    def test_depends_on_order_and_metadata(self):
        ecs = self.ecs
        self.mesh_like_task()
        arn = ecs.run_task("meshlike", "--tags", "key=team,value=mesh")
        task = ecs.wait_status(arn, "RUNNING", timeout=60)
        tl = ecs.timeline(arn)
        # init must have exited 0 before the proxy was created; the proxy must have been
        # HEALTHY before the app was created; the task RUNNING only after every start.
        self.assertLess(first_index(tl, "init", "STOPPED"), first_index(tl, "proxy", "CREATED"))
        self.assertLess(first_index(tl, "proxy", "HEALTHY"), first_index(tl, "app", "CREATED"))
        self.assertLess(first_index(tl, "app", "RUNNING"), first_index(tl, "task", "RUNNING"))
        self.assertLess(first_index(tl, "task", "PROVISIONING"), first_index(tl, "task", "PENDING"))
        by_name = {c["name"]: c for c in task["containers"]}
        self.assertEqual(by_name["init"]["exitCode"], 0)
        self.assertEqual(by_name["proxy"]["healthStatus"], "HEALTHY")
        self.assertEqual(task["tags"], [{"key": "team", "value": "mesh"}])
        ip = [d["value"] for d in task["attachments"][0]["details"]
              if d["name"] == "privateIPv4Address"][0]
        self.assertTrue(ip.startswith(ecs.subnet.rsplit(".", 1)[0]), ip)
        self.assertEqual(by_name["app"]["networkInterfaces"][0]["privateIpv4Address"], ip)
        for key in ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt"):
            self.assertIn(key, task)
        # The app read the metadata endpoint, talked to the proxy over localhost and read
        # the shared volume.
        log = wait_until(lambda: "init-ok" in ecs.logs(arn, "app") and ecs.logs(arn, "app"), 30,
                         message="app output")
        self.assertIn(f"meta {arn} meshlike", log)
        self.assertIn("proxy says init-ok", log)
        stopped = ecs.aws("stop-task", "--task", arn)["task"]
        self.assertEqual(stopped["desiredStatus"], "STOPPED")
        self.assertEqual(stopped["stopCode"], "UserInitiated")
        task = ecs.wait_status(arn, "STOPPED", timeout=60)
        self.assertEqual(task["stoppedReason"], "Task stopped by user")
        tl = ecs.timeline(arn)
        # Shutdown order reverses dependsOn: the app stops before the proxy is signalled.
        self.assertLess(first_index(tl, "app", "STOPPED"), first_index(tl, "proxy", "SIGTERM"))
        statuses = [e for s, e in events(tl, "task")]
        for s in ("DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"):
            self.assertIn(s, statuses)
        self.assertIn("bye", ecs.logs(arn, "app"))
        self.assertIn("stoppingAt", task)
        self.assertIn("stoppedAt", task)
        self.assertNoLeftovers()

    def test_essential_exit_stops_task(self):
        ecs = self.ecs
        ecs.register({"family": "essential", "containerDefinitions": [
            container("main", shell("sleep 0.5; echo leaving; exit 3")),
            container("helper", idle(0), essential=False),
            container("dependent", idle(0), essential=False,
                      dependsOn=[{"containerName": "helper", "condition": "START"}]),
        ]})
        arn = ecs.run_task("essential")
        task = ecs.wait_status(arn, "STOPPED", timeout=60)
        self.assertEqual(task["stopCode"], "EssentialContainerExited")
        self.assertEqual(task["stoppedReason"], "Essential container in task exited")
        codes = {c["name"]: c.get("exitCode") for c in task["containers"]}
        self.assertEqual(codes["main"], 3)
        self.assertEqual(codes["helper"], 0)
        tl = ecs.timeline(arn)
        self.assertLess(first_index(tl, "dependent", "STOPPED"),
                        first_index(tl, "helper", "SIGTERM"))
        self.assertIn("leaving", ecs.logs(arn, "main"))
        self.assertNoLeftovers()

    def test_failed_success_dependency_stops_task(self):
        ecs = self.ecs
        ecs.register({"family": "failinit", "containerDefinitions": [
            container("init", shell("exit 7"), essential=False),
            container("app", idle(), dependsOn=[{"containerName": "init",
                                                 "condition": "SUCCESS"}]),
        ]})
        arn = ecs.run_task("failinit")
        task = ecs.wait_status(arn, "STOPPED", timeout=60)
        self.assertEqual(task["stopCode"], "TaskFailedToStart")
        self.assertIn("did not exit successfully", task["stoppedReason"])
        app = [c for c in task["containers"] if c["name"] == "app"][0]
        self.assertNotIn("exitCode", app, "the app never started")
        self.assertNoLeftovers()

    def test_health_transitions(self):
        ecs = self.ecs
        ecs.register({"family": "health", "containerDefinitions": [
            container("web", shell("touch /state/ok; trap 'exit 0' TERM; "
                                   "while :; do sleep 0.1; done"),
                      healthCheck={"command": ["CMD-SHELL", "test -f /state/ok"], "interval": 5,
                                   "timeout": 2, "retries": 1},
                      mountPoints=[{"sourceVolume": "state", "containerPath": "/state"}])],
            "volumes": [{"name": "state"}]})
        arn = ecs.run_task("health")
        task = ecs.wait_task(arn, lambda t: t["healthStatus"] == "HEALTHY", 60, "HEALTHY")
        self.assertEqual(task["lastStatus"], "RUNNING")
        # Make the check fail: remove the marker through the task's volume on the host.
        os.remove(os.path.join(ecs.data_dir, "tasks", arn.rsplit("/", 1)[1], "volumes", "state",
                               "ok"))
        task = ecs.wait_task(arn, lambda t: t["healthStatus"] == "UNHEALTHY", 60, "UNHEALTHY")
        web = task["containers"][0]
        self.assertEqual(web["healthStatus"], "UNHEALTHY")
        self.assertEqual(task["lastStatus"], "RUNNING", "a stand-alone task keeps running")
        tl = ecs.timeline(arn)
        self.assertLess(first_index(tl, "web", "HEALTHY"), first_index(tl, "web", "UNHEALTHY"))
        ecs.aws("stop-task", "--task", arn)
        ecs.wait_status(arn, "STOPPED", timeout=60)
        self.assertNoLeftovers()

    def test_tasks_reach_each_other_by_ip(self):
        ecs = self.ecs
        ecs.register({"family": "server", "containerDefinitions": [
            container("http", shell(f"mkdir -p /tmp/w && echo hello-from-server > /tmp/w/i && "
                                    f"cd /tmp/w && exec {PY} -m http.server 8000"))]})
        server = ecs.run_task("server")
        task = ecs.wait_status(server, "RUNNING", timeout=60)
        ip = task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
        fetch = (f"import urllib.request,time\nfor _ in range(50):\n try:\n"
                 f"  print(urllib.request.urlopen('http://{ip}:8000/i', timeout=2).read()"
                 f".decode()); break\n except Exception as e: time.sleep(0.2)")
        ecs.register({"family": "client", "containerDefinitions": [
            container("get", [PY, "-c", fetch])]})
        client = ecs.run_task("client")
        done = ecs.wait_status(client, "STOPPED", timeout=60)
        self.assertEqual(done["containers"][0]["exitCode"], 0)
        self.assertIn("hello-from-server", ecs.logs(client, "get"))
        ecs.aws("stop-task", "--task", server)
        ecs.wait_status(server, "STOPPED", timeout=60)
        self.assertNoLeftovers()

    def test_stop_while_provisioning(self):
        ecs = self.ecs
        ecs.register({"family": "quickstop", "containerDefinitions": [container("a", idle())]})
        out = ecs.api("RunTask", {"taskDefinition": "quickstop", "networkConfiguration": {
            "awsvpcConfiguration": {"subnets": ["s"]}}})
        arn = out["tasks"][0]["taskArn"]
        self.assertEqual(out["tasks"][0]["lastStatus"], "PROVISIONING")
        ecs.api("StopTask", {"task": arn})  # while its network is being set up
        task = ecs.wait_status(arn, "STOPPED", timeout=60)
        self.assertEqual(task["stopCode"], "UserInitiated")
        self.assertNotIn("exitCode", task["containers"][0], "the container never started")
        self.assertNoLeftovers()

    def test_container_settings(self):
        ecs = self.ecs
        ecs.register({"family": "settings", "containerDefinitions": [
            container("c", shell("id -u; id -g; pwd; echo $GREETING; touch /x 2>&1 || "
                                 "echo ro-root; test -x /usr/local/bin/taskmesh && echo has-tm; "
                                 "cat /data/file; echo written > /data/out"),
                      user="65534:65534", workingDirectory="/tmp",
                      environment=[{"name": "GREETING", "value": "hi"}],
                      readonlyRootFilesystem=True,
                      mountPoints=[{"sourceVolume": "d", "containerPath": "/data"}])],
            "volumes": [{"name": "d", "host": {"sourcePath": os.path.join(ecs.root, "hostvol")}}],
        })
        os.makedirs(os.path.join(ecs.root, "hostvol"), exist_ok=True)
        with open(os.path.join(ecs.root, "hostvol", "file"), "w") as f:
            f.write("from-host\n")
        os.chmod(os.path.join(ecs.root, "hostvol"), 0o777)
        arn = ecs.run_task("settings", "--overrides", json.dumps({"containerOverrides": [
            {"name": "c", "environment": [{"name": "GREETING", "value": "overridden"}]}]}))
        task = ecs.wait_status(arn, "STOPPED", timeout=60)
        self.assertEqual(task["stopCode"], "EssentialContainerExited")
        lines = ecs.logs(arn, "c").split()
        self.assertEqual(lines[:4], ["65534", "65534", "/tmp", "overridden"])
        for want in ("ro-root", "has-tm", "from-host"):
            self.assertIn(want, lines)
        with open(os.path.join(ecs.root, "hostvol", "out")) as f:
            self.assertEqual(f.read(), "written\n")
        self.assertNoLeftovers()


class ServiceTest(EcsTestCase):
    def running(self, service, revision=None):
        arns = self.ecs.api("ListTasks", {"serviceName": service})["taskArns"]
        if not arns:
            return []
        tasks = self.ecs.api("DescribeTasks", {"tasks": arns})["tasks"]
        return [t for t in tasks if t["lastStatus"] == "RUNNING" and
                (revision is None or t["taskDefinitionArn"].endswith(f":{revision}"))]

    def test_replacement_and_rolling_update(self):
        ecs = self.ecs
        ecs.register({"family": "svc", "containerDefinitions": [container("w", idle())]})
        svc = ecs.aws("create-service", "--service-name", "web", "--task-definition", "svc",
                      "--desired-count", "2", *NETWORK)["service"]
        self.assertEqual(svc["deployments"][0]["status"], "PRIMARY")
        wait_until(lambda: len(self.running("web")) == 2, 60, 0.3, message="2 running")
        victim = self.running("web")[0]
        self.assertEqual(victim["group"], "service:web")
        self.assertTrue(victim["startedBy"].startswith("ecs-svc/"))
        ecs.aws("stop-task", "--task", victim["taskArn"])
        wait_until(lambda: len(self.running("web")) == 2 and victim["taskArn"] not in
                   [t["taskArn"] for t in self.running("web")], 60, 0.3, message="replacement")
        # Rolling update to revision 2 within maximumPercent 150 / minimumHealthyPercent 50.
        ecs.register({"family": "svc", "containerDefinitions": [container("w", idle())]})
        ecs.aws("update-service", "--service", "web", "--task-definition", "svc:2",
                "--deployment-configuration", "maximumPercent=150,minimumHealthyPercent=50")
        peak = [0]

        def rolled():
            arns = ecs.api("ListTasks", {"serviceName": "web"})["taskArns"]
            peak[0] = max(peak[0], len(arns))
            svc = ecs.api("DescribeServices", {"services": ["web"]})["services"][0]
            return (len(self.running("web", 2)) == 2 and len(svc["deployments"]) == 1 and
                    svc["deployments"][0]["rolloutState"] == "COMPLETED" and svc)

        svc = wait_until(rolled, 120, 0.3, message="rolling update to revision 2")
        self.assertLessEqual(peak[0], 3, "maximumPercent 150 of 2 allows at most 3 tasks")
        self.assertEqual(svc["runningCount"], 2)
        self.assertTrue(svc["taskDefinition"].endswith("svc:2"))
        self.assertTrue(any("steady state" in e["message"] for e in svc["events"]))
        stopped = ecs.aws("list-tasks", "--service-name", "web", "--desired-status",
                          "STOPPED")["taskArns"]
        self.assertTrue(ecs.aws("describe-tasks", "--tasks", *stopped[:3])["tasks"])
        self.assertGreaterEqual(len(stopped), 3)
        # Scale to zero and delete.
        self.assertAwsError("InvalidParameterException", ecs.aws, "delete-service",
                            "--service", "web", contains="scaled above 0")
        ecs.aws("update-service", "--service", "web", "--desired-count", "0")
        ecs.aws("delete-service", "--service", "web")
        wait_until(lambda: ecs.api("DescribeServices", {"services": ["web"]})["services"][0]
                   ["status"] == "INACTIVE", 60, 0.3, message="INACTIVE")
        self.assertEqual(ecs.aws("describe-services", "--services", "web")["services"][0]
                         ["status"], "INACTIVE")
        self.assertNotIn("web", " ".join(ecs.aws("list-services")["serviceArns"]))
        self.assertNoLeftovers()

    def test_unhealthy_task_is_replaced(self):
        ecs = self.ecs
        ecs.register({"family": "flaky", "containerDefinitions": [
            container("w", idle(),
                      healthCheck={"command": ["CMD-SHELL", "test ! -f /tmp/sick && "
                                               "touch /tmp/sick"], "interval": 5,
                                   "timeout": 2, "retries": 1})]})
        ecs.aws("create-service", "--service-name", "flaky", "--task-definition", "flaky",
                "--desired-count", "1", *NETWORK)
        first = wait_until(lambda: self.running("flaky"), 60, 0.3, message="running")[0]
        done = ecs.wait_task(first["taskArn"], lambda t: t["lastStatus"] == "STOPPED", 90,
                             "the unhealthy task to stop")
        self.assertEqual(done["stopCode"], "ServiceSchedulerInitiated")
        self.assertEqual(done["stoppedReason"], "Task failed container health checks")
        wait_until(lambda: [t for t in self.running("flaky")
                            if t["taskArn"] != first["taskArn"]], 60, 0.3,
                   message="a replacement")
        ecs.aws("delete-service", "--service", "flaky", "--force")
        wait_until(lambda: not ecs.api("ListTasks", {"serviceName": "flaky"})["taskArns"], 60,
                   0.3, message="tasks gone")
        self.assertNoLeftovers()


class RestartTest(EcsTestCase):
    def test_kill9_then_restart_leaves_nothing(self):
        ecs = self.ecs
        ecs.register({"family": "survivor", "containerDefinitions": [
            container("a", idle()), container("b", idle(), essential=False)]})
        arn = ecs.run_task("survivor")
        ecs.wait_status(arn, "RUNNING", timeout=60)
        ecs.aws("create-cluster", "--cluster-name", "kept")
        ecs.kill9()
        self.assertTrue(ecs.leftovers().get("processes"), "containers outlive a kill -9")
        ecs.start()
        self.assertEqual(ecs.leftovers(), {})
        task = ecs.task(arn)
        self.assertEqual(task["lastStatus"], "STOPPED")
        self.assertIn("restarted", task["stoppedReason"])
        # State survived: the cluster and the task definition are still there.
        self.assertIn("kept", " ".join(ecs.aws("list-clusters")["clusterArns"]))
        self.assertEqual(ecs.aws("describe-task-definition", "--task-definition",
                                 "survivor")["taskDefinition"]["revision"], 1)
        # And the runtime works as before.
        arn2 = ecs.run_task("survivor")
        ecs.wait_status(arn2, "RUNNING", timeout=60)
        self.assertEqual(ecs.stop(), 0)
        self.assertEqual(ecs.leftovers(), {})
        self.assertFalse(os.path.exists(f"/sys/class/net/{ecs.bridge}"), "bridge removed")
        ecs.start()
        self.assertEqual(ecs.task(arn2)["lastStatus"], "STOPPED")

    def test_crashed_container_is_cleaned(self):
        ecs = self.ecs
        ecs.register({"family": "crasher", "containerDefinitions": [
            container("a", idle()), container("b", idle(), essential=False)]})
        arn = ecs.run_task("crasher")
        ecs.wait_status(arn, "RUNNING", timeout=60)
        # Kill the container's init from the host, as the OOM killer or a crash would.
        state = subprocess.run(["runc", "--root", os.path.join(ecs.data_dir, "runc"), "state",
                                arn.rsplit("/", 1)[1] + "-a"], capture_output=True, text=True,
                               check=True)
        os.kill(json.loads(state.stdout)["pid"], signal.SIGKILL)
        task = ecs.wait_status(arn, "STOPPED", timeout=60)
        self.assertEqual(task["stopCode"], "EssentialContainerExited")
        codes = {c["name"]: c.get("exitCode") for c in task["containers"]}
        self.assertEqual(codes, {"a": 137, "b": 0})
        self.assertNoLeftovers()


if __name__ == "__main__":
    unittest.main()
