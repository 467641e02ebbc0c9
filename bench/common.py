"""What every benchmark shares: manifests, the sandbox in its own process, timed client runs,
and the closing check of the sandbox's record (each pair attached exactly once).

The sandbox is pinned to one core and the client to the other (`taskset -c 0` / `-c 1`), so
neither steals the other's CPU; on a machine without taskset or with one core both run
unpinned (and RESULTS.md should say so).
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PYTHON = sys.executable
API_KEY = "sk-bench"
SANDBOX_CPU = "0"
CLIENT_CPU = "1"
FILES_PER_OWNER = 20  # the sandbox (like Assistants v1) holds at most 20 files per assistant
SANDBOX_START_TIMEOUT = 30.0


def pinned(cpu: str, argv: Sequence[str]) -> list[str]:
    """`argv` pinned to one CPU with taskset, when there are two CPUs to share out."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", cpu, *argv]
    return list(argv)


def runner_argv(*args: str) -> list[str]:
    """The attach-runner command, as a user runs it (the console script of this interpreter),
    its bytecode compiled first (`compiled_once`)."""
    compiled_once()
    script = Path(PYTHON).with_name("attach-runner")
    if script.exists():
        return [str(script), *args]
    return [PYTHON, "-m", "runner", *args]


@functools.cache
def compiled_once() -> None:
    """Compile the package's bytecode, as `pip install` does for an installed package: in an
    editable install with PYTHONDONTWRITEBYTECODE set (this machine has it), every run would
    compile each edited module again, and the yardsticks (aiohttp's .pyc made by pip) would
    not pay that."""
    import runner

    compileall.compile_dir(str(Path(runner.__file__).parent), quiet=1)


def client_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OPENAI_API_KEY"] = API_KEY
    env.pop("OPENAI_BASE_URL", None)
    return env


# ---------------------------------------------------------------- manifests


def pair(i: int) -> tuple[str, str]:
    """The i-th pair of every bench manifest (20 files an assistant)."""
    return f"asst_{i // FILES_PER_OWNER:07d}", f"file-{i:09d}"


def make_manifest(directory: Path, n: int, fmt: str = "csv") -> Path:
    """A manifest of pairs 0..n-1 (made once per size and format, then reused)."""
    path = directory / f"pairs-{n}.{fmt}"
    if path.exists():
        return path
    partial = path.with_suffix(path.suffix + ".part")
    with open(partial, "w", encoding="utf-8") as out:
        if fmt == "csv":
            out.write("assistant_id,file_id\n")
            out.writelines(f"{o},{f}\n" for o, f in map(pair, range(n)))
        elif fmt == "jsonl":
            out.writelines(
                f'{{"assistant_id":"{o}","file_id":"{f}"}}\n' for o, f in map(pair, range(n))
            )
        else:
            raise ValueError(f"unknown format {fmt}")
    partial.rename(path)
    return path


# ---------------------------------------------------------------- the sandbox


