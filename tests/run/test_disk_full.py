"""A log that cannot be written mid-run (a full disk): the run stops sending at once, exits 2
with its summary (`stopped_by: log-write`), and a rerun with room finishes with nothing added
twice. A real fault: a 16 KiB tmpfs where this machine lets us mount one, else a file-size
limit (RLIMIT_FSIZE) on the run's process: the same ENOSPC/EFBIG from os.write either way."""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli import FAST, cli_env, run_cli, write_csv

LIMIT = 16 * 1024


@contextlib.contextmanager
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None] | None,
                                                 Callable[[], None]]]:
    """(a folder for the log, a preexec_fn limiting the run's file size or None, a function
    that gives the folder room again)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={LIMIT}", "tmpfs",
                              str(folder)], capture_output=True).returncode == 0
    if mounted:
        def grow() -> None:
            subprocess.run(["mount", "-o", "remount,size=16m", str(folder)], check=True)
        try:
            yield folder, None, grow
        finally:
            subprocess.run(["umount", str(folder)], check=False)
        return

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))

    yield folder, limit, lambda: None


def logged_sends(log: Path) -> set[str]:
    """Pairs with a `sent` (or `batch-sent`) line in the log; a torn last line is skipped."""
    sent: set[str] = set()
    for line in log.read_bytes().split(b"\n"):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event["event"] == "sent":
            sent.add(f"{event['vector_store_id']}/{event['file_id']}")
        elif event["event"] == "batch-sent":
            sent.update(f"{event['vector_store_id']}/{f}" for f in event["file_ids"])
    return sent


@pytest.mark.parametrize("batch", ["0", "10"])
def test_a_full_disk_stops_the_run_with_exit_2_and_a_summary(tmp_path: Path, sandbox,
                                                              batch: str):
    sb = sandbox(latency_ms=2)
    pairs = [(f"vs_{s}", f"file-{s}x{f}") for s in range(3) for f in range(100)]
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    with small_disk(tmp_path) as (folder, limit, grow):
        log = folder / "m.log"
        args = ["run", str(manifest), "--log", str(log), "--base-url", sb.base_url, "--json",
                "--batch-size", batch, "--concurrency", "4", "--no-progress", "--timeout", "2",
                "--store-rpm", "60000",
                *FAST]
        proc = subprocess.run([sys.executable, "-m", "runner", *args], env=cli_env(),
                              capture_output=True, text=True, timeout=120, preexec_fn=limit)
        assert proc.returncode == 2, proc.stderr
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["exit"] == 2
        assert summary["stopped_by"] == "log-write"
        assert "cannot write" in summary["error"]
        assert 0 < summary["attached"] < len(pairs)
        assert "--log" in summary["next"]
        assert proc.stderr.count("attach-runner: error:") == 1
        # Nothing left without a `sent` line first, and nothing after the stop but what was
        # already in flight: the sandbox saw only pairs the log names.
        record = sb.record()
        seen = {key for key, entry in record["pairs"].items() if entry["attached"]}
        assert seen <= logged_sends(log)
        grow()
        rerun = run_cli(*args[:-len(FAST)], *FAST)
        assert rerun.code == 0, rerun.err
    record = sb.record()
    assert all(record["pairs"][f"{o}/{f}"]["attached"] == 1 for o, f in pairs)
    assert all(entry["posts_after_attached"] == 0 for entry in record["pairs"].values())
