#!/usr/bin/env python3
"""serve_poll.py — does watching hoist serve slow its load?

Starts `hoist serve` on PIPELINE again and again, alternating a quiet run
with one where CLIENTS keep-alive HTTP clients poll GET /v1/status at RATE Hz
each for the whole load, and reads each load's seconds from the server's
"ready" event.  Pairs cancel the drift between runs; the result is the
median of the per-pair ratios (polled / quiet) and both series, as JSON on
stdout.  Standard library only; traffic stays on loopback.

    bench/serve_poll.py --hoist build/hoist --device cuda:0 --pairs 10 /models/flux
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


async def poller(port, rate, stop, counts):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    req = b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        while not stop.is_set():
            t0 = time.monotonic()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            counts[head[9:12].decode()] = counts.get(head[9:12].decode(), 0) + 1
            await asyncio.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t0)))
    finally:
        writer.close()


async def one_run(args, polled):
    with tempfile.TemporaryDirectory(prefix="hoist-poll.") as tmp:
        cmd = [args.hoist, "serve", "--json", "--device", args.device, "--unix",
               os.path.join(tmp, "s.sock"), "--listen", "127.0.0.1:0", args.pipeline]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE)
        port, seconds, counts = None, None, {}
        stop = asyncio.Event()
        tasks = []
        try:
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(), 600)
                if not line:
                    raise RuntimeError("hoist serve ended before it was ready")
                ev = json.loads(line)
                if ev["event"] == "listening":
                    port = int(ev["http"].rsplit(":", 1)[1])
                    if polled:
                        tasks = [asyncio.create_task(poller(port, args.rate, stop, counts))
                                 for _ in range(args.clients)]
                elif ev["event"] == "ready":
                    seconds = ev["seconds"]
                    break
                elif ev["event"] == "failed":
                    raise RuntimeError(ev["error"])
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            proc.terminate()
            await proc.wait()
        return seconds, counts


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hoist", default="build/hoist")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rate", type=float, default=10.0, help="polls per second per client")
    ap.add_argument("pipeline")
    args = ap.parse_args()
    quiet, polled, ratios, answers = [], [], [], {}
    for i in range(args.pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        got = {}
        for p in order:
            got[p] = await one_run(args, p)
        quiet.append(got[False][0])
        polled.append(got[True][0])
        ratios.append(got[True][0] / got[False][0])
        for k, v in got[True][1].items():
            answers[k] = answers.get(k, 0) + v
    json.dump({"pipeline": args.pipeline, "device": args.device, "clients": args.clients,
               "rate_hz": args.rate, "pairs": args.pairs,
               "quiet_seconds": quiet, "polled_seconds": polled,
               "median_ratio_polled_over_quiet": statistics.median(ratios),
               "http_answers": answers}, sys.stdout)
    print()


if __name__ == "__main__":
    asyncio.run(main())
