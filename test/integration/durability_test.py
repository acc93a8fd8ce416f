"""Durability of acknowledged writes across crashes, snapshots and damaged log tails.

A write counts as acknowledged only once its 200 "true" answer has been read: the server
promises that such an entry is committed (fsync'd) and applied (src/raft/raft_node.h).

The Raft log lives in DATA_DIR/raft/ (libraft's uv I/O): closed segments are named
"<first>-<last>", open ones "open-<counter>" and are preallocated (8 MiB of zeros at first).
An open segment holds an 8-byte format version (1 = libraft's legacy format, 2 adds an
8-byte first index), then batches: two CRC32s, an entry count, 16-byte entry headers (term,
type, size) and the entries' data; the written part ends where the zeros begin.

Set TASKMESH_DURABILITY_SEED to replay the random kill moments of a failed run.
"""

import base64
import http.client
import os
import random
import re
import struct
import threading
import time
import unittest

from harness import KeepAliveClient, Server, wait_until

SEED = int(os.environ.get("TASKMESH_DURABILITY_SEED", str(int(time.time() * 1000) % 100000)))


def listing(server, prefix):
    """{key: (value bytes, flags, CreateIndex, ModifyIndex)} of everything below `prefix`."""
    r = server.get(f"/v1/kv/{prefix}?recurse", timeout=120)
    if r.status == 404:
        return {}
    if r.status != 200:
        raise AssertionError(f"GET {prefix}?recurse: {r}")
    return {e["Key"]: (base64.b64decode(e["Value"] or ""), e["Flags"], e["CreateIndex"],
                       e["ModifyIndex"]) for e in r.json()}


def catalog_state(server):
    """The catalog as the API shows it, for before/after comparisons."""
    nodes = server.get("/v1/catalog/nodes").json()
    services = server.get("/v1/catalog/services").json()
    checks = server.get("/v1/health/state/any").json()
    return nodes, services, sorted(checks, key=lambda c: (c["Node"], c["CheckID"]))


# -- libraft segment files -------------------------------------------------------------------

class Batch:
    def __init__(self, start, end, n_entries, data_start):
        self.start, self.end, self.n_entries, self.data_start = start, end, n_entries, data_start


def segment_header_size(fmt):
    return {1: 8, 2: 16}.get(fmt)


