"""Local files (SPEC "Local files", Speed), four figures side by side in one invocation:

1. hashing: `runner.operations.hashing.hash_file` over the same files as `sha256sum`, called
   as the run calls it, through `Hasher.hash` (a file up to INLINE_HASH_BYTES on the event
   loop, a larger one in a thread, at most one a usable core at a time), every file's hash
   started at once as the run's pairs do (8 x 200 MB, and 2,000 x 4 KB); the files are in the
   page cache (each read once before timing), their sizes known beforehand (the run has them
   from its walk);
2. uploads: `attach-runner run` (upload + attach) over a CSV manifest of paths into one vector
   store against the bare aiohttp upload loop (bench/bare_upload.py, uploads only) and the
   SDK's `file_batches.upload_and_poll` (bench/sdk_upload.py), same `--concurrency`, 2,000 x 4
   KB (files/s) and 8 x 200 MB (MB/s, 10^6 bytes); each client against a fresh sandbox whose
   record is checked after it (each content one file object, in the store once);
3. peak RSS of `attach-runner run` uploading one 400 MB file against one 4 MB file;
4. the rerun of `attach-runner run` over 100,000 unchanged files (a `docs/**/*.txt` glob into
   one store, its log filled by one run outside the timing) against an `os.scandir` walk of the
   tree (stat each file) plus `ResumeIndex.load_log` of the same log, in one process.

    python bench/uploads.py --rounds 3            # everything (~7 minutes)
    python bench/uploads.py --quick --rounds 1    # every figure scaled down (~2 minutes)
    python bench/uploads.py --only hash,upload --rounds 3

Sandboxes: `attach-runner sandbox --port 0 --processing-ms 0 --file-max-bytes 1073741824`,
pinned to CPU 0; every client pinned to CPU 1 under /usr/bin/time -v. Each round runs every
client of a figure once, the order rotating from round to round; the table gives medians and
the median of the per-round ratios. attach-runner's arms: `run MANIFEST --log FRESH --base-url
URL --concurrency N --no-progress --json`, every other setting the default (uploaded files are
attached in file batches of 500 a store, so the default 300 writes a minute a store does not
bound these figures; the first run that fills the rerun's log passes `--concurrency 64` too).

Helper modes (run by the harness as clients): `uploads.py hash LIST` (the file of paths, one a
line) and `uploads.py walk ROOT LOG`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the path above makes `bench` importable
    BENCH_DIR,
    PYTHON,
    Measured,
    SandboxProcess,
    median,
    run_in,
    run_timed,
    runner_argv,
    scratch_dir,
    summary_of,
)

MB = 1_000_000
SANDBOX_ARGS = ("--processing-ms", "0", "--file-max-bytes", str(1 << 30))
PAST = 1_600_000_000  # mtime of the rerun's tree (2020): no file is racy
UPLOAD_CLIENTS = ("runner", "bare", "sdk")


# ------------------------------------------------------------------ helper modes (clients)


def hash_mode(listing: str) -> None:
    from runner.items import LocalFile
    from runner.operations.hashing import Hasher, hash_file

    paths = Path(listing).read_text().split("\n")
    paths = [p for p in paths if p]
    known = []
    for path in paths:  # the run's walk stats each file before its hash: not timed here
        stat = os.stat(path)
        known.append(LocalFile(path, stat.st_size, stat.st_mtime_ns))

    async def all_files() -> int:
        # The run's Hasher itself (small files on the loop, large ones in a thread, at most a
        # usable core's count at a time), every file at once as the run's pairs ask for them.
        hasher = Hasher()
        done = await asyncio.gather(*(hasher.hash(local) for local in known))
        return sum(local.size for local in done)

    started = time.perf_counter()
    total = asyncio.run(all_files())
    elapsed = time.perf_counter() - started
    started = time.perf_counter()  # the same, called directly (no thread, no event loop)
    for local in known:
        hash_file(local)
    print(json.dumps({"files": len(paths), "bytes": total, "elapsed_s": round(elapsed, 4),
                      "direct_s": round(time.perf_counter() - started, 4)}))


def walk_mode(root: str, log: str) -> None:
    from runner.log.resume import ResumeIndex

    started = time.perf_counter()
    files = 0
    folders = [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    entry.stat(follow_symlinks=False)
                    files += 1
    walked = time.perf_counter() - started
    index = ResumeIndex("vector_store_id")
    index.load_log(log, warn=lambda message: None)
    print(json.dumps({"files": files, "walk_s": round(walked, 3),
                      "elapsed_s": round(time.perf_counter() - started, 3)}))


# ------------------------------------------------------------------ files and manifests


def text_file(path: Path, size: int, seed: int) -> str:
    """A file of `size` bytes of ASCII (hex of random bytes, distinct per seed); its SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        head = f"{seed}\n".encode()
        out.write(head)
        digest.update(head)
        left -= len(head)
        while left > 0:
            piece = os.urandom(min(left, 8 << 20) // 2 + 1).hex().encode()[:min(left, 8 << 20)]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def make_set(directory: Path, name: str, count: int, size: int) -> dict[str, Any]:
    """`count` files of `size` bytes under directory/name, a manifest of them into one store,
    and what the sandbox must end up holding."""
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    store = f"vs_{name}"
    paths, shas = [], []
    for i in range(count):
        path = folder / f"doc-{i:05d}.txt"
        shas.append(text_file(path, size, i))
        paths.append(str(path))
    manifest = directory / f"{name}.csv"
    manifest.write_text("vector_store_id,path\n"
                        + "".join(f"{store},{name}/{Path(p).name}\n" for p in paths))
    listing = directory / f"{name}.list"
    listing.write_text("\n".join(paths) + "\n")
    return {"name": name, "paths": paths, "shas": shas, "store": store, "manifest": manifest,
            "listing": listing, "bytes": count * size, "count": count}


def warm(paths: list[str]) -> None:
    """Read each file once: the figures are for files in the page cache."""
    for path in paths:
        with open(path, "rb") as stream:
            while stream.read(8 << 20):
                pass


def check_record(record: dict[str, Any], shas: list[str], store: str | None) -> list[str]:
    """Each content one live file object; with `store`, each content in it exactly once and
    nothing else there."""
    problems: list[str] = []
    files = record["files"]
    live = Counter(f["sha256"] for f in files.values() if not f["deleted"])
    want = Counter(shas)
    if live != want:
        extra = sum((live - want).values())
        missing = sum((want - live).values())
        problems.append(f"file objects: {extra} more, {missing} fewer than one a content")
    if store is not None:
        held = Counter(files[file_id]["sha256"] if file_id in files else file_id
                       for file_id in record["vector_store_files"].get(store, {}))
        if held != want:
            problems.append(f"{store}: {sum((held - want).values())} extra, "
                            f"{sum((want - held).values())} missing")
    return problems


def rerun_tree(directory: Path, count: int, per_folder: int) -> dict[str, Any]:
    root = directory / "rerun"
    docs = root / "docs"
    shas = []
    for i in range(count):
        folder = docs / f"d{i // per_folder:03d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{i % per_folder:04d}.txt"
        content = f"document {i}\n".encode() * 8
        path.write_bytes(content)
        os.utime(path, (PAST, PAST))
        shas.append(hashlib.sha256(content).hexdigest())
    manifest = root / "docs.csv"
    manifest.write_text("vector_store_id,path\nvs_rerun,docs/**/*.txt\n")
    return {"root": root, "docs": docs, "manifest": manifest, "shas": shas,
            "log": root / "docs.results.jsonl", "count": count}


# ------------------------------------------------------------------ the figures


def fresh_log(path: Path) -> Path:
    for stale in (path, path.with_name(path.name + ".lock")):
        stale.unlink(missing_ok=True)
    return path


def hashing(sets: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fileset in sets:
        warm(fileset["paths"])
        runs: dict[str, list[dict[str, float]]] = {"runner": [], "sha256sum": []}
        for round_no in range(rounds):
            order = ["runner", "sha256sum"][::(-1 if round_no % 2 else 1)]
            for client in order:
                if client == "runner":
                    got = run_timed([PYTHON, str(BENCH_DIR / "uploads.py"), "hash",
                                     str(fileset["listing"])])
                    inner = json.loads(got.stdout)["elapsed_s"]
                    direct = json.loads(got.stdout)["direct_s"]
                else:
                    got = run_timed(["sha256sum", *fileset["paths"]])
                    inner = direct = got.wall_s
                assert got.code == 0, got.stderr
                runs[client].append({"wall_s": got.wall_s, "in_s": inner, "direct_s": direct,
                                     "cpu_s": got.cpu_s})
                print(f"  hash {fileset['name']} round {round_no + 1} {client:9} "
                      f"{fileset['bytes'] / MB / inner:8.1f} MB/s (process {got.wall_s:.3f} s)",
                      flush=True)
        mbs = fileset["bytes"] / MB
        out[fileset["name"]] = {
            "runner_mb_s": median([mbs / r["in_s"] for r in runs["runner"]]),
            "runner_direct_mb_s": median([mbs / r["direct_s"] for r in runs["runner"]]),
            # the helper's process hashes twice (Hasher.hash, then direct): less the second
            "runner_process_mb_s": median([mbs / (r["wall_s"] - r["direct_s"])
                                           for r in runs["runner"]]),
            "sha256sum_mb_s": median([mbs / r["wall_s"] for r in runs["sha256sum"]]),
            "ratio": median([s["wall_s"] / r["in_s"]
                             for r, s in zip(runs["runner"], runs["sha256sum"], strict=True)]),
            "ratio_process": median([s["wall_s"] / (r["wall_s"] - r["direct_s"]) for r, s in
                                     zip(runs["runner"], runs["sha256sum"], strict=True)]),
            "runs": runs}
    return out


def upload_argv(client: str, fileset: dict[str, Any], log: Path, concurrency: int) -> list[str]:
    manifest = str(fileset["manifest"])
    if client == "bare":
        return [PYTHON, str(BENCH_DIR / "bare_upload.py"), manifest, "--base-url", "{base_url}",
                "--concurrency", str(concurrency)]
    if client == "sdk":
        return [PYTHON, str(BENCH_DIR / "sdk_upload.py"), manifest, "--base-url", "{base_url}",
                "--concurrency", str(concurrency)]
    return runner_argv("run", manifest, "--log", str(fresh_log(log)), "--base-url", "{base_url}",
                       "--concurrency", str(concurrency), "--no-progress", "--json")


def uploads(sets: list[dict[str, Any]], rounds: int, concurrency: int,
            directory: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fileset in sets:
        warm(fileset["paths"])
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in UPLOAD_CLIENTS}
        for round_no in range(rounds):
            shift = round_no % len(UPLOAD_CLIENTS)
            for client in UPLOAD_CLIENTS[shift:] + UPLOAD_CLIENTS[:shift]:
                argv = upload_argv(client, fileset, directory / f"{fileset['name']}.log.jsonl",
                                   concurrency)
                with SandboxProcess(*SANDBOX_ARGS) as sandbox:
                    got = run_in(sandbox, argv)
                    record = sandbox.record()
                problems = check_record(record, fileset["shas"],
                                        None if client == "bare" else fileset["store"])
                if got.code != 0:
                    problems.append(f"exit {got.code}: {got.stderr[-300:]}")
                summary = summary_of(got)
                runs[client].append({
                    "wall_s": got.wall_s, "in_run_s": summary.get("elapsed_s", got.wall_s),
                    "cpu_s": got.cpu_s, "server_cpu_s": got.server_cpu_s,
                    "rss_mib": got.max_rss_mib, "requests": record["requests"],
                    "problems": problems,
                    "command": shlex.join(a.replace("{base_url}", "http://127.0.0.1:PORT/v1")
                                          for a in argv)})
                rate = (fileset["count"] if fileset["name"] == "small" else fileset["bytes"] / MB)
                print(f"  upload {fileset['name']} round {round_no + 1} {client:12} "
                      f"{rate / got.wall_s:8.1f} {'files' if fileset['name'] == 'small' else 'MB'}"
                      f"/s (process {got.wall_s:.2f} s, in-run "
                      f"{runs[client][-1]['in_run_s']:.2f} s, cpu {got.cpu_s:.2f} s, sandbox cpu "
                      f"{got.server_cpu_s:.2f} s, rss {got.max_rss_mib:.0f} MiB)"
                      + (f" PROBLEMS {problems}" if problems else ""), flush=True)
        out[fileset["name"]] = runs
    return out


def peak_rss(directory: Path, big: dict[str, Any], small: dict[str, Any],
             rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"big": [], "small": []}
    warm(big["paths"] + small["paths"])
    for round_no in range(rounds):
        for which in ["big", "small"][::(-1 if round_no % 2 else 1)]:
            fileset = big if which == "big" else small
            argv = runner_argv("run", str(fileset["manifest"]), "--log",
                               str(fresh_log(directory / f"rss-{which}.log.jsonl")),
                               "--base-url", "{base_url}", "--no-progress", "--json")
            with SandboxProcess(*SANDBOX_ARGS) as sandbox:
                got = run_in(sandbox, argv)
                problems = check_record(sandbox.record(), fileset["shas"], fileset["store"])
            if got.code != 0:
                problems.append(f"exit {got.code}: {got.stderr[-300:]}")
            runs[which].append({"rss_mib": got.max_rss_mib, "wall_s": got.wall_s,
                                "problems": problems})
            print(f"  rss {which:5} round {round_no + 1} {got.max_rss_mib:6.1f} MiB "
                  f"({fileset['bytes'] / MB:.0f} MB in {got.wall_s:.2f} s)"
                  + (f" PROBLEMS {problems}" if problems else ""), flush=True)
    return runs


def count_opens(argv: list[str], under: str) -> int:
    """Files under `under` the command opened (strace, one extra untimed run); -1 without
    strace."""
    trace = Path(under).parent / "rerun.strace"
    try:
        subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(trace),
                        *argv], capture_output=True, check=False, env=_env())
    except FileNotFoundError:
        return -1
    with open(trace, encoding="utf-8", errors="replace") as lines:
        return sum(1 for line in lines if under in line and ".txt" in line)


