"""Sync at scale: `attach-runner sync` of 100,000 pairs over 10 vector stores that already hold
100,000 files (5% extra, 5% missing, 5% stale attributes): wall, CPU, peak RSS against
`attach-runner validate` of the same manifest, the requests by kind, and the converged rerun.

    python bench/sync_bench.py                                   # 10 x 10,000 pairs, 3 rounds
    python bench/sync_bench.py --pairs-per-store 1000 --rounds 1 # a quick try

Each round: a fresh sandbox subprocess (`attach-runner sandbox --port 0 --processing-ms 0`, no
limits, pinned to CPU 0), each store preloaded through `POST /__sandbox/preload` (in chunks well
under its 4 MiB body limit) with as many files as the manifest gives it: the manifest's files
less the 5% missing ones, 5% of them with stale attributes (other values than the manifest's),
and 5% files the manifest does not list. Then, pinned to CPU 1 under /usr/bin/time -v (wall,
CPU, peak RSS):
  (a) `attach-runner sync MANIFEST --store-rpm 1000000 --concurrency 64 --no-progress --json`
      (rpm auto) with a fresh log; the record must then show each store holding exactly its
      manifest's files with the manifest's attributes, and by_route exactly: a list page per
      100 listed files (+ at most one a store), a POST attach per missing file, a POST update
      per stale one, a DELETE per extra file, nothing else;
  (b) the same command again (the converged rerun): exit 0, list requests only;
  (c) `attach-runner validate MANIFEST` (reads the manifest only, sends nothing): the memory
      yardstick; (sync RSS - validate RSS) / files listed = bytes per listed file. sync holds
      the manifest's pairs (its plan) and validate does not, so this counts them too;
  (d) the listing alone: `sync --dry-run` (lists, plans, writes nothing) of the same manifest,
      once against stores preloaded as above and once, in another fresh sandbox, against
      stores holding one file each (10 files listed): the difference / files listed is what
      the listing itself costs a listed file (the manifest's pairs are held in both).
Any failed check is printed and makes the exit 1. The table gives the medians of the rounds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the path above makes `bench` importable
    Measured,
    SandboxProcess,
    median,
    run_in,
    run_timed,
    runner_argv,
    scratch_dir,
    summary_of,
)
from runner.attributes import same_attributes  # noqa: E402

STORES = 10
PAIRS_PER_STORE = 10_000
PAGE = 100  # files a list page (the API's most; runner/operations/listing.py asks for it)
CONCURRENCY = "64"
PRELOAD_CHUNK = 2_500  # files a preload request (~300 KB of JSON; the limit is 4 MiB)
PRELOAD_LIMIT = 4 * 1024**2
WRITE_ROUTES = ("POST attach", "POST update", "DELETE file")


# ---------------------------------------------------------------- the scenario


def store_id(s: int) -> str:
    return f"vs_sync{s:03d}"


def file_id(s: int, j: int) -> str:
    """The j-th manifest file of store s (27 characters, as real file ids)."""
    return f"file-{s:03d}m{j:018d}"


def extra_id(s: int, k: int) -> str:
    """The k-th file of store s that the manifest does not list."""
    return f"file-{s:03d}x{k:018d}"


def missing(j: int) -> bool:
    """5% of each store's manifest files are not in the store."""
    return j % 20 == 7


def stale(j: int) -> bool:
    """5% are in the store with other attributes than the manifest's."""
    return j % 20 == 13


def attributes(s: int, j: int) -> dict[str, Any]:
    """Three or four attributes of the kinds a user sets: strings, a number, a boolean."""
    attrs: dict[str, Any] = {"team": f"team-{(s + j) % 13}", "year": 2015 + j % 11,
                             "public": j % 2 == 0}
    if j % 2 == 0:
        attrs["title"] = f"Quarterly report {s}-{j}"
    return attrs


def stale_attributes(s: int, j: int) -> dict[str, Any]:
    """What a stale file holds: a value changed, and for half of them a key gone as well."""
    attrs = attributes(s, j)
    attrs["year"] += 1
    if j % 40 == 13:
        attrs.pop("public")
    return attrs


