"""Helpers of the local-files tests (tests/run/test_local_files.py, test_files_that_change.py):
files written with an mtime long past (so no file is racy), their contents' SHA-256, and the
sandbox's key in the environment (run_main reads it there)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.cli import SANDBOX_KEY

LONG_AGO_NS = 1_700_000_000 * 10**9  # an mtime well before the run: no racy file


@pytest.fixture
def sandbox_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SANDBOX_KEY)


def write(path: Path, text: str, *, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if old:
        os.utime(path, ns=(LONG_AGO_NS, LONG_AGO_NS))
    return path


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