def _env() -> dict[str, str]:
    from bench.common import client_env

    return client_env()


def rerun(directory: Path, count: int, per_folder: int, rounds: int) -> dict[str, Any]:
    started = time.perf_counter()
    tree = rerun_tree(directory, count, per_folder)
    print(f"  rerun: {count:,} files made in {time.perf_counter() - started:.1f} s", flush=True)
    log = fresh_log(tree["log"])
    base = runner_argv("run", str(tree["manifest"]), "--log", str(log), "--base-url",
                       "{base_url}", "--no-progress", "--json")
    runs: dict[str, list[dict[str, Any]]] = {"runner": [], "walk+load_log": [], "status": []}
    with SandboxProcess(*SANDBOX_ARGS) as sandbox:
        first = run_in(sandbox, [*base, "--concurrency", "64"])
        record = sandbox.record()
        problems = check_record(record, tree["shas"], "vs_rerun")
        if first.code != 0:
            problems.append(f"first run exit {first.code}: {first.stderr[-300:]}")
        fill = {"wall_s": first.wall_s, "cpu_s": first.cpu_s, "rss_mib": first.max_rss_mib,
                "log_bytes": log.stat().st_size, "problems": problems}
        print(f"  rerun: first run {first.wall_s:.1f} s ({count / first.wall_s:,.0f} files/s), "
              f"log {fill['log_bytes'] / 2**20:.1f} MiB"
              + (f" PROBLEMS {problems}" if problems else ""), flush=True)
        requests_before = record["requests"]
        clients = ("runner", "walk+load_log", "status")
        for round_no in range(rounds):
            shift = round_no % len(clients)
            for client in clients[shift:] + clients[:shift]:
                if client == "runner":
                    got: Measured = run_in(sandbox, base)
                    summary = summary_of(got)
                    bad = [] if got.code == 0 and summary.get("requests") == 0 and \
                        summary.get("uploaded") == 0 else [f"exit {got.code}: {got.stdout[-300:]}"]
                elif client == "status":
                    got = run_timed(runner_argv("status", str(tree["manifest"]), "--log",
                                                str(log), "--json"))
                    bad = [] if got.code == 0 else [got.stderr[-300:]]
                else:
                    got = run_timed([PYTHON, str(BENCH_DIR / "uploads.py"), "walk",
                                     str(tree["docs"]), str(log)])
                    bad = [] if got.code == 0 else [got.stderr[-300:]]
                runs[client].append({"wall_s": got.wall_s, "cpu_s": got.cpu_s,
                                     "rss_mib": got.max_rss_mib, "problems": bad,
                                     "stdout": got.stdout[-500:]})
                print(f"  rerun round {round_no + 1} {client:14} {got.wall_s:6.2f} s "
                      f"rss {got.max_rss_mib:.0f} MiB" + (f" PROBLEMS {bad}" if bad else ""),
                      flush=True)
        sent = sandbox.record()["requests"] - requests_before
        opened = count_opens([a.replace("{base_url}", sandbox.base_url) for a in base],
                             str(tree["docs"]))
    return {"fill": fill, "runs": runs, "requests_during_reruns": sent,
            "files_opened_by_a_rerun": opened, "count": count}