def extras(n: int) -> int:
    """Files a store holds that the manifest does not list: as many as are missing."""
    return sum(1 for j in range(n) if missing(j))


def write_manifest(directory: Path, n: int) -> Path:
    path = directory / f"sync-{STORES}x{n}.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for s in range(STORES):
            for j in range(n):
                out.write(json.dumps({"vector_store_id": store_id(s), "file_id": file_id(s, j),
                                      "attributes": attributes(s, j)}) + "\n")
    return path


def preload_entries(s: int, n: int) -> list[dict[str, Any]]:
    entries = [{"file_id": file_id(s, j),
                "attributes": stale_attributes(s, j) if stale(j) else attributes(s, j)}
               for j in range(n) if not missing(j)]
    entries += [{"file_id": extra_id(s, k), "attributes": {"team": "retired", "year": 2009}}
                for k in range(extras(n))]
    return entries


def preload(sandbox: SandboxProcess, n: int) -> int:
    """Fill every store as the scenario says; returns the files preloaded."""
    return post_preload(sandbox, {store_id(s): preload_entries(s, n) for s in range(STORES)})


def post_preload(sandbox: SandboxProcess, stores: dict[str, list[dict[str, Any]]]) -> int:
    """POST /__sandbox/preload, in chunks; returns the files preloaded (all, or it exits)."""
    url = sandbox.base_url.removesuffix("/v1") + "/__sandbox/preload"
    total = 0
    for store, entries in stores.items():
        for start in range(0, len(entries), PRELOAD_CHUNK):
            chunk = entries[start:start + PRELOAD_CHUNK]
            body = json.dumps({"owner_kind": "vector_store", "owner": store,
                               "files": chunk}).encode()
            if len(body) >= PRELOAD_LIMIT:
                raise SystemExit(f"preload chunk of {len(body)} bytes: over the sandbox's limit")
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as resp:
                added = json.load(resp)["preloaded"]
            if added != len(chunk):
                raise SystemExit(f"preload of {store}: {added} of {len(chunk)} files taken")
            total += added
    return total


# ---------------------------------------------------------------- the checks


def check_stores(record: dict[str, Any], n: int) -> list[str]:
    """Each store holds exactly its manifest's files, with the manifest's attributes; no other
    store exists."""
    problems: list[str] = []
    stores: dict[str, dict[str, Any]] = record["vector_store_files"]
    unnamed = sorted(set(stores) - {store_id(s) for s in range(STORES)})
    if unnamed:
        problems.append(f"stores nobody preloaded or named: {unnamed[:5]}")
    for s in range(STORES):
        held = stores.get(store_id(s), {})
        want = {file_id(s, j): j for j in range(n)}
        absent = [f for f in want if f not in held]
        unlisted = [f for f in held if f not in want]
        wrong = [f for f, j in want.items()
                 if f in held and not same_attributes(held[f]["attributes"], attributes(s, j))]
        not_done = [f for f, entry in held.items() if entry["status"] != "completed"]
        for what, ids in (("manifest files not in the store", absent),
                          ("files the manifest does not list", unlisted),
                          ("files with other attributes than the manifest's", wrong),
                          ("files not completed", not_done)):
            if ids:
                problems.append(f"{store_id(s)}: {len(ids)} {what} (e.g. {ids[:3]})")
    return problems


def check_pairs(record: dict[str, Any], n: int) -> list[str]:
    """Per pair: each missing file attached once, each stale one updated once, each extra one
    detached once, nothing else written (no repeats, no writes to absent files)."""
    problems: list[str] = []
    pairs: dict[str, dict[str, int]] = record["pairs"]
    bad = 0
    for s in range(STORES):
        owner = store_id(s)
        expected: list[tuple[str, dict[str, int]]] = [
            (file_id(s, j), {"attached": int(missing(j)), "updated": int(stale(j)),
                             "detached": 0}) for j in range(n)]
        expected += [(extra_id(s, k), {"attached": 0, "updated": 0, "detached": 1})
                     for k in range(extras(n))]
        for fid, want in expected:
            entry = pairs.get(f"{owner}/{fid}", {})
            got = {key: entry.get(key, 0) for key in want}
            side = sum(entry.get(key, 0) for key in ("posts_after_attached",
                                                     "updates_when_absent",
                                                     "deletes_when_absent"))
            if got != want or side:
                bad += 1
                if bad <= 5:
                    problems.append(f"{owner}/{fid}: {entry}, expected {want}")
    if bad > 5:
        problems.append(f"... {bad} pairs in all written otherwise than expected")
    return problems


