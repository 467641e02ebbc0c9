"""The bare upload loop: the leanest correct aiohttp client for `POST /files`, a yardstick for
attach-runner's uploads (SPEC "Local files", Speed).

One session, a connector sized to the concurrency, a fixed pool of workers pulling from one
iterator over the manifest's paths (csv module, `vector_store_id,path`, paths relative to the
manifest's folder, no globs), each file's multipart body (`purpose=assistants`, then the file
under its base name) streamed from disk in 256 KiB reads with its exact Content-Length, no
hashing, no log, no limiter, no attach. "Correct": a file counts only on a 2xx; a 429 or 5xx
or a dropped connection is sent again (after `retry-after-ms` when given), so on a clean
server the sandbox record shows each content uploaded once.

    python bench/bare_upload.py MANIFEST.csv --base-url http://127.0.0.1:PORT/v1 [--concurrency 64]

Prints one JSON line: {"files": N, "ok": N, "failed": N, "requests": N, "bytes": B,
"elapsed_s": S}.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp

MAX_TRIES = 20
CHUNK_BYTES = 256 * 1024


def read_paths(manifest: str) -> Iterator[str]:
    folder = os.path.dirname(os.path.abspath(manifest))
    with open(manifest, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        path_at = next(reader).index("path")
        for row in reader:
            yield os.path.join(folder, row[path_at])


def body_of(path: str) -> tuple[str, int, bytes, bytes, int]:
    """(content type, length, head, tail, file size) of the file's multipart body."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
            f'assistants\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{os.path.basename(path)}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = os.stat(path).st_size
    return (f"multipart/form-data; boundary={boundary}", len(head) + size + len(tail), head,
            tail, size)


async def chunks(path: str, head: bytes, tail: bytes) -> AsyncIterator[bytes]:
    yield head
    with open(path, "rb") as stream:  # noqa: ASYNC230 - page-cache reads, as the tool's
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk
    yield tail


async def main(args: argparse.Namespace) -> dict[str, float]:
    key = os.environ.get("OPENAI_API_KEY", "sk-sandbox")
    url = args.base_url.rstrip("/") + "/files"
    paths = read_paths(args.manifest)
    counts = {"files": 0, "ok": 0, "failed": 0, "requests": 0, "bytes": 0}
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers={"Authorization": f"Bearer {key}"}) as session:

        async def worker() -> None:
            for path in paths:
                counts["files"] += 1
                for _ in range(MAX_TRIES):
                    counts["requests"] += 1
                    content_type, length, head, tail, size = body_of(path)
                    headers = {"Content-Type": content_type, "Content-Length": str(length)}
                    try:
                        async with session.post(url, data=chunks(path, head, tail),
                                                headers=headers) as resp:
                            await resp.read()
                            status = resp.status
                            wait = resp.headers.get("retry-after-ms")
                    except aiohttp.ClientError:
                        continue
                    if status < 300:
                        counts["ok"] += 1
                        counts["bytes"] += size
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = asyncio.run(main(parse_args(sys.argv[1:])))
    print(json.dumps(result))
    sys.exit(0 if result["failed"] == 0 else 1)
