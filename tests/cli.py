"""Helpers for driving the real CLI against a sandbox, as a subprocess (`python -m runner`) or
in this process (`main`), and for reading what a run left: its log and the sandbox's record.

Shared by every folder of tests/: one definition of each, imported where it is used.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from runner.log.reader import read_log
from runner.sandbox import SandboxThread

SANDBOX_KEY = "sk-sandbox"
# Shrink retry waits through settings, not patches.
FAST = ["--backoff-initial", "0.01", "--backoff-max", "0.05", "--settle", "0.3"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out.strip().splitlines()[-1])


def cli_env(extra: Mapping[str, str] | None = None, *,
            key: str | None = SANDBOX_KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    env.update(extra or {})
    return env


def run_cli(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            stdin: str | None = None, timeout: float = 120,
            key: str | None = SANDBOX_KEY) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "runner", *args], capture_output=True, text=True,
        env=cli_env(env, key=key), cwd=cwd, input=stdin, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def spawn(*args: str, key: str = SANDBOX_KEY) -> subprocess.Popen[str]:
    """The CLI as a subprocess we can signal or kill (stdout and stderr piped, as text)."""
    return subprocess.Popen([sys.executable, "-m", "runner", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(key=key))


def kill_9_at_random_moments(args: Sequence[str], rng: random.Random,
                             between: tuple[float, float], kills: int = 3,
                             once: Callable[[int], bool] | None = None) -> None:
    """Start the CLI with `args` `kills` times, each killed with SIGKILL a random number of
    seconds (`rng.uniform(*between)`) after it started, or after `once(n)` first held for the
    n-th run (0, 1, ...; say, the log shows that run's first write sent: on a loaded machine a
    fixed delay could end every run before it sent anything)."""
    for n in range(kills):
        proc = subprocess.Popen([sys.executable, "-m", "runner", *args], env=cli_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if once is not None:
            deadline = time.monotonic() + 60
            while not once(n) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)  # polling the log for the moment to start from
        time.sleep(rng.uniform(*between))  # fault injection, not a wait: the kill's moment
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def rerun_until_exit_0(args: Sequence[str], runs: int) -> Result:
    """Run the CLI with `args` until it exits 0, at most `runs` times; fail the test if it
    never did. Returns the last run's result."""
    for _ in range(runs):
        result = run_cli(*args)
        if result.code == 0:
            return result
    raise AssertionError(f"not done after {runs} runs (exit {result.code}):\n{result.err}")


def holds_while_running(condition: Callable[[], bool], proc: subprocess.Popen[str],
                        timeout: float = 30.0) -> bool:
    """Poll `condition` until it holds (True) or `proc` ends first (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.005)
    return True


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    """Poll `condition` until it holds; fail if `proc` ends first."""
    if not holds_while_running(condition, proc):
        out, err = proc.communicate()
        raise AssertionError(f"the run ended ({proc.returncode}) first:\n{out}\n{err}")


def wait_for_held_writes(sandbox: SandboxThread, timeout: float = 10.0) -> dict[str, Any]:
    """Poll the sandbox's record until it holds no write (`held_writes` 0: every write a
    late_apply fault held has landed, or was dropped) and return that record; fail the test if
    one is still held after `timeout` seconds. Judge a run only after this: a fixed sleep lets a
    write held a little longer under load land after the checks, never checked."""
    deadline = time.monotonic() + timeout
    while True:
        record = sandbox.record()
        if record["held_writes"] == 0:
            return record
        if time.monotonic() > deadline:
            pytest.fail(f"the sandbox still holds {record['held_writes']} write(s) after "
                        f"{timeout} s (late_apply_ms: {sandbox.config.late_apply_ms})",
                        pytrace=False)
        time.sleep(0.02)


def run_main(argv: list[str]) -> Result:
    """`main(argv)` in this process, its stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return Result(code, out.getvalue(), err.getvalue())


def main_in(work: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], *,
            key: str = SANDBOX_KEY, reports: Path | None = None) -> Result:
    """`main(argv)` in folder `work` with `key` in OPENAI_API_KEY, crash reports going to
    `reports` (default: `work / "tmp"`)."""
    monkeypatch.chdir(work)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setattr("tempfile.tempdir", str(reports or work / "tmp"))
    return run_main(argv)


def make_a_worker_raise(monkeypatch: pytest.MonkeyPatch,
                        message: str = "simulated bug in a worker") -> None:
    """A bug in the engine: recording an item's outcome raises RuntimeError(message)."""
    def record(self: object, item: object, outcome: object, pair: object = None) -> None:
        raise RuntimeError(message)

    monkeypatch.setattr("runner.run.engine.Engine.record", record)


def write_csv(path: Path, pairs: Iterable[tuple[str, str]], owner: str = "assistant_id") -> Path:
    path.write_text(f"{owner},file_id\n" + "".join(f"{o},{f}\n" for o, f in pairs))
    return path


def write_jsonl(path: Path, pairs: Iterable[tuple[str, str]], owner: str = "assistant_id") -> Path:
    path.write_text("".join(json.dumps({owner: o, "file_id": f}) + "\n" for o, f in pairs))
    return path


def write_yaml(path: Path, pairs: Iterable[tuple[str, str]], owner: str = "assistant_id") -> Path:
    lines = ["items:"] + [f"  - {{{owner}: {o}, file_id: {f}}}" for o, f in pairs]
    path.write_text("\n".join(lines) + "\n")
    return path


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "yaml": write_yaml}


def make_pairs(owners: int, files: int, prefix: str = "asst") -> list[tuple[str, str]]:
    return [(f"{prefix}_{o}", f"file-{o}x{f}") for o in range(owners) for f in range(files)]


# target -> (the manifest's owner column, the owner ID prefix used in tests)
TARGETS = {
    "assistant-files": ("assistant_id", "asst"),
    "vector-store-files": ("vector_store_id", "vs"),
}


def owner_of(target: str) -> str:
    return TARGETS[target][0]


def owner_kind(target: str) -> str:
    """The sandbox's `preload` name for the target's owners."""
    return "assistant" if target == "assistant-files" else "vector_store"


def pairs_for(target: str, owners: int = 3, files: int = 5) -> list[tuple[str, str]]:
    return make_pairs(owners, files, prefix=TARGETS[target][1])


def log_of(manifest: Path) -> Path:
    """The manifest's default result log."""
    return Path(f"{manifest}.results.jsonl")


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every line of a log as JSON (a torn line fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def written_events(path: Path) -> list[dict[str, Any]]:
    """The lines a running process has finished writing to its log, as JSON (the last one
    may be half written when read: it is left for the next look)."""
    text = path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()
            if line.strip()]


def read_log_events(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every event of a log as the product reads it, and the warnings (a torn last line)."""
    warnings: list[str] = []
    events = list(read_log(str(path), warn=warnings.append))
    return events, warnings


def attached_counts(record: Mapping[str, Any], pairs: Iterable[tuple[str, str]]) -> list[int]:
    """How many times the sandbox says each pair was put in place (preloaded counts once)."""
    out = []
    for o, f in pairs:
        entry = record["pairs"].get(f"{o}/{f}")
        out.append(0 if entry is None else entry["attached"] + int(entry["preloaded"]))
    return out
