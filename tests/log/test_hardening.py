"""The log under hostile or damaged ground, through the real CLI: a log or lock path that is a
symbolic link (dangling or not) is refused with one line and exit 2, and nothing is made or
written at the link's target; a torn last line reads the same in either JSON spelling (ours,
or json.dumps's default spacing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.items import Item
from runner.log.writer import ResultLog
from runner.requests.outcomes import Outcome
from tests.cli import FAST, attached_counts, make_pairs, read_events, run_cli, write_csv

LOG_LINK = ("is a symbolic link, which attach-runner does not follow; pass the path of the "
            "file itself as --log, or remove the link")
LOCK_LINK = ("is a symbolic link, which attach-runner does not follow; remove the link (the "
             "lock file is made anew) or pass another --log")

# Every command that opens the log: (arguments after the manifest, the manifest's target).
# `status` also reads the lock; run, detach and sync take it.
LOG_COMMANDS = {
    "run": (["run"], "assistant_id"),
    "run --dry-run": (["run", "--dry-run"], "assistant_id"),
    "detach": (["detach"], "assistant_id"),
    "status": (["status"], "assistant_id"),
    "failed": (["failed"], "assistant_id"),
    "sync": (["sync"], "vector_store_id"),
    "sync --dry-run": (["sync", "--dry-run"], "vector_store_id"),
}
LOCK_COMMANDS = ("run", "detach", "status", "sync")


def link_to(link: Path, target: Path, kind: str) -> bytes | None:
    """`link` -> `target`, which exists (a file of the user's, returned) or not (dangling)."""
    target.parent.mkdir(exist_ok=True)
    content = None
    if kind == "to a file":
        content = b"someone else's file\n"
        target.write_bytes(content)
    link.symlink_to(target)
    return content


def command_line(name: str, manifest: Path, log: Path, base_url: str) -> list[str]:
    words, _ = LOG_COMMANDS[name]
    extra = [] if words[0] in ("status", "failed") else ["--base-url", base_url, *FAST]
    return [words[0], str(manifest), *words[1:], "--log", str(log), *extra]


@pytest.mark.parametrize("kind", ["dangling", "to a file"])
@pytest.mark.parametrize("name", list(LOG_COMMANDS))
def test_a_log_path_that_is_a_link_is_refused(
    tmp_path: Path, sandbox, name: str, kind: str
) -> None:
    """Every command that reads or writes the log refuses a --log that is a symbolic link,
    dangling or not: one line naming it and what to do, exit 2, no request, no lock file,
    and the link's target neither made nor touched."""
    sb = sandbox()
    manifest = write_csv(tmp_path / "m.csv", PAIRS, owner=LOG_COMMANDS[name][1])
    log = tmp_path / "r.jsonl"
    target = tmp_path / "elsewhere" / "target.jsonl"
    content = link_to(log, target, kind)
    res = run_cli(*command_line(name, manifest, log, sb.base_url))
    assert (res.code, res.err) == (2, f"attach-runner: error: {log}: {LOG_LINK}\n")
    assert res.out == ""
    assert sb.record()["requests"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "m.csv", "r.jsonl"]
    assert sorted(p.name for p in target.parent.iterdir()) == ([] if content is None
                                                               else ["target.jsonl"])
    if content is not None:
        assert target.read_bytes() == content


@pytest.mark.parametrize("kind", ["dangling", "to a file"])
@pytest.mark.parametrize("name", LOCK_COMMANDS)
def test_a_lock_path_that_is_a_link_is_refused(
    tmp_path: Path, sandbox, name: str, kind: str
) -> None:
    """A `<log>.lock` that is a symbolic link, dangling or not, is refused by every command
    that takes or probes the lock: one line naming it, exit 2, no request, no log made, and
    the link's target neither made nor touched."""
    sb = sandbox()
    manifest = write_csv(tmp_path / "m.csv", PAIRS, owner=LOG_COMMANDS[name][1])
    log = tmp_path / "r.jsonl"
    lock = tmp_path / "r.jsonl.lock"
    target = tmp_path / "elsewhere" / "target.lock"
    content = link_to(lock, target, kind)
    res = run_cli(*command_line(name, manifest, log, sb.base_url))
    assert (res.code, res.err) == (2, f"attach-runner: error: {lock}: {LOCK_LINK}\n")
    assert res.out == ""
    assert sb.record()["requests"] == 0
    assert not log.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ([] if content is None
                                                               else ["target.lock"])
    if content is not None:
        assert target.read_bytes() == content

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