# ------------------------------------------------------------------ the table


def table(results: dict[str, Any], concurrency: int) -> list[str]:
    rows = ["| figure | measure | attach-runner | yardstick | ratio | target | verdict |",
            "|---|---|---|---|---|---|---|"]
    for name, got in results.get("hash", {}).items():
        rows.append(f"| hashing, {name} | MB/s: hash_file via Hasher.hash (called directly; "
                    f"whole process) | {got['runner_mb_s']:,.0f} "
                    f"({got['runner_direct_mb_s']:,.0f}; {got['runner_process_mb_s']:,.0f}) | "
                    f"sha256sum {got['sha256sum_mb_s']:,.0f} | {got['ratio']:.2f} "
                    f"({got['ratio_process']:.2f}) | >= 0.9 | "
                    f"{'ok' if got['ratio'] >= 0.9 else 'MISS'} |")
    for name, runs in results.get("upload", {}).items():
        small = name == "small"
        unit = "files/s" if small else "MB/s"
        amount = results["sizes"][name]["count" if small else "mb"]
        bare = runs["bare"]

        def rate(runs: list[dict[str, Any]], key: str = "wall_s", amount: float = amount) -> str:
            return f"{median([amount / r[key] for r in runs]):,.1f}"

        for client in ("runner", "sdk"):
            ratio = median([b["wall_s"] / r["wall_s"]
                            for r, b in zip(runs[client], bare, strict=True)])
            bad = sum(1 for r in runs[client] if r["problems"])
            label = {"runner": "attach-runner",
                     "sdk": "SDK upload_and_poll (comparison)"}[client]
            target = ">= 0.9" if client != "sdk" else "-"
            verdict = "-" if client == "sdk" else ("ok" if ratio >= 0.9 else "MISS")
            if bad:
                verdict += f", record check failed in {bad} run(s)"
            rows.append(f"| uploads, {name}: {label} | {unit}, whole process (in-run) | "
                        f"{rate(runs[client])} ({rate(runs[client], 'in_run_s')}) | bare "
                        f"{rate(bare)} ({rate(bare, 'in_run_s')}) | {ratio:.2f} | {target} | "
                        f"{verdict} |")
    if "rss" in results:
        rss = results["rss"]
        big, small = (median([r["rss_mib"] for r in rss[k]]) for k in ("big", "small"))
        sizes = results["sizes"]
        rows.append(f"| peak RSS | MiB, one {sizes['rss_big_mb']:.0f} MB file vs one "
                    f"{sizes['rss_small_mb']:.0f} MB file | {big:.1f} | {small:.1f} | "
                    f"{big / small:.2f} | not growing | "
                    f"{'ok' if big - small < 8 else 'MISS'} |")
    if "rerun" in results:
        got = results["rerun"]
        runs = got["runs"]
        ours = median([r["wall_s"] for r in runs["runner"]])
        walk = median([r["wall_s"] for r in runs["walk+load_log"]])
        ratio = median([r["wall_s"] / w["wall_s"]
                        for r, w in zip(runs["runner"], runs["walk+load_log"], strict=True)])
        status = median([r["wall_s"] for r in runs["status"]])
        rows.append(f"| rerun, {got['count']:,} unchanged files | seconds, whole process; "
                    f"requests; files opened | {ours:.2f} s; {got['requests_during_reruns']}; "
                    f"{got['files_opened_by_a_rerun']} | scandir walk + load_log {walk:.2f} s "
                    f"(`status` alone {status:.2f} s) | {ratio:.2f} | <= 1.5 | "
                    f"{'ok' if ratio <= 1.5 else 'MISS'} |")
    rows.append(f"(concurrency {concurrency} for every upload client)")
    return rows


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "hash":
        hash_mode(sys.argv[2])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "walk":
        walk_mode(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="every size scaled down")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--only", default="hash,upload,rss,rerun")
    parser.add_argument("--rerun-files", type=int, default=0,
                        help="files of the rerun's tree (default 100,000; --quick 2,000)")
    parser.add_argument("--json", metavar="FILE", help="write every run here")
    args = parser.parse_args()
    only = set(args.only.split(","))
    small_n, large_n, large_mb = (200, 2, 20) if args.quick else (2000, 8, 200)
    rss_big_mb = 40 if args.quick else 400
    rerun_n = args.rerun_files or (2000 if args.quick else 100_000)
    started = datetime.datetime.now(datetime.timezone.utc)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=BENCH_DIR).stdout.strip()
    results: dict[str, Any] = {"sizes": {"small": {"count": small_n, "mb": small_n * 4096 / MB},
                                         "large": {"count": large_n, "mb": large_n * large_mb},
                                         "rss_big_mb": rss_big_mb, "rss_small_mb": 4}}
    for directory in scratch_dir():
        sets = []
        if only & {"hash", "upload"}:
            sets = [make_set(directory, "small", small_n, 4096),
                    make_set(directory, "large", large_n, large_mb * MB)]
            print(f"files made: {small_n} x 4 KB, {large_n} x {large_mb} MB", flush=True)
        if "hash" in only:
            results["hash"] = hashing(sets, args.rounds)
        if "upload" in only:
            results["upload"] = uploads(sets, args.rounds, args.concurrency, directory)
        if "rss" in only:
            big = make_set(directory, "rssbig", 1, rss_big_mb * MB)
            small = make_set(directory, "rsssmall", 1, 4 * MB)
            results["rss"] = peak_rss(directory, big, small, args.rounds)
        if "rerun" in only:
            results["rerun"] = rerun(directory, rerun_n, min(1000, max(1, rerun_n // 100)),
                                     args.rounds)
    print()
    print(f"{args.rounds} round(s), medians; commit {commit}; {started:%Y-%m-%d %H:%M} UTC")
    for row in table(results, args.concurrency):
        print(row)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    problems = [r["problems"] for runs in results.get("upload", {}).values()
                for client in ("runner", "bare") for r in runs[client]
                if r["problems"]]
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
