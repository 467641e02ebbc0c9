"""A nightly cycle of local files (issue 22, "Files that change: replace, prune, clean-up"):
`attach-runner sync` after 10% of 10,000 documents changed and 2% were deleted, against a
sandbox request limit the tool is not told, held against the least time the limits allow.

    python bench/nightly.py --rounds 3            # 10,000 documents, 4 stores (~7 minutes)
    python bench/nightly.py --quick --rounds 1    # 1,000 documents, to try it (~30 s)
    python bench/nightly.py --stores 1 --rps 12   # every document in one store

Each round, fresh: a folder of DOCS small Markdown files (`docs/S/doc-NNNNN.md`, 200-450
bytes of distinct ASCII, mtimes in 2020: no file is racy), a manifest of one glob row a store
(`vector_store_id,path` / `vs_nightly_S,docs/S/*.md`), a fresh log, and a sandbox
(`attach-runner sandbox --port 0 --processing-ms 0 --store-rpm 300`, the API's per-store
write limit, pinned to CPU 0). Outside the timing: the first run, `attach-runner run MANIFEST
--log LOG --base-url URL --concurrency 64 --no-progress --json`, uploads and attaches every
document (the sandbox has no request limit yet), and its record is checked. Then the nightly
change: every 10th document rewritten (other content, another size, mtime a day later, still
in the past), every 50th of the others deleted; the sandbox's config is changed live to
`rps RPS, latency_ms LATENCY` (POST /__sandbox/config), one round trip is measured (median of
5 GETs of a store), and, pinned to CPU 1 under /usr/bin/time -v, the timed command:

    attach-runner sync MANIFEST --log LOG --base-url URL --json --no-progress --max-delete 1000

(every other setting the default: `--rpm auto`, `--store-rpm 300`, `--concurrency 256`).
`sync`, not `run`: it is the nightly command, the one that also prunes the deleted files'
versions (`run` replaces and cleans up, but never detaches a path gone from the manifest).

After it, from the sandbox's record (GET /__sandbox/record): exit 0; each store holds each
current content exactly once (by the SHA-256 of its file object) and nothing else, each of
those objects live; the first run's objects of every changed or deleted document deleted
and in no store; the live file objects exactly one a current content; each new version
attached once, each old version (and each deleted document's) detached once, no write to a
file that was not there. A round whose check fails has no figure.

The bound. The requests it must make, by route of the sandbox's record: the list pages
(ceil(files in the store / 100) a store), one upload a changed document (C), one file batch a
store for its changed documents (ceil(C_s / 500)), one detach of each old version (C) and of
each deleted document's version (D), and one delete of each of those file objects (C + D):
N = lists + 3C + 2D + batches. Every request counts against the sandbox's RPS; the store writes
(batches and detaches, W_s = ceil(C_s / 500) + C_s + D_s for store s) also against the
store's 300 a minute. The least time the limits allow is the larger of N / RPS and
max_s(W_s) / 5 s^-1, and

    bound = 1.1 x max(N / RPS, max_s W_s x 60 / 300) + 3 round trips.

With the defaults (10,000 documents, 4 stores, RPS 50): N = 3,504 (70.1 s), W_s = 301 (60.2
s): the limit the tool is not told binds. The table gives medians over rounds, the ratio
elapsed / bound as the median of the rounds' ratios, the requests by route against that
minimum, and where the time went: for each kind of log line of the sync (uploads, batches,
detach-versions, prune detaches, file deletes), its count and the first and last of them in
seconds from the run's start.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the path above makes `bench` importable
    API_KEY,
    BENCH_DIR,
    SandboxProcess,
    median,
    run_in,
    runner_argv,
    scratch_dir,
    summary_of,
)

DOCS = 10_000
QUICK_DOCS = 1_000
STORES = 4
RPS = 50.0
STORE_RPM = 300  # the API's writes a minute a store, and the tool's default --store-rpm
LATENCY_MS = 50.0
PAGE = 100  # files a list page (the API's most)
BATCH = 500  # files a file batch (the tool's batch when --batch-size is 0)
SLACK = 1.1
PAST = 1_600_000_000  # 2020-09-13: the documents' mtimes
DAY = 86_400
MAX_DELETE = "1000"
SANDBOX_ARGS = ("--processing-ms", "0", "--store-rpm", str(STORE_RPM))
# The routes of the sandbox's record that the cycle must use, and the ones it may.
MUST = ("GET list", "POST upload", "POST batch", "DELETE file", "DELETE file_object")


# ---------------------------------------------------------------- the documents


def store_id(s: int) -> str:
    return f"vs_nightly_{s}"


def store_of(i: int, n: int, stores: int) -> int:
    return i * stores // n


def changed(i: int) -> bool:
    return i % 10 == 3


def deleted(i: int) -> bool:
    return i % 50 == 7  # never a changed one (i % 10 == 7)


def doc_text(i: int, version: int) -> bytes:
    """Document i's content at `version` (0: the first run's, 1: the nightly change's): a
    Markdown page of 200-450 bytes, distinct for every (i, version), another size after the
    change."""
    digest = hashlib.sha256(f"{i}/{version}".encode()).hexdigest()
    size = 200 + (i * 37) % 200 + 50 * version
    head = f"# Document {i}\n\nVersion {version}. Reference {digest[:16]}.\n\n"
    body = (digest + "\n") * (size // 65 + 1)
    return (head + body)[:size].encode()


def make_tree(root: Path, n: int, stores: int) -> tuple[Path, dict[int, str]]:
    """docs/S/doc-NNNNN.md for i < n, each at version 0, mtime PAST; the manifest; sha by i."""
    shas = {}
    for s in range(stores):
        (root / "docs" / str(s)).mkdir(parents=True)
    for i in range(n):
        path = doc_path(root, i, n, stores)
        content = doc_text(i, 0)
        path.write_bytes(content)
        os.utime(path, (PAST, PAST))
        shas[i] = hashlib.sha256(content).hexdigest()
    manifest = root / "nightly.csv"
    manifest.write_text("vector_store_id,path\n"
                        + "".join(f"{store_id(s)},docs/{s}/*.md\n" for s in range(stores)))
    return manifest, shas


def doc_path(root: Path, i: int, n: int, stores: int) -> Path:
    return root / "docs" / str(store_of(i, n, stores)) / f"doc-{i:05d}.md"


def nightly_change(root: Path, n: int, stores: int) -> dict[int, str]:
    """Rewrite the changed documents (version 1, mtime a day after PAST), delete the deleted
    ones; the current sha by i."""
    shas = {}
    for i in range(n):
        path = doc_path(root, i, n, stores)
        if deleted(i):
            path.unlink()
            continue
        content = doc_text(i, 1 if changed(i) else 0)
        if changed(i):
            path.write_bytes(content)
            os.utime(path, (PAST + DAY, PAST + DAY))
        shas[i] = hashlib.sha256(content).hexdigest()
    return shas


# ---------------------------------------------------------------- requests and the bound


def must_make(n: int, stores: int) -> dict[str, Any]:
    """The requests the cycle must make, by route, and each store's writes."""
    listed = Counter(store_of(i, n, stores) for i in range(n))
    changes = Counter(store_of(i, n, stores) for i in range(n) if changed(i))
    gone = Counter(store_of(i, n, stores) for i in range(n) if deleted(i))
    batches = {s: math.ceil(changes[s] / BATCH) for s in range(stores)}
    routes = {
        "GET list": sum(max(1, math.ceil(listed[s] / PAGE)) for s in range(stores)),
        "POST upload": sum(changes.values()),
        "POST batch": sum(batches.values()),
        "DELETE file": sum(changes.values()) + sum(gone.values()),
        "DELETE file_object": sum(changes.values()) + sum(gone.values()),
    }
    writes = {store_id(s): batches[s] + changes[s] + gone[s] for s in range(stores)}
    return {"routes": routes, "total": sum(routes.values()), "store_writes": writes,
            "changed": sum(changes.values()), "deleted": sum(gone.values())}


