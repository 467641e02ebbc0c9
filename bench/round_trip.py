"""What one answer really takes from the sandbox at `--latency-ms 50`: the ceiling of the
latency-bound benchmark (2) for any client on this machine.

A plain aiohttp client (pinned to CPU 1; the sandbox to CPU 0, as in run_all.py) measures the
round trip of GET requests: one at a time back to back, one at a time after 50 ms idle, and 64
at once (the benchmark's load); at latency 0 and at 50 ms. The last column is the ceiling the
64-at-once round trip leaves: 64 / round trip, as a fraction of the ideal 64 / 0.05 s.

    python bench/round_trip.py [--requests 3200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import API_KEY, SandboxProcess, pinned  # noqa: E402

HEADERS = {"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "assistants=v1"}


async def one_at_a_time(url: str, n: int, gap: float) -> list[float]:
    took = []
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        for _ in range(n):
            if gap:
                await asyncio.sleep(gap)
            started = time.perf_counter()
            async with session.get(url) as answer:
                await answer.read()
            took.append(time.perf_counter() - started)
    return took[5:]  # the first few open the connection


async def many_at_once(url: str, n: int, concurrency: int) -> list[float]:
    took: list[float] = []
    left = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as session:
        async def worker() -> None:
            for _ in left:
                started = time.perf_counter()
                async with session.get(url) as answer:
                    await answer.read()
                took.append(time.perf_counter() - started)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return took[concurrency:]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3200)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # url mode n
    args = parser.parse_args()
    if args.child:  # the measuring client, in its own pinned process
        url, mode, n = args.child[0], args.child[1], int(args.child[2])
        if mode == "64":
            took = asyncio.run(many_at_once(url, n, 64))
        else:
            took = asyncio.run(one_at_a_time(url, n, 0.05 if mode == "idle" else 0.0))
        print(f"{statistics.mean(took) * 1000:.2f} {statistics.median(took) * 1000:.2f}")
        return 0
    import subprocess

    print("| sandbox latency | client | mean round trip | median | 64 / mean, of 64 / 0.05 s |")
    print("|---|---|---|---|---|")
    for latency in ("0", "50"):
        with SandboxProcess("--latency-ms", latency) as sandbox:
            url = sandbox.base_url + "/assistants/asst_rt/files"
            for mode, name, n in (("back", "one at a time, back to back", 200),
                                  ("idle", "one at a time, 50 ms idle between", 100),
                                  ("64", "64 at once", args.requests)):
                out = subprocess.run(
                    pinned("1", [sys.executable, __file__, "--child", url, mode, str(n)]),
                    capture_output=True, text=True, check=True).stdout.split()
                mean, median = float(out[0]), float(out[1])
                ceiling = f"{64 / (mean / 1000) / 1280:.3f}" if latency == "50" and mode == "64" \
                    else "-"
                print(f"| {latency} ms | {name} | {mean:.2f} ms | {median:.2f} ms | {ceiling} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
