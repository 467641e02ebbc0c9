"""Helpers of the local-files tests (tests/run/test_local_files.py, test_files_that_change.py,
test_streamed_uploads.py): files written with an mtime long past (so no file is racy), their
contents' SHA-256, the sandbox's key in the environment (run_main reads it there), and what
the sandbox's record says of the stores' contents."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from runner.sandbox import SandboxThread
from tests.cli import FAST, SANDBOX_KEY, Result, run_main, wait_for_held_writes

LONG_AGO_NS = 1_700_000_000 * 10**9  # an mtime well before the run: no racy file


@pytest.fixture
def sandbox_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SANDBOX_KEY)


def write(path: Path, text: str | bytes, *, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    if old:
        os.utime(path, ns=(LONG_AGO_NS, LONG_AGO_NS))
    return path


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def files_in(record: dict[str, Any], store: str) -> dict[str, dict[str, Any]]:
    return record["vector_store_files"].get(store, {})


def contents_in(record: dict[str, Any], store: str) -> list[str]:
    """The SHA-256 of each file object the store holds (a content twice shows twice)."""
    objects = record["files"]
    return sorted(objects[file_id]["sha256"] for file_id in files_in(record, store))


def args_for(sb: SandboxThread, manifest: Path, log: Path, *more: str) -> list[str]:
    return ["run", str(manifest), "--base-url", sb.base_url, "--log", str(log), "--json",
            *FAST, *more]


def objects_by_content(record: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for file_id, obj in record["files"].items():
        if not obj["deleted"]:
            found.setdefault(obj["sha256"], []).append(file_id)
    return found


def assert_exactly_once(record: dict[str, Any], store: str, texts: Iterable[str],
                        reported: set[str], *, shas: Iterable[str] = ()) -> None:
    """The store holds each content (`texts`, and those whose SHA-256 is in `shas`) once;
    every other object of ours is a reported possible duplicate (never attached, never
    deleted)."""
    wanted = sorted({sha(t) for t in texts} | set(shas))
    assert contents_in(record, store) == wanted
    held = set(files_in(record, store))
    for _content, ids in objects_by_content(record).items():
        for file_id in ids:
            assert file_id in held or file_id in reported, (file_id, record["files"][file_id])


def reported(results: Iterable[Any]) -> set[str]:
    ids: set[str] = set()
    for result in results:
        if result.out.strip():
            ids.update(result.json().get("possible_duplicates", []))
    return ids


def runs_until_exit_0(args: list[str], runs: int) -> list[Result]:
    """Run the CLI in this process until it exits 0, at most `runs` times (fail the test if it
    never did); every run's result (their possible duplicates are all reported)."""
    results = []
    for _ in range(runs):
        results.append(run_main(args))
        if results[-1].code == 0:
            return results
    raise AssertionError(f"no run of {runs} exited 0: {results[-1].err}")


# Faults that leave an upload uncertain: each was applied, and the client cannot know it.
UNCERTAIN_UPLOAD_FAULTS = [
    {"reset_after_rate": 0.5},  # applied, then the connection dropped
    {"error_after_rate": 0.5},  # applied, then a 500
    # Applied after the client gave up (at --timeout 1 s), well within --settle (2 s).
    {"late_apply_rate": 0.5, "late_apply_ms": 1500},
]
# A run's flags under those faults: the client gives up at 1 s, settles after 2.
UNDER_FAULTS = ["--timeout", "1", "--max-attempts", "8", "--settle", "2"]


def settled_under_faults(sb: SandboxThread, args: list[str]) -> tuple[dict[str, Any], set[str]]:
    """Runs to exit 0 (at most 8) under uncertain-upload faults: the sandbox's record once no
    write is held, and every possible duplicate the runs reported. Fails the test if the
    fault never happened (it would have proved nothing)."""
    results = runs_until_exit_0(args, runs=8)
    record = wait_for_held_writes(sb)
    assert record["faults"], "the fault never happened: the test proved nothing"
    return record, reported(results)
