"""Every benchmark of attach-runner against its yardsticks, in one invocation, as ratios.

    python bench/run_all.py                      # the full suite (about 40 minutes)
    python bench/run_all.py --quick              # everything scaled down, one round (~2 min)
    python bench/run_all.py --scale 0.1 --only overhead,latency --rounds 3

Yardsticks: bench/bare.py (the leanest correct aiohttp loop), bench/sdk.py (the official
`openai` SDK; `pip install -r bench/requirements.txt`, skipped with a note when missing) and
bench/floor.py (the least a rerun must do). The sandbox runs on CPU 0, each client on CPU 1;
clients alternate within each round, and the table shows medians. Every run against the
sandbox ends with its record checked: each pair attached exactly once. A results JSON with
every run is written with --json.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the path above makes `bench` importable
    BENCH_DIR,
    PYTHON,
    Measured,
    SandboxProcess,
    against_sandbox,
    check,
    make_manifest,
    median,
    run_in,
    run_timed,
    runner_argv,
)

BENCHMARKS = ("overhead", "latency", "limit", "memory", "resume", "validate")
CONCURRENCY = "64"
MIB = 1024 * 1024


@dataclass
class Row:
    """One line of the table."""

    number: str
    name: str
    measure: str
    ours: str
    yardstick: str
    ratio: str
    target: str
    verdict: str  # "ok", "MISS" or "-"


@dataclass
class Suite:
    scale: float
    rounds: int
    data: Path
    sdk: bool
    rows: list[Row] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def n(self, full: int, least: int = 200) -> int:
        return max(least, int(full * self.scale))

    def keep(self, bench: str, client: str, measured: Measured, **extra: Any) -> None:
        entry = {"bench": bench, "client": client, **asdict(measured), **extra}
        entry.pop("stdout", None)
        entry["stderr"] = measured.stderr[-2000:]
        self.runs.append(entry)
        if measured.problems:
            print(f"  ! {bench}/{client}: sandbox record: {measured.problems[:3]}", flush=True)
        if measured.code not in (0,) and client != "sdk":
            print(f"  ! {bench}/{client}: exit {measured.code}: {measured.stderr[-500:]}",
                  flush=True)

    def row(self, *cells: str) -> None:
        row = Row(*cells)
        self.rows.append(row)
        print(f"  = {row.name} / {row.measure}: {row.ours} vs {row.yardstick} -> {row.ratio} "
              f"(target {row.target}) {row.verdict}", flush=True)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def fresh_log(suite: Suite, name: str) -> Path:
    log = suite.data / f"{name}.results.jsonl"
    for path in (log, log.with_name(log.name + ".lock")):
        if path.exists():
            path.unlink()
    return log


def runner_run(manifest: Path, log: Path, *extra: str) -> list[str]:
    return runner_argv("run", str(manifest), "--log", str(log), "--base-url", "{base_url}",
                       "--concurrency", CONCURRENCY, "--no-progress", "--json", *extra)


def bare_argv(manifest: Path) -> list[str]:
    return [PYTHON, str(BENCH_DIR / "bare.py"), str(manifest), "--base-url", "{base_url}",
            "--concurrency", CONCURRENCY]


def sdk_argv(manifest: Path, *extra: str) -> list[str]:
    return [PYTHON, str(BENCH_DIR / "sdk.py"), str(manifest), "--base-url", "{base_url}",
            "--concurrency", CONCURRENCY, *extra]


def summary_of(measured: Measured) -> dict[str, Any]:
    """The last JSON object a client printed (attach-runner --json, bare.py, sdk.py)."""
    for line in reversed(measured.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                parsed: dict[str, Any] = json.loads(line)
                return parsed
            except ValueError:
                break
    return {}


# ---------------------------------------------------------------- 1, 2: overhead, latency


def alternate(suite: Suite, bench: str, n: int, clients: dict[str, list[str]],
              sandbox_args: tuple[str, ...] = ()) -> dict[str, list[Measured]]:
    """`rounds` rounds; in each, every client once against a fresh sandbox, the order rotating."""
    names = list(clients)
    results: dict[str, list[Measured]] = {name: [] for name in names}
    for round_no in range(suite.rounds):
        order = names[round_no % len(names):] + names[:round_no % len(names)]
        for name in order:
            argv = clients[name]
            if "{log}" in argv:
                log = fresh_log(suite, f"{bench}-{name}")
                argv = [str(log) if a == "{log}" else a for a in argv]
            measured = against_sandbox(argv, n, *sandbox_args)
            print(f"  {bench} round {round_no + 1} {name}: {n / measured.wall_s:,.0f} pairs/s "
                  f"wall {measured.wall_s:.2f}s cpu {measured.cpu_s:.2f}s sandbox cpu "
                  f"{measured.server_cpu_s:.2f}s rss {measured.max_rss_mib:.0f} MiB "
                  f"exit {measured.code}", flush=True)
            suite.keep(bench, name, measured, round=round_no, pairs=n)
            results[name].append(measured)
    return results


def paired_ratio(ours: list[Measured], base: list[Measured], n: int) -> float:
    """Median over rounds of (our pairs/s) / (the yardstick's pairs/s) in the same round."""
    return median([b.wall_s / o.wall_s for o, b in zip(ours, base, strict=True)])


def rate(runs: list[Measured], n: int) -> float:
    return median([n / m.wall_s for m in runs])


def bench_overhead(suite: Suite) -> None:
    n = suite.n(50_000)
    manifest = make_manifest(suite.data, n)
    clients = {
        "bare": bare_argv(manifest),
        "attach-runner": [*runner_run(manifest, Path("{log}"))],
        "attach-runner --rpm 1000000": [*runner_run(manifest, Path("{log}"), "--rpm", "1000000")],
        # Issue 13: the default --concurrency (256 workers, most of them idle here) must not
        # cost what the 64 of the rows above do not.
        "attach-runner, default concurrency": runner_argv(
            "run", str(manifest), "--log", "{log}", "--base-url", "{base_url}", "--no-progress",
            "--json"),
    }
    if suite.sdk:
        clients["sdk"] = sdk_argv(manifest)
    print(f"[1] overhead: {n:,} pairs, unlimited sandbox, concurrency {CONCURRENCY}", flush=True)
    results = alternate(suite, "overhead", n, clients)
    bare = results["bare"]
    sandbox_busy = median([m.server_cpu_s / m.wall_s for m in bare])
    for name in ("attach-runner", "attach-runner --rpm 1000000",
                 "attach-runner, default concurrency"):
        runs = results[name]
        ratio = paired_ratio(runs, bare, n)
        suite.row("1", f"overhead, {name}", "pairs/s, whole process", f"{rate(runs, n):,.0f}",
                  f"bare {rate(bare, n):,.0f}", f"{ratio:.2f}", ">= 0.85",
                  verdict(ratio >= 0.85 and all(not m.problems for m in runs)))
        cpu = median([b.cpu_s / o.cpu_s for o, b in zip(runs, bare, strict=True)])
        suite.row("1", f"overhead, {name}", "client CPU per pair (bare / ours)",
                  f"{median([m.cpu_s for m in runs]) / n * 1e6:.0f} us",
                  f"bare {median([m.cpu_s for m in bare]) / n * 1e6:.0f} us", f"{cpu:.2f}",
                  "-", "-")
    suite.row("1", "overhead, sandbox", "sandbox CPU busy during the bare run",
              f"{sandbox_busy:.0%}", "-", "-", "< 100% (else it is the bottleneck)", "-")
    if "sdk" in results:
        sdk = results["sdk"]
        suite.row("1", "overhead, SDK (for comparison)", "pairs/s, whole process",
                  f"{rate(sdk, n):,.0f}", f"bare {rate(bare, n):,.0f}",
                  f"{paired_ratio(sdk, bare, n):.2f}", "-", "-")


def bench_latency(suite: Suite) -> None:
    n = suite.n(50_000)
    manifest = make_manifest(suite.data, n)
    clients = {
        "attach-runner": runner_run(manifest, Path("{log}")),
        "bare": bare_argv(manifest),
    }
    ideal = int(CONCURRENCY) / 0.05
    print(f"[2] latency: {n:,} pairs, 50 ms a request, concurrency {CONCURRENCY} "
          f"(ideal {ideal:,.0f}/s)", flush=True)
    results = alternate(suite, "latency", n, clients, ("--latency-ms", "50"))
    for name, runs in results.items():
        got = rate(runs, n)
        in_run = median([n / summary_of(m).get("elapsed_s", m.wall_s) for m in runs])
        suite.row("2", f"latency-bound, {name}", "pairs/s, whole process (in-run)",
                  f"{got:,.0f} ({in_run:,.0f})", f"ideal {ideal:,.0f}", f"{got / ideal:.3f}",
                  ">= 0.95" if name == "attach-runner" else "-",
                  verdict(got / ideal >= 0.95) if name == "attach-runner" else "-")


# ---------------------------------------------------------------- 3: at the limit


def bench_limit(suite: Suite) -> None:
    for rps in (50, 500):
        n = suite.n(rps * 40, least=rps * 4)
        manifest = make_manifest(suite.data, n)
        clients = {"attach-runner": runner_run(manifest, Path("{log}"))}
        if suite.sdk:
            clients["sdk"] = sdk_argv(manifest)
        print(f"[3] at the limit: {n:,} pairs, sandbox --rps {rps} (not told to the client)",
              flush=True)
        results = alternate(suite, f"limit-{rps}", n, clients, ("--rps", str(rps)))
        bound = n / rps
        for name, runs in results.items():
            wall = median([m.wall_s for m in runs])
            limited = median([m.record["rate_limited"]["requests"] / max(1, m.record["requests"])
                              for m in runs])
            if name == "attach-runner":
                in_run = median([summary_of(m).get("elapsed_s", m.wall_s) for m in runs])
                suite.row("3", f"limit R={rps}, {name}", "seconds for N (in-run); 429 share",
                          f"{wall:.1f} s ({in_run:.1f}); {limited:.1%}",
                          f"N/R = {bound:.1f} s", f"{wall / bound:.3f}", "<= 1.05; 429 <= 2%",
                          verdict(wall / bound <= 1.05 and limited <= 0.02
                                  and all(not m.problems for m in runs)))
            else:
                failed = median([summary_of(m).get("failed", 0) for m in runs])
                suite.row("3", f"limit R={rps}, SDK", "seconds; 429 share; failed pairs",
                          f"{wall:.1f} s; {limited:.1%}; {failed:,.0f} failed",
                          f"N/R = {bound:.1f} s", f"{wall / bound:.3f}", "-", "-")


# ---------------------------------------------------------------- 4, 5: memory, resume


def bench_memory_and_resume(suite: Suite, memory: bool, resume: bool) -> None:
    sizes = [suite.n(10_000), suite.n(100_000), suite.n(1_000_000)]
    peaks: dict[tuple[str, int], float] = {}
    for fmt in ("csv", "jsonl"):
        for n in sizes:
            big = n == sizes[-1]
            if not memory and not (big and fmt == "csv"):
                continue
            manifest = make_manifest(suite.data, n, fmt)
            log = fresh_log(suite, f"memory-{fmt}-{n}")
            print(f"[4] memory: {n:,} pairs ({fmt})", flush=True)
            with SandboxProcess() as sandbox:
                measured = run_in(sandbox, runner_run(manifest, log))
                check(sandbox, n, measured)
                suite.keep("memory", f"attach-runner {fmt}", measured, pairs=n)
                peaks[(fmt, n)] = measured.max_rss_mib
                print(f"  {n:,} {fmt}: peak RSS {measured.max_rss_mib:.1f} MiB, "
                      f"{n / measured.wall_s:,.0f} pairs/s, exit {measured.code}", flush=True)
                if big and fmt == "csv" and resume:
                    bench_resume(suite, sandbox, manifest, log, n)
    if not memory:
        return
    for fmt in ("csv", "jsonl"):
        small, mid, large = (peaks[(fmt, n)] for n in sizes)
        per_pair = (large - mid) * MIB / (sizes[2] - sizes[1])
        suite.row("4", f"memory, {fmt}", f"peak RSS at {sizes[0]:,} / {sizes[1]:,} / "
                  f"{sizes[2]:,} pairs", f"{small:.0f} / {mid:.0f} / {large:.0f} MiB",
                  f"growth {per_pair:.0f} B/pair", "-", "<= 150 MiB",
                  verdict(large <= 150))


def bench_resume(suite: Suite, sandbox: SandboxProcess, manifest: Path, log: Path,
                 n: int) -> None:
    """Rerun over a log that says every pair is done, against the same sandbox: nothing sent."""
    print(f"[5] resume: {n:,} pairs, every one done in the log", flush=True)
    ours: list[Measured] = []
    floor: list[Measured] = []
    requests_before = sandbox.record()["requests"]
    for round_no in range(suite.rounds):
        pair = [("attach-runner", runner_run(manifest, log)),
                ("floor", [PYTHON, str(BENCH_DIR / "floor.py"), str(manifest), str(log)])]
        for name, argv in pair if round_no % 2 == 0 else pair[::-1]:
            measured = run_in(sandbox, argv)
            (ours if name == "attach-runner" else floor).append(measured)
            suite.keep("resume", name, measured, round=round_no, pairs=n)
            print(f"  resume round {round_no + 1} {name}: {measured.wall_s:.2f}s "
                  f"rss {measured.max_rss_mib:.0f} MiB exit {measured.code}", flush=True)
    sent = sandbox.record()["requests"] - requests_before
    problems = check(sandbox, n)
    wall, base = median([m.wall_s for m in ours]), median([m.wall_s for m in floor])
    rss = max(m.max_rss_mib for m in ours)
    ok = (sent == 0 and all(m.code == 0 for m in ours) and not problems and wall <= base
          and rss <= 150)
    suite.row("5", "resume, all done", "seconds; peak RSS; requests sent; exit",
              f"{wall:.2f} s; {rss:.0f} MiB; {sent} sent; exit "
              f"{max(m.code for m in ours)}", f"floor {base:.2f} s", f"{wall / base:.2f}",
              "<= 1.0 (aim 0.5); <= 150 MiB; 0 sent; exit 0", verdict(ok))


# ---------------------------------------------------------------- 6: validate


def bench_validate(suite: Suite) -> None:
    n = suite.n(1_000_000)
    manifest = make_manifest(suite.data, n)
    print(f"[6] validate: {n:,} pairs (csv)", flush=True)
    runs = []
    for round_no in range(suite.rounds):
        measured = run_timed(runner_argv("validate", str(manifest)))
        suite.keep("validate", "attach-runner", measured, round=round_no, pairs=n)
        print(f"  validate round {round_no + 1}: {measured.wall_s:.2f}s "
              f"rss {measured.max_rss_mib:.0f} MiB exit {measured.code}", flush=True)
        runs.append(measured)
    wall = median([m.wall_s for m in runs])
    suite.row("6", "validate", "seconds, whole process; peak RSS",
              f"{wall:.2f} s; {max(m.max_rss_mib for m in runs):.0f} MiB", "-",
              f"{wall / 5:.2f} of 5 s", "<= 5 s", verdict(wall <= 5 and runs[0].code == 0))


# ---------------------------------------------------------------- the table


def table(rows: list[Row]) -> str:
    head = ("#", "benchmark", "measure", "attach-runner", "yardstick", "ratio", "target",
            "verdict")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = (r.number, r.name, r.measure, r.ours, r.yardstick, r.ratio, r.target, r.verdict)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def compile_runner() -> None:
    """Byte-compile the attach-runner the clients will import, as pip does on install (this
    machine sets PYTHONDONTWRITEBYTECODE, and compiling at each start is 40 ms a process)."""
    import compileall
    import subprocess

    where = subprocess.run(
        [PYTHON, "-c", "import os, runner; print(os.path.dirname(runner.__file__))"],
        capture_output=True, text=True, check=True).stdout.strip()
    compileall.compile_dir(where, quiet=1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every pair count (default 1: 50,000 and 1,000,000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs (default 5)")
    parser.add_argument("--quick", action="store_true", help="--scale 0.02 --rounds 1")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--data", default=None,
                        help="where manifests and logs go (default: bench/.data, reused)")
    parser.add_argument("--json", default=None, help="write every run's figures here")
    parser.add_argument("--no-sdk", action="store_true", help="leave the SDK yardstick out")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every sandbox started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    if args.quick:
        args.scale, args.rounds = 0.02, 1
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(BENCHMARKS)}")
    data = Path(args.data) if args.data else BENCH_DIR / ".data"
    data.mkdir(parents=True, exist_ok=True)
    sdk = not args.no_sdk and importlib.util.find_spec("openai") is not None
    if not sdk and not args.no_sdk:
        print("note: the openai package is not installed, so the SDK yardstick is skipped; "
              "pip install -r bench/requirements.txt", file=sys.stderr)
    suite = Suite(scale=args.scale, rounds=args.rounds, data=data, sdk=sdk)
    compile_runner()
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"{machine()}\n{started:%Y-%m-%d %H:%M} UTC, scale {args.scale}, "
          f"rounds {args.rounds}", flush=True)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("overhead", lambda: bench_overhead(suite)),
        ("latency", lambda: bench_latency(suite)),
        ("limit", lambda: bench_limit(suite)),
        ("memory", lambda: bench_memory_and_resume(suite, "memory" in only, "resume" in only)),
        ("validate", lambda: bench_validate(suite)),
    ]
    for name, step in steps:
        if name in only or (name == "memory" and "resume" in only):
            step()
    print()
    print(table(suite.rows))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine(), "started": started.isoformat(), "scale": args.scale,
             "rounds": args.rounds, "rows": [asdict(r) for r in suite.rows],
             "runs": suite.runs}, indent=1))
    return 1 if any(r.verdict == "MISS" for r in suite.rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