def bound_of(need: dict[str, Any], rps: float, rtt: float) -> dict[str, float]:
    by_rate = need["total"] / rps
    by_store = max(need["store_writes"].values()) * 60 / STORE_RPM
    return {"by_rate_s": by_rate, "by_store_s": by_store,
            "bound_s": SLACK * max(by_rate, by_store) + 3 * rtt}


# ---------------------------------------------------------------- the sandbox


def configure(sandbox: SandboxProcess, changes: dict[str, Any]) -> None:
    url = sandbox.base_url.removesuffix("/v1") + "/__sandbox/config"
    request = urllib.request.Request(url, data=json.dumps(changes).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        resp.read()


def round_trip(sandbox: SandboxProcess, store: str) -> float:
    """Seconds one answer takes (median of 5 GETs of a store, one at a time)."""
    times = []
    for _ in range(5):
        request = urllib.request.Request(
            f"{sandbox.base_url}/vector_stores/{store}",
            headers={"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "assistants=v2"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as resp:
            resp.read()
        times.append(time.perf_counter() - started)
    return median(times)


# ---------------------------------------------------------------- the checks


def check_stores(record: dict[str, Any], shas: dict[int, str], n: int,
                 stores: int) -> list[str]:
    """Each store holds each current content of its documents exactly once and nothing else,
    every one of them a live file object."""
    problems = []
    files = record["files"]
    for s in range(stores):
        store = store_id(s)
        want = Counter(sha for i, sha in shas.items() if store_of(i, n, stores) == s)
        held_ids = record["vector_store_files"].get(store, {})
        held = Counter(files[f]["sha256"] if f in files else f"unknown {f}" for f in held_ids)
        if held != want:
            problems.append(f"{store}: {sum((held - want).values())} file(s) it should not "
                            f"hold, {sum((want - held).values())} content(s) missing")
        dead = [f for f in held_ids if f in files and files[f]["deleted"]]
        if dead:
            problems.append(f"{store}: holds {len(dead)} deleted file object(s) {dead[:3]}")
    return problems


def check_cycle(record: dict[str, Any], before: dict[str, Any], shas: dict[int, str],
                first: dict[int, str], n: int, stores: int) -> list[str]:
    """The nightly sync's end state, against the record `before` it: the stores (above); the
    first run's objects of the changed and deleted documents deleted and in no store; one live
    object a current content; each new version attached once, each old one detached once,
    nothing written twice or to a file that was not there."""
    problems = check_stores(record, shas, n, stores)
    files = record["files"]
    by_sha = {f["sha256"]: file_id for file_id, f in before["files"].items()}
    old = [by_sha[first[i]] for i in range(n) if changed(i) or deleted(i)]
    not_deleted = [f for f in old if not files[f]["deleted"] or files[f]["stores"]]
    if not_deleted:
        problems.append(f"{len(not_deleted)} old version(s) not deleted or still in a store "
                        f"(e.g. {not_deleted[:3]})")
    live = Counter(f["sha256"] for f in files.values() if not f["deleted"])
    if live != Counter(shas.values()):
        problems.append(f"live file objects: {sum((live - Counter(shas.values())).values())} "
                        f"more, {sum((Counter(shas.values()) - live).values())} fewer than "
                        "one a current content")
    pairs, pairs_before = record["pairs"], before["pairs"]
    new_ids = {f["sha256"]: file_id for file_id, f in files.items() if not f["deleted"]}
    bad = []
    for i in range(n):
        store = store_id(store_of(i, n, stores))
        expect = []
        if changed(i):
            expect = [(new_ids.get(shas[i], "?"), {"attached": 1, "detached": 0}),
                      (by_sha[first[i]], {"attached": 1, "detached": 1})]
        elif deleted(i):
            expect = [(by_sha[first[i]], {"attached": 1, "detached": 1})]
        for file_id, want in expect:
            entry = pairs.get(f"{store}/{file_id}", {})
            got = {key: entry.get(key, 0) for key in want}
            extra = {key: entry.get(key, 0) - pairs_before.get(f"{store}/{file_id}", {})
                     .get(key, 0) for key in ("posts_after_attached", "deletes_when_absent",
                                              "updates_when_absent")}
            if got != want or any(extra.values()):
                bad.append(f"{store}/{file_id} (doc {i}): {entry}, expected {want}")
    if bad:
        problems.append(f"{len(bad)} pair(s) written otherwise than once: {bad[:3]}")
    return problems


def check_fill(record: dict[str, Any], first: dict[int, str], n: int, stores: int) -> list[str]:
    problems = check_stores(record, first, n, stores)
    live = Counter(f["sha256"] for f in record["files"].values() if not f["deleted"])
    if live != Counter(first.values()):
        problems.append("first run: not one live file object a content")
    return [f"first run: {p}" for p in problems]


# ---------------------------------------------------------------- the log's phases

PHASES = (  # (label, event, op): op None for lines that carry none
    ("uploads", "upload-sent", None), ("uploads", "uploaded", None),
    ("file batches", "batch-sent", None), ("file batches", "batch-created", None),
    ("new versions' done", "done", "attach"),
    ("detach-version", "sent", "detach-version"), ("detach-version", "done", "detach-version"),
    ("prune detach", "sent", "detach"), ("prune detach", "done", "detach"),
    ("file delete", "file-delete-sent", None), ("file delete", "file-deleted", None),
)


def phases(log: Path) -> list[dict[str, Any]]:
    """For the last run in `log`: each kind of line, its count and the seconds from run-start
    of its first and last line."""
    lines: list[dict[str, Any]] = []
    for raw in log.read_text().splitlines():
        line = json.loads(raw)
        if line["event"] == "run-start":
            lines = []
        lines.append(line)
    start = stamp(lines[0]["ts"])
    end = stamp(lines[-1]["ts"])
    out = []
    for label, event, op in PHASES:
        times = [stamp(x["ts"]) - start for x in lines
                 if x["event"] == event and (op is None or x.get("op", "attach") == op)]
        if times:
            out.append({"phase": label, "line": event, "count": len(times),
                        "first_s": min(times), "last_s": max(times)})
    out.append({"phase": "run-end", "line": "run-end", "count": 1, "first_s": end - start,
                "last_s": end - start})
    return out


def stamp(ts: str) -> float:
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- one round


def one_round(directory: Path, n: int, stores: int, rps: float, latency_ms: float,
              round_no: int) -> dict[str, Any]:
    root = directory / f"round{round_no}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    manifest, first = make_tree(root, n, stores)
    log = root / "nightly.results.jsonl"
    fill_argv = runner_argv("run", str(manifest), "--log", str(log), "--base-url", "{base_url}",
                            "--concurrency", "64", "--no-progress", "--json")
    sync_argv = runner_argv("sync", str(manifest), "--log", str(log), "--base-url",
                            "{base_url}", "--json", "--no-progress", "--max-delete", MAX_DELETE)
    result: dict[str, Any] = {"round": round_no + 1,
                              "command": shlex.join(a.replace("{base_url}",
                                                              "http://127.0.0.1:PORT/v1")
                                                    for a in sync_argv)}
    with SandboxProcess(*SANDBOX_ARGS) as sandbox:
        fill = run_in(sandbox, fill_argv)
        before = sandbox.record()
        problems = check_fill(before, first, n, stores)
        if fill.code != 0:
            problems.append(f"first run exit {fill.code}: {fill.stderr[-300:]}")
        result["fill_s"] = fill.wall_s
        shas = nightly_change(root, n, stores)
        configure(sandbox, {"rps": rps, "latency_ms": latency_ms})
        rtt = round_trip(sandbox, store_id(0))
        time.sleep(1.5)  # the round trips' tokens back in the bucket
        before = sandbox.record()
        got = run_in(sandbox, sync_argv)
        after = sandbox.record()
    if got.code != 0:
        problems.append(f"sync exit {got.code}: {got.stdout[-400:]} {got.stderr[-400:]}")
    problems += check_cycle(after, before, shas, first, n, stores)
    routes = {route: count - before["by_route"].get(route, 0)
              for route, count in after["by_route"].items()
              if count - before["by_route"].get(route, 0)}
    statuses = {status: count - before["by_status"].get(status, 0)
                for status, count in after["by_status"].items()
                if count - before["by_status"].get(status, 0)}
    limited = {scope: count - before["rate_limited"].get(scope, 0)
               for scope, count in after["rate_limited"].items()}
    summary = summary_of(got)
    need = must_make(n, stores)
    bound = bound_of(need, rps, rtt)
    result.update({
        "wall_s": got.wall_s, "in_run_s": summary.get("elapsed_s", float("nan")),
        "cpu_s": got.cpu_s, "rss_mib": got.max_rss_mib, "server_cpu_s": got.server_cpu_s,
        "rtt_s": rtt, "routes": routes, "requests": sum(routes.values()), "statuses": statuses,
        "rate_limited": limited,
        "store_writes": {store: count - before["writes_by_store"].get(store, 0)
                         for store, count in after["writes_by_store"].items()},
        "summary": {k: summary.get(k) for k in ("exit", "uploaded", "reused", "replaced",
                                                "files_deleted", "detached", "requests",
                                                "elapsed_s")},
        "phases": phases(log), "need": need, **bound,
        "ratio": got.wall_s / bound["bound_s"], "problems": problems,
    })
    return result


# ---------------------------------------------------------------- the report


def report(runs: list[dict[str, Any]], args: argparse.Namespace, started: datetime.datetime,
           commit: str, load: tuple[float, float]) -> list[str]:
    def med(key: str) -> float:
        return median([r[key] for r in runs])

    need = runs[0]["need"]
    n, stores = args.docs, args.stores
    out = [
        f"Nightly cycle: {n:,} documents in {stores} store(s), {need['changed']:,} changed, "
        f"{need['deleted']:,} deleted; sandbox rps {args.rps:g} (not told), store_rpm "
        f"{STORE_RPM} (the tool's default), latency {args.latency_ms:g} ms; {len(runs)} "
        f"round(s), medians",
        f"commit {commit}; {started:%Y-%m-%d %H:%M} UTC; {platform.platform()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load[0]:.2f} before, {load[1]:.2f} after",
        f"command: {runs[0]['command']}",
        f"bench: {shlex.join(['python', 'bench/nightly.py', *sys.argv[1:]])}",
        "",
        "| measure | median | per round |",
        "|---|---|---|",
    ]

    for name, key, fmt in (
            ("sync, whole process (s)", "wall_s", ".1f"),
            ("sync, in-run elapsed_s (s)", "in_run_s", ".1f"),
            ("least time by the rate: N / rps (s)", "by_rate_s", ".1f"),
            ("least time by the store limit: max W_s x 60 / 300 (s)", "by_store_s", ".1f"),
            ("round trip (s)", "rtt_s", ".3f"),
            ("bound: 1.1 x max(...) + 3 round trips (s)", "bound_s", ".1f"),
            ("ratio elapsed / bound (target <= 1)", "ratio", ".2f"),
            ("requests sent", "requests", ",d"),
            ("client CPU (s)", "cpu_s", ".1f"),
            ("sandbox CPU (s)", "server_cpu_s", ".1f"),
            ("client peak RSS (MiB)", "rss_mib", ".0f"),
            ("first run, outside the timing (s)", "fill_s", ".1f")):
        per = " / ".join(format(r[key], fmt) for r in runs)
        out.append(f"| {name} | {format(med(key), fmt)} | {per} |")
    out += ["", "| route (sandbox record) | must make | sent, per round |", "|---|---|---|"]
    routes = sorted({r for run in runs for r in run["routes"]} | set(MUST))
    for route in routes:
        out.append(f"| {route} | {need['routes'].get(route, 0):,} | "
                   + " / ".join(f"{run['routes'].get(route, 0):,}" for run in runs) + " |")
    out.append(f"| all | {need['total']:,} | "
               + " / ".join(f"{run['requests']:,}" for run in runs) + " |")
    out.append(f"| store writes, busiest store | {max(need['store_writes'].values()):,} | "
               + " / ".join(f"{max(run['store_writes'].values(), default=0):,}"
                            for run in runs) + " |")
    out += ["", "429s per round: " + "; ".join(
        f"{run['statuses'].get('429', 0)} ({run['rate_limited']})" for run in runs)]
    middle = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    out += ["", f"Where the time went (round {middle['round']}, the median one; seconds from "
            "run-start by the log's lines):", "",
            "| phase | line | count | first | last |", "|---|---|---|---|---|"]
    for p in middle["phases"]:
        out.append(f"| {p['phase']} | {p['line']} | {p['count']:,} | {p['first_s']:.1f} | "
                   f"{p['last_s']:.1f} |")
    bad = [(r["round"], r["problems"]) for r in runs if r["problems"]]
    out += ["", "record check: " + ("every round passed" if not bad else f"PROBLEMS {bad}")]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_DOCS:,} documents (unless --docs)")
    parser.add_argument("--docs", type=int, default=0, help=f"documents (default {DOCS:,})")
    parser.add_argument("--stores", type=int, default=STORES)
    parser.add_argument("--rps", type=float, default=0,
                        help=f"the sandbox's limit for the sync (default {RPS:g}; --quick: "
                             f"{RPS / 2:g})")
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    parser.add_argument("--json", metavar="FILE", help="write every round here")
    args = parser.parse_args()
    args.docs = args.docs or (QUICK_DOCS if args.quick else DOCS)
    args.rps = args.rps or (RPS / 2 if args.quick else RPS)
    started = datetime.datetime.now(datetime.timezone.utc)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=BENCH_DIR).stdout.strip()
    load_before = os.getloadavg()[0]
    runs = []
    for directory in scratch_dir():
        for round_no in range(args.rounds):
            got = one_round(directory, args.docs, args.stores, args.rps, args.latency_ms,
                            round_no)
            runs.append(got)
            print(f"  round {round_no + 1}: sync {got['wall_s']:.1f} s (in-run "
                  f"{got['in_run_s']:.1f} s), bound {got['bound_s']:.1f} s, ratio "
                  f"{got['ratio']:.2f}; {got['requests']:,} requests {got['routes']}; "
                  f"first run {got['fill_s']:.1f} s"
                  + (f"; PROBLEMS {got['problems']}" if got["problems"] else ""), flush=True)
    print()
    for line in report(runs, args, started, commit, (load_before, os.getloadavg()[0])):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 1 if any(r["problems"] for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
