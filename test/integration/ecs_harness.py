"""Helpers for the `taskmesh ecs` integration tests: one runtime per test class, driven by the
real AWS CLI (/usr/bin/aws, Debian's awscli v2).

Each runtime has its own temp data dir, a free API port, its own bridge name and its own /24,
so runtimes of parallel ctest jobs (and of the release and sanitizer stages) never share
anything. The /24 comes from the pool the C++ runtime tests take theirs from (198.19.<n>.0/24,
each slot held by an flock; NetSlot in src/runtime/drivers/test_support.cc), so a runtime here
never shares a subnet with one of those tests either. It is stopped by PID (SIGTERM, then SIGKILL), and what a
SIGKILL leaves behind is removed by starting the runtime again on the same data dir, which
the leak tests check.
"""

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

from harness import HOST, START_TIMEOUT, binary, free_port, stop_process, wait_until

AWS = "/usr/bin/aws"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_PAGER": "",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": tempfile.gettempdir(),
}
NETWORK = ["--network-configuration", "awsvpcConfiguration={subnets=[subnet-local]}"]


class AwsError(Exception):
    """The AWS CLI exited non-zero: `code` is the ECS error type, `message` its text."""

    def __init__(self, returncode, stderr):
        self.returncode = returncode
        self.stderr = stderr
        self.code = ""
        if "An error occurred (" in stderr:
            self.code = stderr.split("An error occurred (", 1)[1].split(")", 1)[0]
        self.message = stderr.strip().split(": ", 1)[-1]
        super().__init__(f"aws exited {returncode}: {stderr.strip()}")


SLOT_DIR = "/tmp/taskmesh-drivers-test"  # NetSlot's lock files (test_support.cc)


