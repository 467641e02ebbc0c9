"""Vector stores: one request a file vs file_batches, under the per-store attach limit.

Each arm gets a fresh sandbox subprocess (`attach-runner sandbox --port 0 --store-rpm R`,
pinned to CPU 0) and one `attach-runner run --target vector-store-files` (pinned to CPU 1)
over a manifest of FILES files spread over STORES vector stores. The rate is files / the
run's own `elapsed_s` (its --json summary; process start-up is left out). Every arm ends by
reading the sandbox's record (GET /__sandbox/record): each pair must be attached exactly
once, and no store may have seen more than R attach calls in any 60 s.

    python bench/vector_store_bench.py                         # 20,000 files, both arms
    python bench/vector_store_bench.py --per-file-files 2000   # the slow arm on fewer files
    python bench/vector_store_bench.py --order grouped --arms per-file --files 600

Per-file is bound by the store limit: 300/min x 10 stores = 50 files/s at best, so 20,000
files take ~400 s. `--order interleaved` (default) deals the manifest's rows round-robin over
the stores, per-file's best case; `grouped` lists each store's files together, as exports
often do.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner.sandbox import confirm_attached_once

KEY = "sk-sandbox"


def pairs_for(files: int, stores: int, order: str) -> list[tuple[str, str]]:
    """`files` pairs over `stores` stores, dealt round-robin (interleaved) or store by store."""
    if order == "interleaved":
        return [(f"vs_bench{i % stores}", f"file-b{i:07d}") for i in range(files)]
    per_store = -(-files // stores)
    return [(f"vs_bench{i // per_store}", f"file-b{i:07d}") for i in range(files)]


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []


@contextmanager
def sandbox(store_rpm: int) -> Iterator[str]:
    """A sandbox subprocess on CPU 0; yields its base URL."""
    proc = subprocess.Popen(
        [*pin(0), sys.executable, "-m", "runner", "sandbox", "--port", "0", "--api-key", KEY,
         "--store-rpm", str(store_rpm), "--processing-ms", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"sandbox did not start: {line!r} {proc.stderr.read()}")
        yield line.removeprefix("listening on ")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def read_record(base_url: str) -> dict[str, Any]:
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/__sandbox/record", timeout=30) as answer:
        record: dict[str, Any] = json.loads(answer.read())
    return record


def run_arm(name: str, batch_size: int, pairs: list[tuple[str, str]], args: argparse.Namespace,
            workdir: Path) -> dict[str, Any]:
    manifest = workdir / f"{name}.csv"
    with manifest.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["vector_store_id", "file_id"])
        writer.writerows(pairs)
    command = [
        *pin(1), sys.executable, "-m", "runner", "run", str(manifest),
        "--target", "vector-store-files", "--batch-size", str(batch_size),
        "--store-rpm", str(args.store_rpm), "--rpm", str(args.rpm),
        "--concurrency", str(args.concurrency), "--json", "--quiet",
    ]
    with sandbox(args.store_rpm) as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env["OPENAI_API_KEY"] = KEY
        started = time.monotonic()
        done = subprocess.run([*command, "--base-url", base_url], env=env,
                              capture_output=True, text=True)
        wall = time.monotonic() - started
        record = read_record(base_url)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    problems = confirm_attached_once(record, pairs)
    elapsed = summary["elapsed_s"]
    return {
        "arm": name,
        "batch_size": batch_size,
        "files": len(pairs),
        "exit": done.returncode,
        "elapsed_s": elapsed,
        "wall_s": round(wall, 2),
        "files_per_s": round(len(pairs) / elapsed, 1),
        "requests": record["requests"],
        "attach_calls": sum(n for route, n in record["by_route"].items()
                            if route in ("POST attach", "POST batch")),
        "store_429s": record["rate_limited"]["store"],
        "max_store_attach_per_60s": record["max_store_attach_per_60s"],
        "attached_once": not problems,
        "problems": problems[:5],
        "command": " ".join([*command, "--base-url", "URL"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--per-file-files", type=int, default=None,
                        help="files for the per-file arm (default: --files)")
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--store-rpm", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rpm", type=int, default=6000,
                        help="the run's overall limit (default 6000: above what either arm needs)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--order", choices=("interleaved", "grouped"), default="interleaved")
    parser.add_argument("--arms", default="per-file,batches")
    args = parser.parse_args()

    arms = args.arms.split(",")
    results = []
    with tempfile.TemporaryDirectory(prefix="vs-bench-") as tmp:
        for arm in arms:
            files = args.per_file_files or args.files if arm == "per-file" else args.files
            size = 0 if arm == "per-file" else args.batch_size
            result = run_arm(arm, size, pairs_for(files, args.stores, args.order), args,
                             Path(tmp))
            results.append(result)
            print(json.dumps(result), flush=True)
    by_arm = {r["arm"]: r for r in results}
    if {"per-file", "batches"} <= by_arm.keys():
        ratio = by_arm["batches"]["files_per_s"] / by_arm["per-file"]["files_per_s"]
        print(f"batches / per-file: {ratio:.1f}x files per second", flush=True)
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python "
          f"{platform.python_version()}; stores {args.stores}, store_rpm {args.store_rpm}, "
          f"order {args.order}", flush=True)
    ok = all(r["attached_once"] and r["exit"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
