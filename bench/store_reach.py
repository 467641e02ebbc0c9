"""Per file on vector stores with default settings: how close to the sum of the stores' limits?
(SPEC, "Behaviour under trouble"; issue 13, points 1 and 2.)

Each case: a fresh sandbox (pinned to CPU 0) with a per-store limit, and one `attach-runner run`
(pinned to CPU 1) with no setting but the target, URL and log, over a manifest that lists each
store's files together (as grouped YAML and most exports do). The rate is files / wall time
of the whole process, against stores x the sandbox's store limit; the sandbox's record gives
the 429s (global and per store) and checks each pair attached exactly once.

    python bench/store_reach.py                 # 3 rounds of each case, ~7 min
    python bench/store_reach.py --rounds 1

Cases:
- `10x300, 500 ms, rps 100`: 10 stores at 300/min, 500 ms round trips, a global limit of 100/s
  whose headers come on every answer (as the real API's do).
- `10x300, 500 ms, no global headers`: the same with no global limit or headers, so the run's
  own rate stays in slow start (doubling once a round trip) for its first seconds.
- `6x240 under --store-rpm 300`: 6 stores whose limit (240/min) is below the client's default
  `--store-rpm` (300): each store answers 429 with its own headers until the run learns it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the path above makes `bench` importable as a script
    Measured,
    SandboxProcess,
    median,
    run_in,
    runner_argv,
    scratch_dir,
)

CASES: list[tuple[str, int, int, int, list[str]]] = [
    # name, stores, files per store, store limit per minute, sandbox arguments
    ("10x300, 500 ms, rps 100", 10, 150, 300, ["--latency-ms", "500", "--rps", "100"]),
    ("10x300, 500 ms, no global headers", 10, 150, 300, ["--latency-ms", "500"]),
    ("6x240 under --store-rpm 300", 6, 200, 240, ["--latency-ms", "50", "--rps", "100"]),
]


def grouped_manifest(directory: Path, stores: int, per_store: int) -> Path:
    path = directory / f"stores-{stores}x{per_store}.csv"
    with open(path, "w", encoding="utf-8") as out:
        out.write("vector_store_id,file_id\n")
        for s in range(stores):
            out.writelines(f"vs_{s:04d},file-{s:04d}x{i:06d}\n" for i in range(per_store))
    return path


def one(manifest: Path, log: Path, stores: int, per_store: int, store_rpm: int,
        sandbox_args: list[str]) -> tuple[Measured, dict[str, Any]]:
    for path in (log, log.with_name(log.name + ".lock")):
        path.unlink(missing_ok=True)
    argv = runner_argv("run", str(manifest), "--target", "vector-store-files", "--log", str(log),
                       "--base-url", "{base_url}", "--no-progress", "--json")
    with SandboxProcess("--store-rpm", str(store_rpm), *sandbox_args) as sandbox:
        measured = run_in(sandbox, argv)
        record = sandbox.record()
    n = stores * per_store
    once = sum(1 for entry in record["pairs"].values() if entry["attached"] == 1)
    if measured.code != 0 or once != n or record["attached_total"] != n:
        raise SystemExit(f"run failed: exit {measured.code}, {once} of {n} attached once; "
                         f"{measured.stderr[-500:]}")
    summary: dict[str, Any] = json.loads(measured.stdout.strip().splitlines()[-1])
    return measured, {"record": record, "summary": summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("| case | files | allowed (sum of stores) | files/s, whole process (in-run) | "
          "of allowed | global 429s | store 429s (most on one store) | run's learned rpm |\n"
          "|---|---|---|---|---|---|---|---|", flush=True)
    for data in scratch_dir():
        for name, stores, per_store, store_rpm, sandbox_args in CASES:
            manifest = grouped_manifest(data, stores, per_store)
            n = stores * per_store
            allowed = stores * store_rpm / 60
            runs = [one(manifest, data / "store.results.jsonl", stores, per_store, store_rpm,
                        sandbox_args) for _ in range(args.rounds)]
            wall = median([n / m.wall_s for m, _ in runs])
            in_run = median([n / extra["summary"]["elapsed_s"] for _, extra in runs])
            global_429 = median([extra["record"]["rate_limited"]["requests"] for _, extra in runs])
            by_store = [extra["record"]["rate_limited_by_store"] for _, extra in runs]
            store_429 = median([sum(b.values()) for b in by_store])
            most = median([max(b.values(), default=0) for b in by_store])
            learned = [extra["summary"]["rpm_learned"] for _, extra in runs]
            learned_text = ("-" if any(v is None for v in learned)
                            else f"{median([float(v) for v in learned]):,.0f}/min")
            print(f"| {name} | {n:,} | {allowed:.1f}/s | {wall:.1f} ({in_run:.1f}) | "
                  f"{wall / allowed:.3f} | {global_429:.0f} | {store_429:.0f} ({most:.0f}) | "
                  f"{learned_text} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
