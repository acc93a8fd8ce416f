#!/usr/bin/env python3
"""Registers N service instances at a fixed concurrency, then exits (bench/run_all, part 4).

    populate.py --target taskmesh|etcd --port P [--total 100000] [--concurrency 64]
                [--timeout-s 300]

Registration i (0 <= i < total) is node node-<i//10> with service s-<k>, where
k = (i%10)*10 + node%10: 100,000 gives 10,000 nodes x 10 instances and 100 services of
1,000 instances each, each instance with one passing service check. taskmesh gets
PUT /v1/catalog/register; etcd gets the same JSON as the value of key reg/<service>/<node>
through its JSON gateway (POST /v3/kv/put). The same bodies as bench/load.lua's populate
modes. One keep-alive HTTP/1.1 connection per worker, 127.0.0.1 only; the whole run is
bounded by --timeout-s. Prints one line:
    RESULT total=N ok=N failed=N seconds=F rps=F p50_ms=F p99_ms=F max_ms=F
and exits 1 unless every registration got a 2xx answer.
"""

import argparse
import asyncio
import base64
import sys
import time


def registration(node: str, svc: str) -> str:
    return (
        '{"Node":"%s","Address":"127.0.0.1","Datacenter":"dc1","NodeMeta":{"bench":"1"},'
        '"Service":{"ID":"%s","Service":"%s","Port":8080,"Tags":["v1"]},'
        '"Check":{"CheckID":"service:%s","Name":"%s alive","Status":"passing","ServiceID":"%s"}}'
        % (node, svc, svc, svc, svc, svc)
    )


def request(target: str, i: int) -> bytes:
    node_n = i // 10
    node = "node-%05d" % node_n
    svc = "s-%d" % ((i % 10) * 10 + node_n % 10)
    body = registration(node, svc)
    if target == "taskmesh":
        path, method = "/v1/catalog/register", "PUT"
    else:
        key = "reg/%s/%s" % (svc, node)
        body = '{"key":"%s","value":"%s"}' % (
            base64.b64encode(key.encode()).decode(),
            base64.b64encode(body.encode()).decode(),
        )
        path, method = "/v3/kv/put", "POST"
    data = body.encode()
    head = (
        "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\n\r\n" % (method, path, len(data))
    )
    return head.encode() + data


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if length is not None:
        await reader.readexactly(length)
    elif chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def worker(args, counter, latencies, failures):
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    try:
        while counter[0] < args.total:
            i = counter[0]
            counter[0] += 1
            start = time.monotonic()
            writer.write(request(args.target, i))
            status = await read_response(reader)
            latencies.append(time.monotonic() - start)
            if not 200 <= status < 300:
                failures.append((i, status))
    finally:
        writer.close()


async def run(args) -> int:
    counter = [0]
    latencies: list = []
    failures: list = []
    start = time.monotonic()
    workers = [worker(args, counter, latencies, failures) for _ in range(args.concurrency)]
    try:
        await asyncio.wait_for(asyncio.gather(*workers), timeout=args.timeout_s)
    except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError) as e:
        print("populate: stopped early: %r" % (e,), file=sys.stderr)
    seconds = time.monotonic() - start
    latencies.sort()
    def pct(p):
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, max(0, int(p * len(latencies) + 0.999999) - 1))] * 1e3
    ok = len(latencies) - len(failures)
    print(
        "RESULT total=%d ok=%d failed=%d seconds=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f"
        % (args.total, ok, args.total - ok, seconds, len(latencies) / seconds, pct(0.5),
           pct(0.99), pct(1.0))
    )
    if failures:
        print("populate: first failures (index, status): %s" % failures[:5], file=sys.stderr)
    return 0 if ok == args.total else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", choices=["taskmesh", "etcd"], required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--total", type=int, default=100000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--timeout-s", type=float, default=300)
    args = p.parse_args()
    if not (0 < args.total <= 1000000 and 0 < args.concurrency <= 1024):
        p.error("--total must be in 1..1000000 and --concurrency in 1..1024")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
