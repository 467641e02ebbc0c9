"""The log under hostile or damaged ground, through the real CLI: a torn last line reads the
same in either JSON spelling (ours, or json.dumps's default spacing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.items import Item
from runner.log.writer import ResultLog
from runner.requests.outcomes import Outcome
from tests.cli import FAST, attached_counts, make_pairs, read_events, run_cli, write_csv

TORN = ("the last line is incomplete (a run was cut off while writing); it is ignored and "
        "will be cut off by the next run")
PAIRS = make_pairs(2, 3)  # asst_0, asst_1 with three files each
DONE_BEFORE = 4  # the log has the first four pairs attached


def write_log(path: Path, spelling: str) -> bytes:
    """A finished run over the first DONE_BEFORE pairs, in `spelling`, and a torn last line
    in the same spelling (the first bytes of the next `done`); returns the torn bytes."""
    with ResultLog(str(path), "0123456789ab") as log:
        log.append_run_start(manifest="m.csv", target="assistant-files", items=len(PAIRS))
        for owner, file_id in PAIRS[:DONE_BEFORE]:
            log.append_sent("assistant_id", Item(owner, file_id), "attach")
            log.append_done("assistant_id", Item(owner, file_id), Outcome("attached", 200, 1))
    lines = path.read_text().splitlines()
    if spelling == "spaced":
        lines = [json.dumps(json.loads(line)) for line in lines]
    next_done = lines[2].replace("file-0x0", "file-1x0")
    torn = next_done[:48].encode()
    path.write_bytes("".join(line + "\n" for line in lines).encode() + torn)
    return torn


@pytest.mark.parametrize("spelling", ["compact", "spaced"])
def test_a_torn_last_line_is_warned_about_and_ignored_in_either_spelling(
    tmp_path: Path, spelling: str
) -> None:
    """`status` over a log whose last line was cut mid-write warns once, naming the line, and
    counts the pairs the complete lines name, in our spelling and in json.dumps's alike."""
    manifest = write_csv(tmp_path / "m.csv", PAIRS)
    log = tmp_path / "r.jsonl"
    torn = write_log(log, spelling)
    assert torn.startswith(b'{"event":"done"' if spelling == "compact" else b'{"event": "done"')
    res = run_cli("status", str(manifest), "--log", str(log), "--json")
    assert res.err == f"attach-runner: warning: {log}:10: {TORN}\n"
    assert res.code == 0
    report = res.json()
    assert (report["attached"], report["pending"]) == (DONE_BEFORE, len(PAIRS) - DONE_BEFORE)
    assert log.read_bytes().endswith(torn)  # reading never writes


@pytest.mark.parametrize("spelling", ["compact", "spaced"])
def test_a_run_cuts_a_torn_last_line_in_either_spelling_and_resumes(
    tmp_path: Path, sandbox, spelling: str
) -> None:
    """`run` warns about the torn line, cuts it off before appending, and sends only the pairs
    the log does not have: the log then reads clean, every earlier line kept as it was."""
    sb = sandbox()
    manifest = write_csv(tmp_path / "m.csv", PAIRS)
    log = tmp_path / "r.jsonl"
    torn = write_log(log, spelling)
    kept = log.read_bytes()[: -len(torn)]
    res = run_cli("run", str(manifest), "--log", str(log), "--base-url", sb.base_url, *FAST)
    assert res.code == 0, res.err
    assert res.err.splitlines()[0] == f"attach-runner: warning: {log}:10: {TORN}"
    assert attached_counts(sb.record(), PAIRS) == [0] * DONE_BEFORE + [1, 1]
    raw = log.read_bytes()
    assert raw.startswith(kept)
    assert raw[len(kept):].startswith(b'{"event":"run-start"')
    events = read_events(log)
    assert [e["event"] for e in events].count("run-start") == 2
    status = run_cli("status", str(manifest), "--log", str(log), "--json")
    assert (status.code, status.err) == (0, "")
    assert status.json()["attached"] == len(PAIRS)
