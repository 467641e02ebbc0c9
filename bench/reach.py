"""Does a run with default settings reach an undisclosed limit? (SPEC, "Behaviour under trouble";
issue 13, points 1 and 3.)

For each round trip (sandbox --latency-ms) and limit (sandbox --rps, headers on every answer,
the client not told), attach-runner runs N = seconds x R pairs with no setting but the URL and
the log; then the bare loop (bench/bare.py) runs the same manifest against a fresh sandbox with
the same round trip and no limit, at the in-flight count attach-runner reached (the sandbox's
`peak_in_flight`): what that many requests in flight can carry at that round trip, so a
`bare of limit` at or above 1 says the in-flight count was not what held attach-runner back.
(The bare loop has no pacer: against the limit itself it only measures the sandbox's burst.)
Each pair of runs is repeated --rounds times; medians are printed as a Markdown table for
bench/RESULTS.md. Every run ends with the sandbox's record checked (each pair attached exactly
once).

    python bench/reach.py                       # the sweep and the 50/s burst 5 case, ~12 min
    python bench/reach.py --rounds 1 --seconds 3 --only sweep

Columns: `bound` is N/R/0.95 + 3 round trips (the SPEC's), `of limit` is (N/R) / wall time of
the whole process (1.0 = exactly at the limit), `429` the share of requests answered 429.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the path above makes `bench` importable as a script
    BENCH_DIR,
    PYTHON,
    Measured,
    SandboxProcess,
    check,
    make_manifest,
    median,
    run_in,
    runner_argv,
    scratch_dir,
)

ROUND_TRIPS_MS = (5, 50, 300, 1000)
LIMITS = (50, 100)


def runner_cmd(manifest: Path, log: Path) -> list[str]:
    """Default settings: nothing but where to send and where to log."""
    for path in (log, log.with_name(log.name + ".lock")):
        path.unlink(missing_ok=True)
    return runner_argv("run", str(manifest), "--target", "assistant-files", "--log", str(log),
                       "--base-url", "{base_url}", "--no-progress", "--json")


def bare_cmd(manifest: Path, in_flight: int) -> list[str]:
    return [PYTHON, str(BENCH_DIR / "bare.py"), str(manifest), "--base-url", "{base_url}",
            "--concurrency", str(in_flight)]


def one(argv: list[str], n: int, sandbox_args: list[str]) -> Measured:
    with SandboxProcess(*sandbox_args) as sandbox:
        measured = run_in(sandbox, argv)
        check(sandbox, n, measured)
    if measured.code != 0 or measured.problems:
        raise SystemExit(f"run failed: {argv} exit {measured.code} {measured.problems} "
                         f"{measured.stderr[-500:]}")
    return measured


def share_429(m: Measured) -> float:
    by_status: dict[str, int] = m.record["by_status"]
    return by_status.get("429", 0) / max(1, sum(by_status.values()))


def elapsed_in_run(m: Measured) -> float:
    for line in reversed(m.stdout.strip().splitlines()):
        if line.startswith("{"):
            summary: dict[str, Any] = json.loads(line)
            return float(summary["elapsed_s"])
    return m.wall_s


def case(data: Path, rounds: int, n: int, rps: float, sandbox_args: list[str],
         rtt_s: float, *, yardstick: bool = True) -> dict[str, Any]:
    manifest = make_manifest(data, n)
    log = data / "reach.results.jsonl"
    ours: list[Measured] = []
    bare: list[Measured] = []
    for _ in range(rounds):
        m = one(runner_cmd(manifest, log), n, sandbox_args)
        ours.append(m)
        if yardstick:
            in_flight = max(1, int(m.record["peak_in_flight"]))
            bare.append(one(bare_cmd(manifest, in_flight), n,
                            ["--latency-ms", str(round(rtt_s * 1000))]))
    if not bare:
        bare = ours  # no yardstick: the columns repeat ours
    ideal = n / rps
    return {
        "n": n, "rps": rps, "rtt_ms": round(rtt_s * 1000),
        "bound_s": ideal / 0.95 + 3 * rtt_s,
        "wall_s": median([m.wall_s for m in ours]),
        "in_run_s": median([elapsed_in_run(m) for m in ours]),
        "of_limit": median([ideal / m.wall_s for m in ours]),
        "share_429": median([share_429(m) for m in ours]),
        "peak_in_flight": median([m.record["peak_in_flight"] for m in ours]),
        "bare_wall_s": median([m.wall_s for m in bare]),
        "bare_of_limit": median([ideal / m.wall_s for m in bare]),
        "bare_429": median([share_429(m) for m in bare]),
        "vs_bare": median([b.wall_s / m.wall_s for m, b in zip(ours, bare, strict=True)]),
    }


def row(r: dict[str, Any]) -> str:
    ok = r["wall_s"] <= r["bound_s"] and r["share_429"] <= 0.005
    return (f"| {r['rtt_ms']} ms | {r['rps']}/s | {r['n']:,} | {r['wall_s']:.2f} s "
            f"({r['in_run_s']:.2f}) | {r['bound_s']:.2f} s | {r['of_limit']:.3f} | "
            f"{r['share_429']:.2%} | {r['peak_in_flight']:.0f} | {r['bare_wall_s']:.2f} s | "
            f"{r['bare_of_limit']:.3f} | {r['bare_429']:.1%} | {r['vs_bare']:.3f} | "
            f"{'ok' if ok else 'MISS'} |")


HEADER = ("| round trip | limit R | N | attach-runner wall (in-run) | bound | of limit | 429 | "
          "peak in flight | bare wall | bare of limit | bare 429 | bare/ours time | verdict |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="N = seconds x R")
    parser.add_argument("--only", choices=("sweep", "burst"), default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for data in scratch_dir():
        if args.only in (None, "sweep"):
            print(HEADER, flush=True)
            for rtt_ms in ROUND_TRIPS_MS:
                for rps in LIMITS:
                    n = int(args.seconds * rps)
                    sandbox_args = ["--rps", str(rps), "--latency-ms", str(rtt_ms)]
                    r = case(data, args.rounds, n, rps, sandbox_args, rtt_ms / 1000)
                    rows.append(r)
                    print(row(r), flush=True)
        if args.only in (None, "burst"):
            # Point 3: 1,500 pairs at 50/s with a bucket of 5 (`sandbox --rps 50 --burst 5`).
            r = case(data, args.rounds, 1500, 50, ["--rps", "50", "--burst", "5"], 0.0,
                     yardstick=False)
            r["case"] = "burst 5"
            rows.append(r)
            print("\n50/s, burst 5, no added latency:\n" + HEADER + "\n" + row(r), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
