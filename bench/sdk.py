"""The SDK yardstick: the official `openai` package doing the same job the way its docs suggest.

`AsyncOpenAI.post` for each pair, the SDK's own retries (`--max-retries`, its default 2:
exponential backoff, honouring retry-after-ms / retry-after), and an asyncio.Semaphore for the
concurrency; the manifest is read with the csv module; no log. Not a dependency of
attach-runner: install it for the benchmarks only (`pip install -r bench/requirements.txt`).

    python bench/sdk.py MANIFEST.csv --base-url http://127.0.0.1:PORT/v1 [--concurrency 64]

Prints one JSON line: {"pairs": N, "ok": N, "failed": N, "errors": {...}, "elapsed_s": S}.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

try:
    import openai
    from openai import AsyncOpenAI

    try:  # the HTTP library under the SDK: httpx2 in recent releases, httpx before
        import httpx2 as httpx
    except ImportError:
        import httpx
except ImportError:  # pragma: no cover - told how to fix
    sys.exit(
        "bench/sdk.py needs the openai package, which attach-runner does not depend on; "
        "install it with: pip install -r bench/requirements.txt"
    )


def read_pairs(path: str) -> Iterator[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        owner_at, file_at = header.index("assistant_id"), header.index("file_id")
        for row in reader:
            yield row[owner_at], row[file_at]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    client = AsyncOpenAI(
        api_key=os.environ.get("OPENAI_API_KEY", "sk-sandbox"),
        base_url=args.base_url,
        max_retries=args.max_retries,
        timeout=60.0,
        http_client=_http_client(args.concurrency),
    )
    semaphore = asyncio.Semaphore(args.concurrency)
    errors: Counter[str] = Counter()
    counts = {"pairs": 0, "ok": 0, "failed": 0}
    options: Any = {"headers": {"OpenAI-Beta": "assistants=v1"}}

    async def attach(owner: str, file_id: str) -> None:
        async with semaphore:
            try:
                await client.post(
                    f"/assistants/{owner}/files", cast_to=object, body={"file_id": file_id},
                    options=options,
                )
            except openai.APIStatusError as exc:
                counts["failed"] += 1
                errors[str(exc.status_code)] += 1
            except openai.APIError as exc:
                counts["failed"] += 1
                errors[type(exc).__name__] += 1
            else:
                counts["ok"] += 1

    started = time.perf_counter()
    # Tasks in waves of 4 x concurrency: the semaphore bounds requests, the wave memory.
    pending: set[asyncio.Task[None]] = set()
    for owner, file_id in read_pairs(args.manifest):
        counts["pairs"] += 1
        pending.add(asyncio.create_task(attach(owner, file_id)))
        if len(pending) >= 4 * args.concurrency:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    if pending:
        await asyncio.wait(pending)
    elapsed = time.perf_counter() - started
    await client.close()
    return {**counts, "errors": dict(errors), "elapsed_s": round(elapsed, 3)}


def _http_client(concurrency: int) -> Any:
    """The SDK's own default client, with a pool as large as the concurrency."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return openai.DefaultAsyncHttpxClient(limits=limits)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-retries", type=int, default=2, help="the SDK's (default 2)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = asyncio.run(main(parse_args(sys.argv[1:])))
    print(json.dumps(result))
    sys.exit(0 if result["failed"] == 0 else 1)
