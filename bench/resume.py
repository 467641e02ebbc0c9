"""Benchmark 5 on its own: a rerun over a finished log, against bench/floor.py, for the log as
attach-runner writes it (compact) and the same log rewritten by `json.dumps` with its default
separators (", " and ": ", the same keys in the same order: what a user's script makes).

    python bench/resume.py --pairs 1000000 --rounds 5

The log is made here, line for line what a 64-wide run writes (run-start; each pair's "sent",
then its "done" up to 64 lines later; run-end), so no sandbox run is needed to build it; the
rerun sends nothing, so its --base-url points at a closed port. Each round runs, in rotating
order, attach-runner over each log form and floor.py over each; ratios are per round (ours /
the floor's on the same log form), then the median. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the path above makes `bench` importable
    BENCH_DIR,
    PYTHON,
    Measured,
    make_manifest,
    median,
    pair,
    run_timed,
    runner_argv,
)
from bench.run_all import compile_runner, machine  # noqa: E402

WIDTH = 64  # pairs in flight: a "done" trails its "sent" by up to this many lines
TS = "2026-11-25T12:00:00.000Z"
RUN = "0123456789ab"  # a run id: uuid4().hex[:12]


def make_log(directory: Path, n: int) -> Path:
    """The log of one finished run over pairs 0..n-1, every pair attached (made once)."""
    path = directory / f"resume-{n}.compact.jsonl"
    if path.exists():
        return path
    head = f'{{"event":"%s","ts":"{TS}","run":"{RUN}",'
    sent, done = head % "sent", head % "done"
    tail = ',"outcome":"attached","status":200,"attempts":1,"error":null,"retryable":false,' \
           '"uncertain":false}\n'
    partial = path.with_suffix(".part")
    with open(partial, "w", encoding="ascii") as out:
        out.write(f'{head % "run-start"}"manifest":"pairs-{n}.csv",'
                  f'"target":"assistant-files","items":{n}}}\n')
        flight: deque[str] = deque()
        lines: list[str] = []
        for i in range(n):
            owner, file_id = pair(i)
            members = f'"op":"attach","assistant_id":"{owner}","file_id":"{file_id}"'
            lines.append(f"{sent}{members}}}\n")
            flight.append(members)
            if len(flight) >= WIDTH:
                lines.append(f"{done}{flight.popleft()}{tail}")
            if len(lines) >= 65536:
                out.writelines(lines)
                lines.clear()
        lines.extend(f"{done}{members}{tail}" for members in flight)
        counts = {"attached": n, "already_attached": 0, "failed": 0}
        lines.append(f'{head % "run-end"}"counts":{json.dumps(counts, separators=(",", ":"))},'
                     f'"interrupted":false,"exit":0}}\n')
        out.writelines(lines)
    partial.rename(path)
    return path


def spaced(compact: Path) -> Path:
    """The same log, each line rewritten by json.dumps with its default separators."""
    path = compact.with_name(compact.name.replace(".compact.", ".spaced."))
    if path.exists():
        return path
    partial = path.with_suffix(".part")
    with open(compact, "rb") as src, open(partial, "w", encoding="ascii") as out:
        out.writelines(json.dumps(json.loads(line)) + "\n" for line in src)
    partial.rename(path)
    return path


def fresh_copy(log: Path) -> Path:
    """A copy of the log to rerun over (a rerun appends its run-start and run-end)."""
    copy = log.with_name(log.name.replace(".jsonl", ".rerun.jsonl"))
    copy.write_bytes(log.read_bytes())
    copy.with_name(copy.name + ".lock").unlink(missing_ok=True)
    return copy


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--forms", default="compact,spaced")
    parser.add_argument("--data", default=str(BENCH_DIR / ".data"))
    parser.add_argument("--before", default=None, help=(
        "a directory holding an older `runner` package (git archive COMMIT runner | tar -x "
        "-C DIR): its reruns are measured too, in the same rounds"))
    args = parser.parse_args(argv)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    compile_runner()
    manifest = make_manifest(data, args.pairs)
    logs = {"compact": make_log(data, args.pairs)}
    logs["spaced"] = spaced(logs["compact"])
    forms = [f for f in args.forms.split(",") if f]
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"{machine()}\n{started:%Y-%m-%d %H:%M} UTC, {args.pairs:,} pairs, "
          f"rounds {args.rounds}", flush=True)
    whos = ["attach-runner", "floor"] + (["before"] if args.before else [])
    clients = [(form, who) for form in forms for who in whos]
    runs: dict[tuple[str, str], list[Measured]] = {c: [] for c in clients}
    for round_no in range(args.rounds):
        turn = round_no % len(clients)
        for form, who in clients[turn:] + clients[:turn]:
            log = logs[form]
            rerun = ["run", str(manifest.resolve()), "--log", "{log}", "--base-url",
                     "http://127.0.0.1:9/v1", "--no-progress", "--json"]
            if who != "floor":
                rerun[3] = str(fresh_copy(log).resolve())
            if who == "attach-runner":
                measured = run_timed(runner_argv(*rerun))
            elif who == "before":  # the older package first on the path, from elsewhere
                measured = run_timed(["env", f"PYTHONPATH={Path(args.before).resolve()}",
                                      PYTHON, "-m", "runner", *rerun], cwd=Path(args.before))
            else:
                measured = run_timed([PYTHON, str(BENCH_DIR / "floor.py"), str(manifest),
                                      str(log)])
            runs[(form, who)].append(measured)
            print(f"  round {round_no + 1} {form} {who}: {measured.wall_s:.2f}s "
                  f"rss {measured.max_rss_mib:.0f} MiB exit {measured.code}", flush=True)
            if measured.code != 0:
                print(measured.stderr[-1000:], file=sys.stderr)
    print("\n| log form | attach-runner | peak RSS | floor.py | floor RSS | ratio (median of "
          "per-round) |\n|---|---|---|---|---|---|")
    if args.before:
        forms = [*forms, *(f"{form} (before)" for form in forms)]
        for form in list(runs):
            if form[1] == "before":
                runs[(f"{form[0]} (before)", "attach-runner")] = runs[form]
                runs[(f"{form[0]} (before)", "floor")] = runs[(form[0], "floor")]
    result: dict[str, dict[str, float]] = {}
    for form in forms:
        ours, floor = runs[(form, "attach-runner")], runs[(form, "floor")]
        ratio = median([o.wall_s / f.wall_s for o, f in zip(ours, floor, strict=True)])
        wall, base = median([m.wall_s for m in ours]), median([m.wall_s for m in floor])
        rss = max(m.max_rss_mib for m in ours)
        print(f"| {form} | {wall:.2f} s | {rss:.0f} MiB | {base:.2f} s | "
              f"{max(m.max_rss_mib for m in floor):.0f} MiB | {ratio:.2f} |")
        result[form] = {"ours_s": wall, "floor_s": base, "ratio": ratio, "rss_mib": rss,
                        "exit": max(m.code for m in ours)}
    print(json.dumps({"started": started.isoformat(), "pairs": args.pairs,
                      "rounds": args.rounds, **result}))
    return 0 if all(r["exit"] == 0 for r in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
