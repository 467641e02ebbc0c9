"""The floor a batched run with attributes cannot go under: what the read-back alone costs.

SPEC: after a batch whose files carry attributes, the run lists the batch's files (five pages
of 100 for a batch of 500) and updates those that differ, since a file the store already held
keeps its old attributes. Issue 20 allows exactly that over the plain run. This bench measures
it alone, done by the leanest client that can: a bare aiohttp loop (64 workers, one session,
no log, no limiter, no retries) that pages through every batch the run created, reads each
page with orjson and compares each file's attributes with the manifest's canonical text. Its
CPU, counted from its first request to its last answer (imports and the manifest's reading
left out), is work the attributed run must do on top of the plain one's on the client's one
core; so the attributed run's pairs/s is at most plain_wall / (plain_wall + read-back CPU) of
the plain run's, whatever else it does.

    python bench/readback_floor.py                        # 100,000 pairs, 3 rounds (~2 min)
    python bench/readback_floor.py --pairs 20000 --rounds 1

Each round: a fresh sandbox (`--processing-ms 0`, no limits, CPU 0) for the plain manifest's
batched run and another for the attributed one's (`attach-runner run --batch-size 500
--concurrency 64 --store-rpm 1000000`, CPU 1, as bench/attributes_bench.py runs them), then
the bare read-back (CPU 1) against the second sandbox, of the batches the second run's log
names. Each run ends with the sandbox's record checked (each pair in its store once, with the
manifest's attributes), the read-back with every file seen as the manifest wants it. Prints
each round and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.attributes_bench import check, write_manifest  # noqa: E402 - the path above
from bench.common import (  # noqa: E402
    API_KEY,
    CLIENT_CPU,
    PYTHON,
    SandboxProcess,
    client_env,
    median,
    pinned,
    run_in,
    runner_argv,
    scratch_dir,
)

WORKERS = 64
PAGE = 100


def batches_of(log: Path) -> list[tuple[str, str]]:
    """(store, batch id) of each batch the run created, from its log."""
    found = []
    with open(log, "rb") as lines:
        for line in lines:
            if b'"batch-created"' in line:
                event = json.loads(line)
                found.append((event["vector_store_id"], event["batch_id"]))
    return found


def wanted_of(manifest: Path) -> dict[str, str]:
    """file_id -> the canonical text of its attributes, from a CSV with an attributes cell."""
    with open(manifest, newline="", encoding="utf-8") as stream:
        return {row["file_id"]: orjson.dumps(json.loads(row["attributes"]),
                                             option=orjson.OPT_SORT_KEYS).decode()
                for row in csv.DictReader(stream)}


async def read_back(base_url: str, batches: list[tuple[str, str]],
                    wanted: dict[str, str]) -> dict[str, int]:
    """Every batch's files listed, a page at a time, and compared with `wanted`."""
    counts = {"requests": 0, "objects": 0, "differ": 0}
    todo = iter(batches)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    connector = aiohttp.TCPConnector(limit=WORKERS)
    async with aiohttp.ClientSession(base_url.rstrip("/") + "/", connector=connector,
                                     headers=headers) as session:
        async def worker() -> None:
            for store, batch_id in todo:
                after = ""
                while True:
                    query = f"?limit={PAGE}&order=asc" + (f"&after={after}" if after else "")
                    async with session.get(f"vector_stores/{store}/file_batches/{batch_id}"
                                           f"/files{query}") as answer:
                        raw = await answer.read()
                        if answer.status != 200:
                            raise SystemExit(f"list answered {answer.status}: {raw[:200]!r}")
                    page: Any = orjson.loads(raw)
                    counts["requests"] += 1
                    for obj in page["data"]:
                        counts["objects"] += 1
                        shown = orjson.dumps(obj.get("attributes") or {},
                                             option=orjson.OPT_SORT_KEYS).decode()
                        counts["differ"] += shown != wanted.get(obj["id"])
                    if not page.get("has_more") or not page["data"]:
                        break
                    after = page["data"][-1]["id"]

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return counts


def read_back_main(base_url: str, log: str, manifest: str) -> None:
    """The bare read-back, in this process (its imports done before the clock starts): one
    JSON line of its counts, CPU and wall."""
    batches, wanted = batches_of(Path(log)), wanted_of(Path(manifest))
    cpu, wall = time.process_time(), time.perf_counter()
    counts = asyncio.run(read_back(base_url, batches, wanted))
    print(json.dumps({**counts, "cpu_s": time.process_time() - cpu,
                      "wall_s": time.perf_counter() - wall}))


def batched_run(manifest: Path, log: Path, sandbox: SandboxProcess, n: int,
                with_attributes: bool) -> float:
    """Wall seconds of one `attach-runner run --batch-size 500` (as attributes_bench runs it),
    the sandbox's record checked after it (each pair once, with the manifest's attributes)."""
    for path in (log, log.with_name(log.name + ".lock")):
        path.unlink(missing_ok=True)
    measured = run_in(sandbox, runner_argv(
        "run", str(manifest), "--log", str(log), "--base-url", "{base_url}", "--concurrency",
        str(WORKERS), "--store-rpm", "1000000", "--no-progress", "--json", "--batch-size",
        "500"))
    if measured.code != 0:
        raise SystemExit(f"exit {measured.code}: {measured.stderr[-500:]}")
    problems = check(sandbox.record(), n, with_attributes)
    if problems:
        raise SystemExit(f"{manifest.name}: {problems}")
    return measured.wall_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--read-back", nargs=3, metavar=("BASE_URL", "LOG", "MANIFEST"),
                        help=argparse.SUPPRESS)  # the client process of one round
    args = parser.parse_args()
    if args.read_back:
        read_back_main(*args.read_back)
        return 0
    rows = []
    for directory in scratch_dir():
        plain = write_manifest(directory, args.pairs, "csv")
        attributed = write_manifest(directory, args.pairs, "csv+attributes")
        for round_no in range(args.rounds):
            log = directory / "floor.results.jsonl"
            with SandboxProcess("--processing-ms", "0") as sandbox:
                plain_wall = batched_run(plain, log, sandbox, args.pairs, False)
            with SandboxProcess("--processing-ms", "0") as sandbox:
                attributed_wall = batched_run(attributed, log, sandbox, args.pairs, True)
                done = subprocess.run(
                    pinned(CLIENT_CPU, [PYTHON, str(Path(__file__).resolve()), "--read-back",
                                        sandbox.base_url, str(log), str(attributed)]),
                    capture_output=True, text=True, env=client_env(), check=True)
            read = json.loads(done.stdout.strip().splitlines()[-1])
            if read["objects"] != args.pairs or read["differ"]:
                raise SystemExit(f"the read-back saw {read}: not the run's {args.pairs} files "
                                 "with the manifest's attributes")
            bound = plain_wall / (plain_wall + read["cpu_s"])
            rows.append((plain_wall, attributed_wall, read["cpu_s"], read["requests"], bound,
                         plain_wall / attributed_wall))
            print(f"round {round_no + 1}: plain %.2f s, attributed %.2f s, bare read-back "
                  "CPU %.2f s (%d requests): at most %.2f of plain; the run reached %.2f"
                  % rows[-1], flush=True)
    plain, attributed, cpu, requests, bound, reached = (
        median(list(column)) for column in zip(*rows, strict=True))
    print(f"median: plain {plain:.2f} s, attributed {attributed:.2f} s, bare read-back CPU "
          f"{cpu:.2f} s ({requests:.0f} requests): at most {bound:.2f} of plain; the run "
          f"reached {reached:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