class SandboxProcess:
    """`attach-runner sandbox --port 0` in a subprocess pinned to SANDBOX_CPU."""

    def __init__(self, *extra: str) -> None:
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> SandboxProcess:
        argv = runner_argv("sandbox", "--port", "0", "--api-key", API_KEY, *self.extra)
        self.proc = subprocess.Popen(
            pinned(SANDBOX_CPU, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=client_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=SANDBOX_START_TIMEOUT)
            raise RuntimeError(f"sandbox did not start: {line!r} {err.strip()}")
        self.base_url = line.removeprefix("listening on ")
        return self

    def record(self) -> dict[str, Any]:
        url = self.base_url.removesuffix("/v1") + "/__sandbox/record"
        with urllib.request.urlopen(url, timeout=600) as resp:
            record: dict[str, Any] = json.load(resp)
            return record

    def cpu_s(self) -> float:
        """CPU seconds the sandbox has used so far (user + system), from /proc; 0 elsewhere."""
        if self.proc is None:
            return 0.0
        try:
            with open(f"/proc/{self.proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def check_record(record: dict[str, Any], n: int) -> list[str]:
    """Problems with "pairs 0..n-1 each attached exactly once, nothing else attached"."""
    problems: list[str] = []
    pairs: dict[str, dict[str, Any]] = record["pairs"]
    for i in range(n):
        owner, file_id = pair(i)
        entry = pairs.get(f"{owner}/{file_id}")
        times = 0 if entry is None else entry["attached"]
        if times != 1:
            problems.append(f"{owner}/{file_id} attached {times} times")
            if len(problems) >= 5:
                break
    if record["attached_total"] != n:
        problems.append(f"attached_total {record['attached_total']}, expected {n}")
    return problems


# ---------------------------------------------------------------- timed runs


@dataclass
class Measured:
    """One whole-process run of a client."""

    argv: list[str]
    code: int
    wall_s: float  # whole process, start to exit
    cpu_s: float  # user + system
    max_rss_kib: int
    stdout: str
    stderr: str
    record: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    server_cpu_s: float = 0.0  # the sandbox's CPU time during the run

    @property
    def max_rss_mib(self) -> float:
        return self.max_rss_kib / 1024


def run_timed(argv: Sequence[str], *, cpu: str = CLIENT_CPU, cwd: Path | None = None,
              timeout: float = 7200) -> Measured:
    """Run `argv` pinned to `cpu` under /usr/bin/time -v: wall time, CPU time, peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        full = list(argv)
        if Path("/usr/bin/time").exists():
            full = ["/usr/bin/time", "-v", "-o", report.name, *full]
        full = pinned(cpu, full)
        started = time.perf_counter()
        done = subprocess.run(full, capture_output=True, text=True, env=client_env(), cwd=cwd,
                              timeout=timeout)
        wall = time.perf_counter() - started
        fields = _time_fields(report.read())
    return Measured(
        argv=list(argv), code=done.returncode, wall_s=wall,
        cpu_s=fields.get("User time (seconds)", 0.0) + fields.get("System time (seconds)", 0.0),
        max_rss_kib=int(fields.get("Maximum resident set size (kbytes)", 0)),
        stdout=done.stdout, stderr=done.stderr,
    )


def _time_fields(text: str) -> dict[str, float]:
    fields: dict[str, float] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().rpartition(": ")
        if sep:
            with contextlib.suppress(ValueError):
                fields[name] = float(value)
    return fields


def against_sandbox(argv: Sequence[str], n: int, *sandbox_args: str) -> Measured:
    """Run a client against a fresh sandbox; close with the record check."""
    with SandboxProcess(*sandbox_args) as sandbox:
        measured = run_in(sandbox, argv)
        check(sandbox, n, measured)
    return measured


def run_in(sandbox: SandboxProcess, argv: Sequence[str]) -> Measured:
    """Run a client against a running sandbox (`{base_url}` in argv is filled in)."""
    full = [a.replace("{base_url}", sandbox.base_url) for a in argv]
    before = sandbox.cpu_s()
    measured = run_timed(full)
    measured.server_cpu_s = sandbox.cpu_s() - before
    return measured


def check(sandbox: SandboxProcess, n: int, measured: Measured | None = None) -> list[str]:
    """The closing check: pairs 0..n-1 each attached exactly once. The record, less its
    per-pair part, is kept on `measured`."""
    record = sandbox.record()
    problems = check_record(record, n)
    if measured is not None:
        measured.record = {k: v for k, v in record.items() if k != "pairs"}
        measured.problems = problems
    return problems


def summary_of(measured: Measured) -> dict[str, Any]:
    """The run's `--json` object: the last line of its stdout that is one ({} if none)."""
    for line in reversed(measured.stdout.strip().splitlines()):
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    return {}


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def scratch_dir() -> Iterator[Path]:
    """A scratch directory removed after; BENCH_SCRATCH=DIR keeps the files in DIR instead
    (to read a round's log after)."""
    kept = os.environ.get("BENCH_SCRATCH")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        yield Path(kept)
        return
    with tempfile.TemporaryDirectory(prefix="attach-runner-bench-") as tmp:
        yield Path(tmp)