def _net_slot():
    """(bridge name, /24, lock fd): slot n of 198.19.<n>.0/24, n in 1..250, reserved for as
    long as the fd stays open, exactly as NetSlot reserves one."""
    os.makedirs(SLOT_DIR, exist_ok=True)
    start = os.getpid() % 250
    for i in range(250):
        n = 1 + (start + i) % 250
        fd = os.open(os.path.join(SLOT_DIR, f"{n}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return f"tmi{n}-{os.getpid()}"[:15], f"198.19.{n}.0/24", fd
    raise RuntimeError(f"no free test subnet: all 250 slots in {SLOT_DIR} are locked")


class EcsRuntime:
    """One `taskmesh ecs` process."""

    def __init__(self, extra_args=()):
        self.root = tempfile.mkdtemp(prefix="taskmesh-ecs-it-")
        self.data_dir = os.path.join(self.root, "data")
        self.bridge, self.subnet, self._slot_fd = _net_slot()
        self.extra_args = list(extra_args)
        self.port = None
        self.proc = None
        self.metadata_port = free_port()
        self.log_paths = []
        self.started_tasks = []

    def start(self):
        binary()
        self.port = self.port or free_port()
        log_path = os.path.join(self.root, f"ecs-{len(self.log_paths) + 1}.log")
        self.log_paths.append(log_path)
        args = [binary(), "ecs", "-data-dir", self.data_dir, "-api-addr", f"{HOST}:{self.port}",
                "-bridge", self.bridge, "-subnet", self.subnet, "-metadata-port",
                str(self.metadata_port), "-log-level", "debug"] + self.extra_args
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"taskmesh ecs exited {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            return self.aws("list-clusters", timeout=30)

        wait_until(ready, START_TIMEOUT, interval=0.1, message="taskmesh ecs to answer")
        return self

    def stop(self, timeout=60):
        if not self.proc:
            return None
        proc, self.proc = self.proc, None
        return stop_process(proc, timeout)

    def kill9(self):
        proc, self.proc = self.proc, None
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def cleanup(self):
        """Stops the runtime. After a kill -9 its containers still run: a start on the same
        data dir removes them (the runtime's own orphan cleanup) before the data is deleted
        (deleting a live container's rootfs would unmount its /usr under it)."""
        self.stop()
        if self.port and self.leftovers():
            try:
                self.start()
            finally:
                self.stop()
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            subprocess.run(["ip", "link", "del", self.bridge], check=False)
        if not os.environ.get("TASKMESH_KEEP_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)
        if self._slot_fd is not None:  # the bridge is gone: the subnet is free again
            os.close(self._slot_fd)
            self._slot_fd = None

    def log_tail(self, lines=60):
        try:
            with open(self.log_paths[-1], "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except (OSError, IndexError):
            return ""

    # -- the AWS CLI ---------------------------------------------------------------------------

    def aws(self, *args, timeout=60):
        """Runs `aws ecs ARGS --endpoint-url ...` and returns its JSON output (or None)."""
        cmd = [AWS, "ecs", *args, "--endpoint-url", f"http://{HOST}:{self.port}",
               "--output", "json"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=AWS_ENV)
        if r.returncode != 0:
            raise AwsError(r.returncode, r.stderr)
        return json.loads(r.stdout) if r.stdout.strip() else None

    def register(self, definition):
        return self.aws("register-task-definition", "--cli-input-json",
                        json.dumps(definition))["taskDefinition"]

    def run_task(self, task_definition, *extra):
        out = self.aws("run-task", "--task-definition", task_definition, *NETWORK, *extra)
        assert not out["failures"], out
        self.started_tasks.append(out["tasks"][0]["taskArn"])
        return out["tasks"][0]["taskArn"]

    def stop_all(self, timeout=60):
        """Stops every task run_task started that still runs, and waits for STOPPED."""
        arns, self.started_tasks = self.started_tasks, []
        if not self.proc:
            return
        for arn in arns:
            if self.task(arn)["lastStatus"] != "STOPPED":
                self.aws("stop-task", "--task", arn)
        for arn in arns:
            self.wait_status(arn, "STOPPED", timeout)

    def api(self, operation, body):
        """One ECS API call over plain HTTP, for polling loops (the AWS CLI costs about a
        second of CPU per call; every operation is also exercised through the CLI)."""
        req = urllib.request.Request(
            f"http://{HOST}:{self.port}/", data=json.dumps(body).encode(), method="POST",
            headers={"X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{operation}",
                     "Content-Type": "application/x-amz-json-1.1"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            err = json.loads(e.read() or b"{}")
            raise AwsError(254, f"An error occurred ({err.get('__type')}) when calling the "
                                f"{operation} operation: {err.get('message')}") from None

    def task(self, arn):
        out = self.api("DescribeTasks", {"tasks": [arn], "include": ["TAGS"]})
        assert out["tasks"], out
        return out["tasks"][0]

    def wait_task(self, arn, predicate, timeout=90, message="task state"):
        last = {}

        def check():
            last["task"] = self.task(arn)
            return predicate(last["task"])

        try:
            wait_until(check, timeout, interval=0.2, message=message)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; last: {json.dumps(last.get('task'), indent=1)[:3000]}\n"
                               f"timeline:\n{self.timeline_text(arn)}") from None
        return last["task"]

    def wait_status(self, arn, status, timeout=90):
        return self.wait_task(arn, lambda t: t["lastStatus"] == status, timeout,
                              f"lastStatus {status}")

    # -- taskmesh ecs timeline / logs ----------------------------------------------------------

    def timeline(self, arn):
        task_id = arn.rsplit("/", 1)[-1]
        url = f"http://{HOST}:{self.port}/taskmesh/v1/tasks/{task_id}/timeline"
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())["events"]

    def timeline_text(self, arn):
        r = subprocess.run([binary(), "ecs", "timeline", arn.rsplit("/", 1)[-1], "-api-addr",
                            f"{HOST}:{self.port}"], capture_output=True, text=True, timeout=10)
        return r.stdout + r.stderr

    def logs(self, arn, container):
        r = subprocess.run([binary(), "ecs", "logs", arn.rsplit("/", 1)[-1], container,
                            "-api-addr", f"{HOST}:{self.port}"], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return r.stdout

    # -- leak checks ---------------------------------------------------------------------------

    def leftovers(self):
        """Everything of this runtime that should be gone when no task runs."""
        out = {}
        netns = os.path.join(self.data_dir, "network", "netns")
        out["netns"] = sorted(os.listdir(netns)) if os.path.isdir(netns) else []
        brif = f"/sys/class/net/{self.bridge}/brif"
        out["veths"] = sorted(os.listdir(brif)) if os.path.isdir(brif) else []
        ipam = os.path.join(self.data_dir, "network", "ipam")
        leases = []
        for dirpath, _, files in os.walk(ipam):
            leases += [f for f in files if f[0].isdigit()]
        out["leases"] = sorted(leases)
        r = subprocess.run(["runc", "--root", os.path.join(self.data_dir, "runc"), "list", "-q"],
                           capture_output=True, text=True, timeout=30)
        out["containers"] = r.stdout.split()
        with open("/proc/self/mountinfo") as f:
            out["mounts"] = [l.split()[4] for l in f
                             if self.data_dir in l.split()[4] and not l.split()[4].endswith(
                                 "/network/netns")]
        out["processes"] = self.container_processes()
        return {k: v for k, v in out.items() if v}

    def container_processes(self):
        """Processes of this runtime's containers: every container process (and health-check
        exec) has this runtime's metadata URL in its environment."""
        marker = f":{self.metadata_port}/v4/".encode()
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if b"ECS_CONTAINER_METADATA_URI_V4=" in env and marker in env:
                found.append(f"{pid}:{cmd[:80]}")
        return found
