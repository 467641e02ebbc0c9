"""Vector stores: a manifest with attributes on every pair against the plain one (the same
pairs), in CSV, JSONL and grouped YAML: pairs/s of a fresh run against an unlimited sandbox,
peak RSS, and the rerun that has nothing to send.

    python bench/attributes_bench.py                    # 100,000 pairs, 3 rounds (~6 min)
    python bench/attributes_bench.py --pairs 20000 --rounds 1
    python bench/attributes_bench.py --batch-size 500   # server-side file batches

Each arm, each round: a fresh sandbox subprocess (`attach-runner sandbox --port 0
--processing-ms 0`, no limits, pinned to CPU 0), then `attach-runner run` (pinned to CPU 1,
under /usr/bin/time -v: wall, CPU, peak RSS) with a fresh log, `--concurrency 64`, `--rpm
auto`, `--store-rpm 1000000` (the client's own per-store pacing would otherwise bind: 300 a
minute a store) and the `--batch-size` given (0: one POST a file), then the same command again
against the same sandbox (the rerun: it must send no request). Arms rotate within a round;
the table gives medians and, for the attributes arms, the median of the per-round ratios
against the plain arm of the same format. Every run
ends with the sandbox's record checked: each pair in its store exactly once and, with
attributes, each store file's attributes equal to the manifest's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the path above makes `bench` importable
    SandboxProcess,
    median,
    run_in,
    runner_argv,
    scratch_dir,
    summary_of,
)
from runner.attributes import same_attributes  # noqa: E402
from runner.sandbox import confirm_attached_once  # noqa: E402

CONCURRENCY = "64"
FILES_PER_STORE = 1000
ARMS = ("csv", "csv+attributes", "jsonl", "jsonl+attributes", "yaml", "yaml+attributes")


def pair(i: int) -> tuple[str, str]:
    """The i-th pair: 1,000 files a store, each store's files together (as exports list them)."""
    return f"vs_bench{i // FILES_PER_STORE:05d}", f"file-{i:09d}"


def attributes(i: int) -> dict[str, Any]:
    """Four attributes of the kinds a user sets: strings, a number, a boolean."""
    return {"team": f"team-{i % 13}", "year": 2015 + i % 11, "public": i % 2 == 0,
            "title": f"Quarterly report {i}"}


def write_manifest(directory: Path, n: int, arm: str) -> Path:
    fmt, _, extra = arm.partition("+")
    with_attributes = extra == "attributes"
    path = directory / f"pairs-{n}{'-attributes' if with_attributes else ''}.{fmt}"
    with open(path, "w", encoding="utf-8") as out:
        if fmt == "csv":
            out.write("vector_store_id,file_id" + (",attributes" if with_attributes else "")
                      + "\n")
            for i in range(n):
                owner, file_id = pair(i)
                if with_attributes:
                    cell = json.dumps(attributes(i)).replace('"', '""')
                    out.write(f'{owner},{file_id},"{cell}"\n')
                else:
                    out.write(f"{owner},{file_id}\n")
        elif fmt == "yaml":  # grouped, as tools write it: a store's files under its ID
            out.write("vector_stores:\n")
            for i in range(n):
                owner, file_id = pair(i)
                if i % FILES_PER_STORE == 0:
                    out.write(f"  {owner}:\n")
                if with_attributes:
                    out.write(f"    - {{file_id: {file_id}, attributes: "
                              f"{json.dumps(attributes(i))}}}\n")
                else:
                    out.write(f"    - {file_id}\n")
        else:
            for i in range(n):
                owner, file_id = pair(i)
                row: dict[str, Any] = {"vector_store_id": owner, "file_id": file_id}
                if with_attributes:
                    row["attributes"] = attributes(i)
                out.write(json.dumps(row) + "\n")
    return path


def check(record: dict[str, Any], n: int, with_attributes: bool) -> list[str]:
    """Each pair in its store exactly once; with attributes, each holding the manifest's."""
    problems = confirm_attached_once(record, map(pair, range(n)))[:5]
    if record["attached_total"] != n:
        problems.append(f"attached_total {record['attached_total']}, expected {n}")
    if with_attributes:
        stores = record["vector_store_files"]
        wrong = sum(1 for i in range(n)
                    if not same_attributes(stores[pair(i)[0]][pair(i)[1]]["attributes"],
                                           attributes(i)))
        if wrong:
            problems.append(f"{wrong} files hold other attributes than the manifest's")
    return problems