def check_routes(by_route: dict[str, int], *, listed: int, writes: dict[str, int],
                 what: str) -> list[str]:
    """`by_route` (the requests of one sync) is exactly the expected list pages and writes."""
    problems: list[str] = []
    pages = by_route.get("GET list", 0)
    low = sum(max(1, -(-per_store // PAGE)) for per_store in listed_per_store(listed))
    if not low <= pages <= low + STORES:
        problems.append(f"{what}: {pages} GET list, expected {low} to {low + STORES}")
    for route in WRITE_ROUTES:
        if by_route.get(route, 0) != writes.get(route, 0):
            problems.append(f"{what}: {by_route.get(route, 0)} {route}, expected "
                            f"{writes.get(route, 0)}")
    others = {r: c for r, c in by_route.items() if c and r not in ("GET list", *WRITE_ROUTES)}
    if others:
        problems.append(f"{what}: requests of other kinds {others}")
    return problems


def dry_run(argv: list[str], n: int, *, full: bool) -> tuple[Measured, list[str]]:
    """`sync --dry-run` against a fresh sandbox whose stores are preloaded as the scenario
    says (`full`) or hold one file each."""
    problems: list[str] = []
    what = "dry run" + (" (full stores)" if full else " (1-file stores)")
    with SandboxProcess("--processing-ms", "0") as sandbox:
        if full:
            preload(sandbox, n)
        else:
            post_preload(sandbox, {store_id(s): [{"file_id": extra_id(s, 0)}]
                                   for s in range(STORES)})
        measured = run_in(sandbox, [*argv, "--dry-run"])
        by_route = sandbox.record()["by_route"]
    listed = STORES * n if full else STORES
    problems += check_routes(by_route, listed=listed, writes={}, what=what)
    summary = summary_of(measured)
    got = sum(store.get("listed") or 0 for store in summary.get("stores", []))
    if measured.code != 0 or got != listed:
        problems.append(f"{what}: exit {measured.code}, listed {got} (expected {listed}): "
                        f"{measured.stderr.strip()[-300:]}")
    return measured, problems


def listed_per_store(listed: int) -> list[int]:
    return [listed // STORES] * STORES


def route_delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {route: count - before.get(route, 0) for route, count in after.items()
            if count - before.get(route, 0)}


# ---------------------------------------------------------------- a round


def one_round(directory: Path, manifest: Path, n: int, round_no: int) -> dict[str, Any]:
    log = directory / f"round{round_no}.results.jsonl"
    for path in (log, log.with_name(log.name + ".lock")):
        path.unlink(missing_ok=True)
    argv = runner_argv("sync", str(manifest), "--log", str(log), "--base-url", "{base_url}",
                       "--store-rpm", "1000000", "--concurrency", CONCURRENCY, "--no-progress",
                       "--json")
    total = STORES * n
    n_missing = STORES * extras(n)
    n_stale = STORES * sum(1 for j in range(n) if stale(j))
    writes = {"POST attach": n_missing, "POST update": n_stale, "DELETE file": n_missing}
    problems: list[str] = []
    with SandboxProcess("--processing-ms", "0") as sandbox:
        preloaded = preload(sandbox, n)
        if preloaded != total:
            problems.append(f"preloaded {preloaded} files, expected {total}")
        before = sandbox.record()["by_route"]
        synced = run_in(sandbox, argv)
        record = sandbox.record()
        first_routes = route_delta(record["by_route"], before)
        problems += check_stores(record, n)
        problems += check_pairs(record, n)
        problems += check_routes(first_routes, listed=total, writes=writes, what="sync")
        mid = record["by_route"]
        del record
        rerun = run_in(sandbox, argv)
        record = sandbox.record()
        rerun_routes = route_delta(record["by_route"], mid)
        problems += check_stores(record, n)
        problems += check_routes(rerun_routes, listed=total, writes={}, what="rerun")
        del record
    validated = run_timed(runner_argv("validate", str(manifest)))
    dry_argv = [str(log.with_suffix(".dry.jsonl")) if a == str(log) else a for a in argv]
    dry_full, dry_problems = dry_run(dry_argv, n, full=True)
    problems += dry_problems
    dry_min, dry_problems = dry_run(dry_argv, n, full=False)
    problems += dry_problems
    first, again = summary_of(synced), summary_of(rerun)
    for name, measured, summary in (("sync", synced, first), ("rerun", rerun, again)):
        if measured.code != 0:
            problems.append(f"{name} exit {measured.code}: {measured.stderr.strip()[-400:]}")
        if not summary:
            problems.append(f"{name}: no JSON summary on stdout: {measured.stdout[-300:]!r}")
    if validated.code != 0:
        problems.append(f"validate exit {validated.code}: {validated.stderr.strip()[-300:]}")
    listed = sum(store.get("listed") or 0 for store in first.get("stores", []))
    if listed != total:
        problems.append(f"sync listed {listed} files, expected {total}")
    expect = {"attached": n_missing, "updated": n_stale, "detached": n_missing, "failed": 0}
    got = {key: first.get(key) for key in expect}
    if got != expect:
        problems.append(f"sync summary {got}, expected {expect}")
    if again.get("requests") != again.get("list_requests"):
        problems.append(f"rerun summary: {again.get('requests')} requests, "
                        f"{again.get('list_requests')} of them list requests")
    rss_delta_bytes = (synced.max_rss_kib - validated.max_rss_kib) * 1024
    return {
        "sync_wall_s": synced.wall_s, "sync_in_run_s": first.get("elapsed_s", synced.wall_s),
        "sync_cpu_s": synced.cpu_s, "sync_rss_mib": synced.max_rss_mib,
        "sandbox_cpu_s": synced.server_cpu_s,
        "validate_rss_mib": validated.max_rss_mib, "validate_wall_s": validated.wall_s,
        "bytes_per_listed": rss_delta_bytes / max(1, listed), "listed": listed,
        "dry_full_rss_mib": dry_full.max_rss_mib, "dry_min_rss_mib": dry_min.max_rss_mib,
        "listing_bytes_per_listed": (dry_full.max_rss_kib - dry_min.max_rss_kib) * 1024
        / max(1, STORES * n - STORES),
        "list_requests": first_routes.get("GET list", 0),
        "client_list_requests": first.get("list_requests"),
        **{route: first_routes.get(route, 0) for route in WRITE_ROUTES},
        "requests": sum(first_routes.values()),
        "rerun_wall_s": rerun.wall_s, "rerun_cpu_s": rerun.cpu_s,
        "rerun_rss_mib": rerun.max_rss_mib, "rerun_requests": sum(rerun_routes.values()),
        "rerun_routes": rerun_routes,
        "problems": problems,
        "command": shlex.join(a.replace("{base_url}", "http://127.0.0.1:PORT/v1")
                              for a in argv),
    }


PLAN_BYTES = """
import sys, tracemalloc
from runner.manifest import open_manifest
from runner.sync.plan import store_plans
from runner.requests.targets import get_target
target = get_target("vector-store-files")
source = open_manifest(sys.argv[1], None)
tracemalloc.start()
plans = store_plans(source, target)
print(tracemalloc.get_traced_memory()[0] / sum(len(plan.pairs) for plan in plans))
"""


def plan_bytes_per_pair(manifest: Path) -> float:
    """What sync's plan keeps per manifest pair before listing (tracemalloc of `store_plans`
    in a fresh interpreter: every object it leaves allocated, file ids included)."""
    out = subprocess.run([sys.executable, "-c", PLAN_BYTES, str(manifest)], check=True,
                         capture_output=True, text=True).stdout
    return float(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs-per-store", type=int, default=PAIRS_PER_STORE,
                        help=f"manifest pairs (and preloaded files) a store, {STORES} stores "
                             f"(default {PAIRS_PER_STORE:,})")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="write every round here")
    args = parser.parse_args()
    n, rounds = args.pairs_per_store, args.rounds
    if n < 20:
        parser.error("--pairs-per-store must be at least 20 (5% of it is missing)")
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    for directory in scratch_dir():
        manifest = write_manifest(directory, n)
        manifest_mib = manifest.stat().st_size / 2**20
        plan_bytes = plan_bytes_per_pair(manifest)
        for round_no in range(rounds):
            result = one_round(directory, manifest, n, round_no)
            runs.append(result)
            print(f"  round {round_no + 1}: sync {result['sync_wall_s']:.1f} s wall "
                  f"(in-run {result['sync_in_run_s']:.1f} s), {result['sync_cpu_s']:.1f} s CPU, "
                  f"rss {result['sync_rss_mib']:.1f} MiB (validate "
                  f"{result['validate_rss_mib']:.1f} MiB: {result['bytes_per_listed']:.0f} B "
                  f"a listed file; dry runs {result['dry_full_rss_mib']:.1f} / "
                  f"{result['dry_min_rss_mib']:.1f} MiB: listing "
                  f"{result['listing_bytes_per_listed']:.0f} B a listed file); "
                  f"{result['list_requests']} list, "
                  + ", ".join(f"{result[r]} {r}" for r in WRITE_ROUTES)
                  + f"; rerun {result['rerun_wall_s']:.1f} s, {result['rerun_routes']}"
                  + (f"; PROBLEMS {result['problems']}" if result["problems"] else ""),
                  flush=True)
    load_after = os.getloadavg()

    def med(key: str) -> float:
        return median([r[key] for r in runs])

    total = STORES * n
    print()
    print(f"Sync of {total:,} pairs over {STORES} vector stores holding {total:,} files "
          f"({extras(n) * STORES:,} extra, {extras(n) * STORES:,} missing, "
          f"{sum(1 for j in range(n) if stale(j)) * STORES:,} stale), {rounds} round(s), "
          f"medians; manifest {manifest_mib:.1f} MiB JSONL")
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; {started:%Y-%m-%d %H:%M} UTC; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    rows = [
        ("sync wall (in-run)", f"{med('sync_wall_s'):.1f} s ({med('sync_in_run_s'):.1f} s)"),
        ("sync CPU (sandbox CPU)", f"{med('sync_cpu_s'):.1f} s ({med('sandbox_cpu_s'):.1f} s)"),
        ("sync peak RSS", f"{med('sync_rss_mib'):.1f} MiB"),
        ("validate peak RSS", f"{med('validate_rss_mib'):.1f} MiB"),
        ("(sync - validate) / listed files", f"{med('bytes_per_listed'):.0f} B"),
        ("dry run RSS, full / 1-file stores",
         f"{med('dry_full_rss_mib'):.1f} / {med('dry_min_rss_mib'):.1f} MiB"),
        ("listing alone: (full - 1-file) / listed files",
         f"{med('listing_bytes_per_listed'):.0f} B"),
        ("the plan: tracemalloc of store_plans / manifest pair", f"{plan_bytes:.0f} B"),
        ("list requests (GET list)", f"{med('list_requests'):,.0f}"),
        *((f"writes: {route}", f"{med(route):,.0f}") for route in WRITE_ROUTES),
        ("requests in all", f"{med('requests'):,.0f}"),
        ("rerun wall (peak RSS)",
         f"{med('rerun_wall_s'):.1f} s ({med('rerun_rss_mib'):.1f} MiB)"),
        ("rerun requests", f"{med('rerun_requests'):,.0f} (GET list only)"),
    ]
    print("| | median |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    bad = [(i + 1, r["problems"]) for i, r in enumerate(runs) if r["problems"]]
    print("record check:", "each store holds exactly its manifest's files with the manifest's "
          "attributes; each missing file attached once, each stale one updated once, each "
          "extra one detached once, nothing else written; every rerun sent list requests only"
          if not bad else f"PROBLEMS {bad}")
    print("command:", runs[0]["command"])
    print("bench:", shlex.join(["python", "bench/sync_bench.py", *sys.argv[1:]]))
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
