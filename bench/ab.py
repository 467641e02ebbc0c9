"""Two trees of attach-runner against each other on the same run, alternating, in one
invocation: wall, client CPU, sandbox CPU and peak RSS of each, and the per-round ratio B/A.

    git worktree add /tmp/before <commit>
    python bench/ab.py /tmp/before . MANIFEST [run flags...]     # e.g. --batch-size 500

Each round runs both arms (in alternating order), each against a fresh sandbox of this tree
(`--processing-ms 0`, no limits, pinned to CPU 0) with a fresh log, the client pinned to CPU 1
under /usr/bin/time, `--concurrency 64 --store-rpm 1000000` and the flags given; with
`--rerun`, the same command again after it (the converged rerun, which sends nothing), timed
too. Each client runs as `python -m runner` with its tree first on PYTHONPATH, from the
scratch directory: from a tree's own folder, `-m` would import that folder's runner whatever
PYTHONPATH says (a trap this script once fell into, comparing a tree with itself).
Manifests: bench/attributes_bench.py writes the ones RESULTS.md names.
"""

from __future__ import annotations

import argparse
import compileall
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the path above makes `bench` importable
    CLIENT_CPU,
    PYTHON,
    SandboxProcess,
    client_env,
    median,
    pinned,
    scratch_dir,
)


def timed(argv: list[str], tree: Path, cwd: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of `argv` run with `tree` first on PYTHONPATH."""
    env = dict(client_env(), PYTHONPATH=str(tree.resolve()))
    done = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: exit {done.returncode}: {done.stderr[-500:]}")
    wall, user, system, rss = done.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(rss) / 1024


def one_run(tree: Path, manifest: Path, log: Path, flags: list[str],
            rerun: bool) -> tuple[float, ...]:
    """(wall s, client CPU s, sandbox CPU s, peak RSS MiB) of one fresh run from `tree`, then
    (wall s, client CPU s) of its rerun when `rerun` (else zeros)."""
    for path in (log, log.with_name(log.name + ".lock")):
        path.unlink(missing_ok=True)
    with SandboxProcess("--processing-ms", "0") as sandbox:
        before = sandbox.cpu_s()
        argv = pinned(CLIENT_CPU, [PYTHON, "-m", "runner", "run", str(manifest), "--log",
                                   str(log), "--base-url", sandbox.base_url, "--concurrency",
                                   "64", "--store-rpm", "1000000", "--no-progress", "--json",
                                   *flags])
        wall, cpu, rss = timed(argv, tree, log.parent)
        sandbox_cpu = sandbox.cpu_s() - before
        again = timed(argv, tree, log.parent)[:2] if rerun else (0.0, 0.0)
    return wall, cpu, sandbox_cpu, rss, *again


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="tree A (the yardstick)")
    parser.add_argument("b", type=Path, help="tree B")
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rerun", action="store_true", help="time the rerun too")
    args, flags = parser.parse_known_args()
    runs: dict[str, list[tuple[float, ...]]] = {"A": [], "B": []}
    trees = {"A": args.a, "B": args.b}
    for tree in trees.values():  # as pip would (bench.common.compiled_once says why)
        compileall.compile_dir(str(tree / "runner"), quiet=1)
    for directory in scratch_dir():
        for round_no in range(args.rounds):
            for arm in ("A", "B") if round_no % 2 == 0 else ("B", "A"):
                runs[arm].append(one_run(trees[arm], args.manifest.resolve(),
                                         directory / "ab.results.jsonl", flags, args.rerun))
                print(f"  round {round_no + 1} {arm}: wall %.2f s, client CPU %.2f s, sandbox "
                      "CPU %.2f s, peak RSS %.0f MiB; rerun wall %.2f s, CPU %.2f s"
                      % runs[arm][-1], flush=True)
    for arm in ("A", "B"):
        columns = list(zip(*runs[arm], strict=True))
        print(f"{arm} {trees[arm]}: median wall %.2f s, client CPU %.2f s, sandbox CPU %.2f s, "
              "peak RSS %.0f MiB; rerun wall %.2f s, CPU %.2f s"
              % tuple(median(list(c)) for c in columns))
    print("B/A wall by round:", " / ".join(f"{b[0] / a[0]:.2f}"
                                          for a, b in zip(runs["A"], runs["B"], strict=True)))
    print("B/A client CPU by round:", " / ".join(
        f"{b[1] / a[1]:.2f}" for a, b in zip(runs["A"], runs["B"], strict=True)))
    if args.rerun:
        print("B/A rerun wall by round:", " / ".join(
            f"{b[4] / a[4]:.2f}" for a, b in zip(runs["A"], runs["B"], strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
