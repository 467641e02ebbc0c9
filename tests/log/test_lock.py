"""The run lock: one run per log, across processes; a killed holder never blocks."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runner.errors import LockedError, LogError
from runner.log.lock import RunLock, holder_pid

HOLDER = """
import sys, time
from runner.log.lock import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)  # holds the lock until the test kills it
"""


@contextmanager
def holder(log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process that holds the lock until it is killed (SIGKILL on exit)."""
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(log)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline() == b"held\n"
            yield proc
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def test_second_run_from_another_process_is_refused_naming_its_pid(tmp_path: Path) -> None:
    """While another process holds the lock, acquire raises LockedError with that PID."""
    log = tmp_path / "r.jsonl"
    with holder(log) as proc:
        with pytest.raises(LockedError) as info:
            RunLock(str(log)).acquire()
        assert str(info.value) == (
            f"{log}: another run (PID {proc.pid}) is using this log; "
            "wait for it to finish, or stop it"
        )
        assert info.value.exit_code == 3
        assert holder_pid(str(log)) == proc.pid


def test_lock_of_a_killed_run_is_free(tmp_path: Path) -> None:
    """After the holder is killed with SIGKILL, the lock is free and its stale PID replaced."""
    log = tmp_path / "r.jsonl"
    lock_file = tmp_path / "r.jsonl.lock"
    with holder(log) as proc:
        dead = proc.pid
    assert lock_file.read_text() == f"{dead}\n"
    assert holder_pid(str(log)) is None
    with RunLock(str(log)) as lock:
        assert lock.held
        assert lock_file.read_text() == f"{os.getpid()}\n"
        assert holder_pid(str(log)) == os.getpid()
    assert holder_pid(str(log)) is None


def test_release_keeps_file_and_allows_reacquire(tmp_path: Path) -> None:
    """Release unlocks but keeps the 0600 file; acquiring again works; release is idempotent."""
    log = tmp_path / "r.jsonl"
    lock = RunLock(str(log))
    lock.acquire()
    lock_file = tmp_path / "r.jsonl.lock"
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
    lock.release()
    lock.release()
    assert lock_file.exists()
    with RunLock(str(log)), pytest.raises(LockedError, match=r"another run \(PID \d+\)"):
        RunLock(str(log)).acquire()


def test_holder_pid_without_lock_file_is_none(tmp_path: Path) -> None:
    """A log no run has locked has no holder, and asking creates no file."""
    assert holder_pid(str(tmp_path / "r.jsonl")) is None
    assert list(tmp_path.iterdir()) == []


def test_unreadable_pid_says_pid_unknown(tmp_path: Path) -> None:
    """A held lock whose file holds no PID is reported as PID unknown."""
    log = tmp_path / "r.jsonl"
    with RunLock(str(log)):
        (tmp_path / "r.jsonl.lock").write_bytes(b"")
        with pytest.raises(LockedError, match=r"another run \(PID unknown\)"):
            RunLock(str(log)).acquire()


def test_missing_directory_is_a_log_error(tmp_path: Path) -> None:
    """A lock beside a log in a missing directory gives one LogError line."""
    log = tmp_path / "nope" / "r.jsonl"
    with pytest.raises(LogError) as info:
        RunLock(str(log)).acquire()
    assert str(info.value) == (
        f"{log}.lock: its directory does not exist; create it or pass another --log"
    )
