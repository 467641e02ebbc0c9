"""Reading a result log both ways, event by event and by the bulk scan, and comparing the two:
the resume index each folds into, or the error each refuses it with. What the resume and
fast-path tests check any log against."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import LogError
from runner.log.reader import read_log, scan_log
from runner.log.resume import ResumeIndex


def fold_slowly(path: Path, owner_column: str) -> tuple[ResumeIndex, list[str]]:
    """The log read event by event (`read_log`) and loaded; with the warnings."""
    warnings: list[str] = []
    index = ResumeIndex(owner_column)
    index.load(read_log(str(path), warn=warnings.append))
    return index, warnings


def fold_fast(path: Path, owner_column: str) -> tuple[ResumeIndex, list[str]]:
    """The log through the bulk scan (`load_log`); with the warnings."""
    warnings: list[str] = []
    index = ResumeIndex(owner_column)
    index.load_log(str(path), warn=warnings.append)
    return index, warnings


def same_index(a: ResumeIndex, b: ResumeIndex) -> None:
    """Assert the two hold the same resume state, field by field."""
    assert a.attached == b.attached
    assert a.updated == b.updated
    assert a.already == b.already
    assert a.states == b.states
    assert a.digests == b.digests
    assert a.failed == b.failed
    assert a.batch_of == b.batch_of
    assert a.batch_files == b.batch_files
    assert (a.runs, a.last_run_end) == (b.runs, b.last_run_end)


def same_refusal(path: Path, owner_column: str = "assistant_id") -> str:
    """Assert read_log and the bulk scan refuse the log with the same message; return it."""
    with pytest.raises(LogError) as slow:
        list(read_log(str(path), warn=lambda message: None))
    with pytest.raises(LogError) as fast:
        list(scan_log(str(path), owner_column, warn=lambda message: None))
    assert str(fast.value) == str(slow.value)
    return str(fast.value)