def one_arm(manifest: Path, log: Path, n: int, with_attributes: bool,
            batch_size: int) -> dict[str, Any]:
    """A fresh run and its rerun against one fresh sandbox."""
    for path in (log, log.with_name(log.name + ".lock")):
        path.unlink(missing_ok=True)
    argv = runner_argv("run", str(manifest), "--log", str(log), "--base-url", "{base_url}",
                       "--concurrency", CONCURRENCY, "--store-rpm", "1000000", "--no-progress",
                       "--json", *(["--batch-size", str(batch_size)] if batch_size else []))
    with SandboxProcess("--processing-ms", "0") as sandbox:
        fresh = run_in(sandbox, argv)
        problems = check(sandbox.record(), n, with_attributes)
        rerun = run_in(sandbox, argv)
        after = sandbox.record()
    first, again = summary_of(fresh), summary_of(rerun)
    if fresh.code != 0 or rerun.code != 0:
        problems.append(f"exit {fresh.code} / {rerun.code}: {fresh.stderr[-300:]}"
                        f"{rerun.stderr[-300:]}")
    if again.get("requests") != 0:
        problems.append(f"the rerun sent {again.get('requests')} requests")
    if after["attached_total"] != n:
        problems.append("the rerun attached something")
    return {"wall_s": fresh.wall_s, "in_run_s": first.get("elapsed_s", fresh.wall_s),
            "cpu_s": fresh.cpu_s, "rss_mib": fresh.max_rss_mib, "requests": first.get("requests"),
            "rerun_wall_s": rerun.wall_s, "rerun_rss_mib": rerun.max_rss_mib,
            "log_bytes": log.stat().st_size, "problems": problems,
            "command": shlex.join(a.replace("{base_url}", "http://127.0.0.1:PORT/v1")
                                  for a in argv)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=0,
                        help="passed to the runs (0: one POST a file)")
    parser.add_argument("--json", metavar="FILE", help="write every run here")
    args = parser.parse_args()
    n, rounds = args.pairs, args.rounds
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    started = datetime.datetime.now(datetime.timezone.utc)
    for directory in scratch_dir():
        manifests = {arm: write_manifest(directory, n, arm) for arm in ARMS}
        for round_no in range(rounds):
            order = ARMS[round_no % len(ARMS):] + ARMS[:round_no % len(ARMS)]
            for arm in order:
                result = one_arm(manifests[arm], directory / f"{arm}.results.jsonl", n,
                                 arm.endswith("+attributes"), args.batch_size)
                result["manifest_bytes"] = manifests[arm].stat().st_size
                runs[arm].append(result)
                print(f"  round {round_no + 1} {arm:17} {n / result['wall_s']:7,.0f} pairs/s "
                      f"(in-run {n / result['in_run_s']:,.0f}) rss {result['rss_mib']:.0f} MiB; "
                      f"rerun {result['rerun_wall_s']:.2f} s rss "
                      f"{result['rerun_rss_mib']:.0f} MiB"
                      + (f"; PROBLEMS {result['problems']}" if result["problems"] else ""),
                      flush=True)
    print()
    print(f"{n:,} pairs over {n // FILES_PER_STORE} vector stores, {rounds} round(s), medians, "
          f"--batch-size {args.batch_size}; {platform.machine()}, {started:%Y-%m-%d %H:%M} UTC")
    print("| manifest | pairs/s (in-run) | vs plain | client CPU a pair | vs plain | peak RSS "
          "| vs plain | rerun | vs plain | rerun RSS | manifest size | log size |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for arm in ARMS:
        got = runs[arm]
        plain = runs[arm.partition("+")[0]]

        def ratio(key: str, *, inverse: bool = False, got: Any = got, plain: Any = plain) -> str:
            if got is plain:
                return "1"
            values = [(p[key] / g[key]) if inverse else (g[key] / p[key])
                      for g, p in zip(got, plain, strict=True)]
            return f"{median(values):.2f}"

        print(f"| {arm} | {median([n / r['wall_s'] for r in got]):,.0f} "
              f"({median([n / r['in_run_s'] for r in got]):,.0f}) "
              f"| {ratio('wall_s', inverse=True)} "
              f"| {median([r['cpu_s'] for r in got]) / n * 1e6:.0f} us | {ratio('cpu_s')} "
              f"| {median([r['rss_mib'] for r in got]):.0f} MiB | {ratio('rss_mib')} "
              f"| {median([r['rerun_wall_s'] for r in got]):.2f} s | {ratio('rerun_wall_s')} "
              f"| {median([r['rerun_rss_mib'] for r in got]):.0f} MiB "
              f"| {median([r['manifest_bytes'] for r in got]) / 2**20:.1f} MiB "
              f"| {median([r['log_bytes'] for r in got]) / 2**20:.1f} MiB |")
    bad = {arm: [r["problems"] for r in got if r["problems"]] for arm, got in runs.items()}
    bad = {arm: p for arm, p in bad.items() if p}
    print("record check:", "each pair in its store exactly once, attributes as the manifest's, "
          "every rerun sent nothing" if not bad else f"PROBLEMS {bad}")
    print("command:", runs[ARMS[1]][0]["command"])
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
