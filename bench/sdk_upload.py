"""The SDK's upload yardstick: the official `openai` package uploading a manifest's files and
attaching them the way its docs suggest, `vector_stores.file_batches.upload_and_poll` (the
files uploaded `max_concurrency` at a time, then one file batch a store, polled until done).

The manifest is `vector_store_id,path` (csv module, paths relative to its folder, no globs);
the stores are done one after another, each with `--concurrency` uploads in flight; the SDK's
own retries (its default 2). Not a dependency of attach-runner: `pip install -r
bench/requirements.txt`.

    python bench/sdk_upload.py MANIFEST.csv --base-url http://127.0.0.1:PORT/v1 [--concurrency 64]

Prints one JSON line: {"files": N, "ok": N, "failed": N, "stores": N, "elapsed_s": S}.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

try:
    import openai
    from openai import AsyncOpenAI

    try:  # the HTTP library under the SDK: httpx2 in recent releases, httpx before
        import httpx2 as httpx
    except ImportError:
        import httpx
except ImportError:  # pragma: no cover - told how to fix
    sys.exit("bench/sdk_upload.py needs the openai package, which attach-runner does not "
             "depend on; install it with: pip install -r bench/requirements.txt")


def read_stores(manifest: str) -> dict[str, list[Path]]:
    folder = Path(manifest).resolve().parent
    stores: dict[str, list[Path]] = {}
    with open(manifest, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        store_at, path_at = header.index("vector_store_id"), header.index("path")
        for row in reader:
            stores.setdefault(row[store_at], []).append(folder / row[path_at])
    return stores


async def main(args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    client = AsyncOpenAI(api_key=os.environ.get("OPENAI_API_KEY", "sk-sandbox"),
                         base_url=args.base_url, timeout=600.0,
                         http_client=openai.DefaultAsyncHttpxClient(limits=limits))
    stores = read_stores(args.manifest)
    counts = {"files": sum(map(len, stores.values())), "ok": 0, "failed": 0,
              "stores": len(stores)}
    started = time.perf_counter()
    for store, paths in stores.items():
        batch = await client.vector_stores.file_batches.upload_and_poll(
            vector_store_id=store, files=paths, max_concurrency=args.concurrency)
        counts["ok"] += batch.file_counts.completed
        counts["failed"] += len(paths) - batch.file_counts.completed
    elapsed = time.perf_counter() - started
    await client.close()
    return {**counts, "elapsed_s": round(elapsed, 3)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = asyncio.run(main(parse_args(sys.argv[1:])))
    print(json.dumps(result))
    sys.exit(0 if result["failed"] == 0 else 1)