def parse_segment(path):
    """(format, [Batch]) of the written part of a segment file; format 0 = never written."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        return 0, []
    fmt = struct.unpack_from("<Q", data, 0)[0]
    off = segment_header_size(fmt)
    if off is None:
        return fmt, []
    batches = []
    while off + 16 <= len(data):
        _crc1, _crc2, n = struct.unpack_from("<IIQ", data, off)
        if n == 0 or n > 1 << 20 or off + 16 + 16 * n > len(data):
            break
        sizes = [struct.unpack_from("<QB3xI", data, off + 16 + 16 * i)[2] for i in range(n)]
        data_start = off + 16 + 16 * n
        end = data_start + sum(sizes)
        if end > len(data):
            break
        batches.append(Batch(off, end, n, data_start))
        off = end
    return fmt, batches


def open_segments(raft_dir):
    """Open segment files, oldest counter first."""
    names = [n for n in os.listdir(raft_dir) if re.fullmatch(r"open-\d+", n)]
    return sorted(names, key=lambda n: int(n.split("-")[1]))


def active_open_segment(raft_dir):
    """(path, format, batches) of the newest open segment holding entries, or None."""
    for name in reversed(open_segments(raft_dir)):
        path = os.path.join(raft_dir, name)
        fmt, batches = parse_segment(path)
        if fmt != 0 and batches:
            return path, fmt, batches
    return None


def closed_segments(raft_dir):
    return sorted(n for n in os.listdir(raft_dir) if re.fullmatch(r"\d+-\d+", n))


def raft_dir_listing(raft_dir):
    return ", ".join(f"{n}({os.path.getsize(os.path.join(raft_dir, n))})"
                     for n in sorted(os.listdir(raft_dir)))


class DurabilityTestBase(unittest.TestCase):
    server_args = ()  # extra `taskmesh server` flags

    def setUp(self):
        self.server = Server(node="durable", extra_args=self.server_args)
        self.addCleanup(self.server.cleanup)
        self.server.start()

    def put(self, key, value, client=None):
        r = (client.request("PUT", "/v1/kv/" + key, value) if client
             else self.server.kv_put(key, value))
        self.assertEqual((r.status, r.body), (200, b"true"), r)
        return r.index

    def bulk_put(self, items, concurrency=8):
        """PUTs {key: value} with `concurrency` keep-alive clients; all must be acknowledged."""
        keys = list(items)
        errors = []

        def worker(part):
            c = KeepAliveClient(self.server.http_port, timeout=60)
            try:
                for k in part:
                    r = c.request("PUT", "/v1/kv/" + k, items[k])
                    if (r.status, r.body) != (200, b"true"):
                        errors.append((k, r))
                        return
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((None, e))
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(keys[i::concurrency],), daemon=True)
                   for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
            self.assertFalse(t.is_alive(), "bulk writer hung")
        self.assertEqual(errors, [], "bulk writes failed")

    def assert_present(self, expected, prefix, context):
        got = listing(self.server, prefix)
        lost = sorted(k for k in expected if k not in got)
        wrong = sorted(k for k in expected if k in got and got[k][0] != expected[k])
        self.assertEqual(
            (lost[:10], wrong[:10]), ([], []),
            f"{context}: {len(lost)} acknowledged keys lost, {len(wrong)} with wrong values "
            f"(of {len(expected)}); seed={SEED}\n{self.server.log_tail(20)}")
        return got


class KillNineTest(DurabilityTestBase):
    ROUNDS = 5
    WRITERS = 4

    def test_acknowledged_writes_survive_kill9(self):
        rng = random.Random(SEED)
        acked = {}  # every round's acknowledged keys, checked after every later crash too
        attempted = {}
        lock = threading.Lock()
        for rnd in range(self.ROUNDS):
            stop = threading.Event()
            count = [0]

            def writer(w, rnd=rnd, stop=stop, count=count):
                c = KeepAliveClient(self.server.http_port, timeout=10)
                n = 0
                try:
                    while not stop.is_set():
                        key = f"dur/r{rnd}/w{w}/{n:06d}"
                        value = f"value of {key}".encode() * (1 + n % 4)
                        with lock:
                            attempted[key] = value
                        r = c.request("PUT", "/v1/kv/" + key, value)
                        if (r.status, r.body) != (200, b"true"):
                            return
                        with lock:
                            acked[key] = value
                            count[0] += 1
                        n += 1
                except (OSError, http.client.HTTPException):
                    return  # the server died under us: expected
                finally:
                    c.close()

            threads = [threading.Thread(target=writer, args=(w,), daemon=True)
                       for w in range(self.WRITERS)]
            for t in threads:
                t.start()
            # Let some writes land, then kill at a random moment while writes are in flight.
            wait_until(lambda: count[0] >= 20, 30, message="first acknowledged writes")
            time.sleep(rng.uniform(0.05, 1.5))
            self.server.kill9()
            stop.set()
            for t in threads:
                t.join(30)
                self.assertFalse(t.is_alive(), "writer did not notice the dead server")

            self.server.start()
            got = self.assert_present(acked, "dur/", f"round {rnd} after kill -9")
            # Unacknowledged writes may or may not have landed, but never garbled.
            for k, (v, *_rest) in got.items():
                self.assertEqual(v, attempted.get(k), f"{k}: a value nobody wrote")
            # Indexes keep growing after the crash.
            top = max(e[3] for e in got.values())
            attempted[f"dur/after/{rnd}"] = b"x"
            self.assertGreater(self.put(f"dur/after/{rnd}", b"x"), top)
            acked[f"dur/after/{rnd}"] = b"x"


def snapshot_files(raft_dir):
    return [n for n in os.listdir(raft_dir) if n.startswith("snapshot-")]


class SnapshotTest(DurabilityTestBase):
    KEYS = 20000
    # No interval-driven snapshot within the test: the backlog bound (8 x 2048 = 16384
    # entries) takes it.
    server_args = ("-raft-snapshot-threshold", "2048", "-raft-snapshot-interval", "1h")

    def test_snapshot_and_compaction_survive_restarts(self):
        s = self.server
        # Catalog rows and a deletion that the snapshot has to carry.
        r = s.put("/v1/catalog/register", {
            "Node": "snap-node", "Address": "10.3.0.1", "NodeMeta": {"k": "v"},
            "Service": {"ID": "snap-1", "Service": "snap", "Tags": ["t"], "Port": 9},
            "Checks": [{"CheckID": "snap-chk", "Name": "c", "Status": "warning",
                        "ServiceID": "snap-1"}]})
        self.assertEqual(r.body, b"true")
        self.put("snapdel/gone", b"to be deleted")
        self.assertEqual(s.delete("/v1/kv/snapdel/gone").body, b"true")

        items = {f"snap/{n:06d}": b"v%d" % n for n in range(self.KEYS)}
        self.bulk_put(items)
        for n in range(0, self.KEYS, 1000):  # rewritten keys: CreateIndex != ModifyIndex
            self.put(f"snap/{n:06d}", b"rewritten-%d" % n)
            items[f"snap/{n:06d}"] = b"rewritten-%d" % n
        raft = s.raft_dir()
        self.assertTrue(snapshot_files(raft), f"no snapshot after {self.KEYS} entries: "
                                   f"{raft_dir_listing(raft)}")

        before = listing(s, "snap/")
        self.assertEqual({k: v[0] for k, v in before.items()}, items)
        before_catalog = catalog_state(s)
        before_index = s.get("/v1/kv/snap/?recurse").index

        for graceful in (True, False):
            if graceful:
                self.assertEqual(s.stop(), 0, "SIGTERM must end the server cleanly")
                s.start()
            else:
                s.restart(graceful=False)
            how = "graceful restart" if graceful else "kill -9 restart"
            after = listing(s, "snap/")
            self.assertEqual(len(after), len(before), how)
            diff = [k for k in before if after.get(k) != before[k]]
            self.assertEqual(diff[:10], [], f"{how}: keys whose value/flags/indexes changed")
            self.assertEqual(catalog_state(s), before_catalog, how)
            self.assertEqual(s.kv_get("snapdel/gone").status, 404, how)
            self.assertGreaterEqual(s.get("/v1/kv/snap/?recurse").index, before_index, how)

        # The log keeps working on top of the restored snapshot.
        top = max(v[3] for v in before.values())
        self.assertGreater(self.put("snap/after", b"new"), top)
        s.restart(graceful=False)
        self.assertEqual(s.kv_value("snap/after"), b"new")
        self.assertEqual(len(listing(s, "snap/")), self.KEYS + 1)


class SnapshotPolicyTest(DurabilityTestBase):
    """Consul's policy: a snapshot once the interval has passed and the threshold is reached."""
    server_args = ("-raft-snapshot-threshold", "500", "-raft-snapshot-interval", "1s")

    def test_a_snapshot_waits_for_both_the_threshold_and_the_interval(self):
        raft = self.server.raft_dir()
        self.bulk_put({f"pol/{n:04d}": b"v" for n in range(300)})
        time.sleep(2.5)  # past the interval (1-2 s), below the threshold
        self.put("pol/below", b"x")
        self.assertEqual(snapshot_files(raft), [], "a snapshot below the threshold")

        self.bulk_put({f"pol/more/{n:04d}": b"v" for n in range(300)})
        deadline = time.monotonic() + 10
        n = 0
        while not snapshot_files(raft) and time.monotonic() < deadline:
            time.sleep(0.3)
            self.put(f"pol/poke/{n}", b"x")  # a due snapshot is taken after the next write
            n += 1
        self.assertTrue(snapshot_files(raft), "no snapshot 10 s after the threshold was passed: "
                                              f"{raft_dir_listing(raft)}")
        with open(self.server.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        started = re.search(r"snapshot started index=\d+ entries_since_last=(\d+) fork_ms=", log)
        self.assertTrue(started, log)
        self.assertGreaterEqual(int(started.group(1)), 500, log)
        self.assertRegex(log, r"snapshot taken bytes=\d+ encode_ms=\d+")
        self.assertEqual(len(listing(self.server, "pol/")), 601 + n)


class TornTailTest(DurabilityTestBase):
    """Damage the end of the Raft log after a kill -9, then restart on it."""

    def write_and_kill(self, n=30):
        acked = {}
        for i in range(n):
            key, value = f"torn/{i:04d}", b"value-%04d" % i
            self.put(key, value)
            acked[key] = value
        self.server.kill9()
        return acked

    def active(self):
        found = active_open_segment(self.server.raft_dir())
        if found is None:
            self.fail("no open segment with entries in " + raft_dir_listing(self.server.raft_dir()))
        path, fmt, batches = found
        if segment_header_size(fmt) is None:
            self.skipTest(f"unknown libraft segment format {fmt} in {path}")
        return found

    def keys_in(self, path, start, end, acked):
        with open(path, "rb") as f:
            f.seek(start)
            region = f.read(end - start)
        return {k for k in acked if k.encode() in region}

    def restart_and_check(self, acked, damaged=frozenset(), context=""):
        try:
            self.server.start()
        except Exception as e:  # noqa: BLE001 - turned into a test failure with details
            self.fail(f"{context}: server did not come back: {e}")
        expected = {k: v for k, v in acked.items() if k not in damaged}
        got = self.assert_present(expected, "torn/", context)
        for k in damaged & set(got):
            self.assertEqual(got[k][0], acked[k], f"{context}: {k} garbled")
        # The repaired log accepts writes, and they survive another crash.
        self.put("torn/after", b"after")
        self.server.restart(graceful=False)
        self.assertEqual(self.server.kv_value("torn/after"), b"after")
        self.assert_present(expected, "torn/", context + ", then a second kill -9")
        return got

    def test_big_entries_fill_closed_segments_then_torn_tail(self):
        # ~10 MiB of entries closes at least one 8 MiB segment before the damaged tail.
        acked = {}
        big = os.urandom(256 * 1024)
        for i in range(40):
            key = f"torn/big/{i:02d}"
            self.put(key, big[:-2] + b"%02d" % i)
            acked[key] = big[:-2] + b"%02d" % i
        self.assertTrue(closed_segments(self.server.raft_dir()),
                        raft_dir_listing(self.server.raft_dir()))
        acked.update(self.write_and_kill(10))
        path, _fmt, batches = self.active()
        with open(path, "r+b") as f:
            f.seek(batches[-1].end)
            f.write(os.urandom(64))
        self.restart_and_check(acked, context="garbage after the last batch, with closed "
                                              "segments before it")

    def test_garbage_after_last_batch(self):
        acked = self.write_and_kill()
        path, _fmt, batches = self.active()
        with open(path, "r+b") as f:  # a batch whose write began but never completed
            f.seek(batches[-1].end)
            f.write(struct.pack("<IIQ", 0xDEADBEEF, 0xFEEDFACE, 1) + os.urandom(48))
        self.restart_and_check(acked, context="garbage after the last batch")

    def test_append_garbage_to_newest_open_segment(self):
        acked = self.write_and_kill()
        newest = os.path.join(self.server.raft_dir(), open_segments(self.server.raft_dir())[-1])
        with open(newest, "ab") as f:
            f.write(os.urandom(100))
        self.restart_and_check(acked, context=f"100 garbage bytes appended to {newest}")

    def test_truncate_newest_open_segment(self):
        acked = self.write_and_kill()
        newest = os.path.join(self.server.raft_dir(), open_segments(self.server.raft_dir())[-1])
        os.truncate(newest, max(0, os.path.getsize(newest) - 7))
        self.restart_and_check(acked, context=f"7 bytes cut from the end of {newest}")

    def test_damaged_last_batch(self):
        acked = self.write_and_kill()
        path, _fmt, batches = self.active()
        last = batches[-1]
        damaged = self.keys_in(path, last.start, last.end, acked)
        with open(path, "r+b") as f:  # the last batch's data no longer matches its CRC
            f.seek(last.end - 8)
            f.write(b"\xa5" * 8)
        self.restart_and_check(acked, damaged, context="last batch corrupted (CRC mismatch)")

    def test_truncated_inside_last_batch(self):
        # A torn write that left only part of the last batch on disk, with the file ending
        # there (no preallocated zeros after it).
        acked = self.write_and_kill()
        path, _fmt, batches = self.active()
        last = batches[-1]
        damaged = self.keys_in(path, last.start, last.end, acked)
        cut = last.data_start + (last.end - last.data_start) // 2
        os.truncate(path, cut)
        self.restart_and_check(
            acked, damaged,
            context=f"{os.path.basename(path)} truncated to {cut} bytes, inside its last batch "
                    f"[{last.start}, {last.end})")


if __name__ == "__main__":
    unittest.main()
