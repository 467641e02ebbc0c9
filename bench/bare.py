"""The bare loop: the leanest correct aiohttp client, a yardstick for attach-runner.

One session, a connector sized to the concurrency, a fixed pool of workers pulling from one
iterator over the manifest (csv module), bodies encoded before the loop starts, no log, no
limiter. "Correct": a pair counts only on a 2xx; a 429 or 5xx or a dropped connection is
sent again (after `retry-after-ms` when given), so the sandbox record still shows each pair
attached once on a clean server.

    python bench/bare.py MANIFEST.csv --base-url http://127.0.0.1:PORT/v1 [--concurrency 64]

Prints one JSON line: {"pairs": N, "ok": N, "failed": N, "requests": N, "elapsed_s": S}.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from collections.abc import Iterator

import aiohttp

MAX_TRIES = 20


def read_pairs(path: str) -> Iterator[tuple[str, bytes]]:
    """(url path, body) per row, encoded up front in the iterator (no per-request work)."""
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        owner_at, file_at = header.index("assistant_id"), header.index("file_id")
        for row in reader:
            body = b'{"file_id":"' + row[file_at].encode() + b'"}'
            yield f"/assistants/{row[owner_at]}/files", body


async def main(args: argparse.Namespace) -> dict[str, float]:
    key = os.environ.get("OPENAI_API_KEY", "sk-sandbox")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
               "OpenAI-Beta": "assistants=v1"}
    base = args.base_url.rstrip("/")
    pairs = read_pairs(args.manifest)
    counts = {"pairs": 0, "ok": 0, "failed": 0, "requests": 0}
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            for path, body in pairs:
                counts["pairs"] += 1
                url = base + path
                for _ in range(MAX_TRIES):
                    counts["requests"] += 1
                    try:
                        async with session.post(url, data=body) as resp:
                            await resp.read()
                            status = resp.status
                            wait = resp.headers.get("retry-after-ms")
                    except aiohttp.ClientError:
                        continue
                    if status < 300:
                        counts["ok"] += 1
                        break
                    if status == 429 or status >= 500:
                        if wait:
                            await asyncio.sleep(float(wait) / 1000)
                        continue
                    counts["failed"] += 1
                    break
                else:
                    counts["failed"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    return {**counts, "elapsed_s": round(elapsed, 3)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = asyncio.run(main(parse_args(sys.argv[1:])))
    print(json.dumps(result))
    sys.exit(0 if result["failed"] == 0 else 1)
