"""The result log: lines round-trip, 0600, torn last lines, corrupt logs, killed writers."""

from __future__ import annotations

import calendar
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import LogError
from runner.log.writer import ResultLog
from tests.cli import read_log_events as read_all

TS_PATTERN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TORN = "the last line is incomplete (a run was cut off while writing); it is ignored and will be cut off by the next run"  # noqa: E501
NOT_OURS = "this file is not an attach-runner log or was edited: move it away or pass another --log"


def test_lines_round_trip_with_required_keys(tmp_path: Path) -> None:
    """Appended events read back in order, with event, ts, run first and the fields after."""
    path = tmp_path / "r.jsonl"
    with ResultLog(str(path), "run-1") as log:
        log.append("run-start", manifest="m.csv", target="assistant-files", items=2)
        log.append("sent", assistant_id="asst_1", file_id="file-1")
        log.append(
            "done",
            assistant_id="asst_1",
            file_id="file-1",
            outcome="attached",
            status=200,
            attempts=1,
            error=None,
            retryable=False,
            uncertain=False,
        )
    events, warnings = read_all(path)
    assert warnings == []
    assert [e["event"] for e in events] == ["run-start", "sent", "done"]
    assert all(e["run"] == "run-1" and TS_PATTERN.fullmatch(e["ts"]) for e in events)
    assert list(events[2]) == [
        "event",
        "ts",
        "run",
        "assistant_id",
        "file_id",
        "outcome",
        "status",
        "attempts",
        "error",
        "retryable",
        "uncertain",
    ]
    assert events[2]["error"] is None
    assert events[2]["status"] == 200


def test_timestamp_is_utc_now_with_milliseconds(tmp_path: Path) -> None:
    """ts is the current UTC time to the millisecond, spelled ISO 8601 with Z."""
    path = tmp_path / "r.jsonl"
    before = time.time()
    with ResultLog(str(path), "r") as log:
        log.append("sent")
    after = time.time()
    (event,), _ = read_all(path)
    stamp: float = calendar.timegm(time.strptime(event["ts"][:19], "%Y-%m-%dT%H:%M:%S"))
    stamp += int(event["ts"][20:23]) / 1000
    assert before - 0.002 <= stamp <= after + 0.002


def test_file_is_created_0600_and_tightened(tmp_path: Path) -> None:
    """A new log is 0600, and an existing world-readable one is made 0600."""
    new, old = tmp_path / "new.jsonl", tmp_path / "old.jsonl"
    old.write_bytes(b"")
    old.chmod(0o644)
    for path in (new, old):
        log = ResultLog(str(path), "r")
        log.open()
        log.close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_each_append_is_one_ascii_line_even_with_unicode(tmp_path: Path) -> None:
    """Newlines, line separators, emoji and lone surrogates stay inside one ASCII line."""
    path = tmp_path / "r.jsonl"
    message = "bad\nthing \u2028 \u00e9t\u00e9 \U0001f600 \ud800"
    with ResultLog(str(path), "r") as log:
        log.append("done", error={"type": "x", "message": message, "code": None})
        log.append("run-end")
    raw = path.read_bytes()
    assert raw.count(b"\n") == 2
    assert raw.isascii()
    events, _ = read_all(path)
    assert events[0]["error"]["message"] == message


def test_caller_cannot_override_ts_or_run(tmp_path: Path) -> None:
    """ts and run belong to the log: passing them is a programming error."""
    with ResultLog(str(tmp_path / "r.jsonl"), "r") as log, pytest.raises(TypeError):
        log.append("sent", run="other")


def test_torn_last_line_is_ignored_then_cut_by_next_open(tmp_path: Path) -> None:
    """A partial last line is warned about and ignored; the next open cuts it off."""
    path = tmp_path / "r.jsonl"
    with ResultLog(str(path), "a") as log:
        log.append("sent", file_id="f1")
    with path.open("ab") as f:
        f.write(b'{"event":"done","ts":"2026-')
    events, warnings = read_all(path)
    assert [e["file_id"] for e in events] == ["f1"]
    assert warnings == [f"{path}:2: {TORN}"]
    with ResultLog(str(path), "b") as log:
        log.append("sent", file_id="f2")
    events, warnings = read_all(path)
    assert [e["file_id"] for e in events] == ["f1", "f2"]
    assert warnings == []


def test_complete_object_without_newline_counts_as_torn(tmp_path: Path) -> None:
    """A whole JSON event missing its newline is torn too: ignored, and cut by the writer."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"event":"sent","ts":"t","run":"a","file_id":"f1"}')
    events, warnings = read_all(path)
    assert events == []
    assert warnings == [f"{path}:1: {TORN}"]
    with ResultLog(str(path), "b"):
        pass
    assert path.read_bytes() == b""


def test_nul_filled_tail_counts_as_torn(tmp_path: Path) -> None:
    """NUL bytes after the last line (left by a power cut on some filesystems) are torn."""
    path = tmp_path / "r.jsonl"
    with ResultLog(str(path), "a") as log:
        log.append("sent")
    with path.open("ab") as f:
        f.write(b"\0" * 300)
    events, warnings = read_all(path)
    assert len(events) == 1
    assert len(warnings) == 1


def test_corrupt_middle_line_names_file_and_line(tmp_path: Path) -> None:
    """A line in the middle that does not parse raises LogError at that line."""
    path = tmp_path / "r.jsonl"
    good = b'{"event":"sent","ts":"t","run":"a"}\n'
    path.write_bytes(good + b'{"event":"sent",\n' + good)
    with pytest.raises(LogError) as info:
        read_all(path)
    assert str(info.value) == f"{path}:2: not a valid result log line (not JSON); {NOT_OURS}"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"event":"sent","ts":"t"}\n', 'no "event" and "run" strings'),
        (b'{"event":7,"run":"a"}\n', 'no "event" and "run" strings'),
        (b'{"event":"sent","run":"\xff"}\n', "not UTF-8"),
        (b"\n", "not JSON"),
    ],
)
def test_final_bad_line_with_newline_is_corrupt(tmp_path: Path, line: bytes, reason: str) -> None:
    """A newline-ended line that is not an event is corrupt even last (the writer keeps it)."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"event":"sent","ts":"t","run":"a"}\n' + line)
    expected = f"{path}:2: not a valid result log line ({reason})"
    with pytest.raises(LogError, match=re.escape(expected)):
        read_all(path)


def test_csv_file_is_refused_at_line_1(tmp_path: Path) -> None:
    """A file that is plainly not ours (a CSV) is refused at line 1, by reader and writer."""
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"assistant_id,file_id\nasst_1,file-1\n")
    with pytest.raises(LogError, match=re.escape(f"{path}:1: not a valid result log line")):
        read_all(path)
    one_line = tmp_path / "one.csv"
    one_line.write_bytes(b"assistant_id,file_id")
    with pytest.raises(LogError) as info:
        read_all(one_line)
    assert str(info.value) == (
        f"{one_line}:1: not a valid result log line (an incomplete line that is not an event); "
        f"{NOT_OURS}"
    )
    with pytest.raises(LogError, match=re.escape(f"{one_line}:1: not a valid result log line")):
        ResultLog(str(one_line), "r").open()
    assert one_line.read_bytes() == b"assistant_id,file_id"


def test_missing_and_empty_files_yield_nothing(tmp_path: Path) -> None:
    """A missing or empty log reads as no events and no warning."""
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert read_all(tmp_path / "missing.jsonl") == ([], [])
    assert read_all(tmp_path / "empty.jsonl") == ([], [])


def test_open_errors_are_one_line(tmp_path: Path) -> None:
    """A missing directory or a directory as the log gives one LogError line saying what to do."""
    missing = tmp_path / "nope" / "r.jsonl"
    with pytest.raises(LogError) as info:
        ResultLog(str(missing), "r").open()
    assert str(info.value) == (
        f"{missing}: its directory does not exist; create it or pass another --log"
    )
    with pytest.raises(LogError, match="is a directory; pass a file path to --log"):
        ResultLog(str(tmp_path), "r").open()
    with pytest.raises(LogError, match="is a directory"):
        read_all(tmp_path)


def test_fsync_grouping_loses_nothing_on_close(tmp_path: Path) -> None:
    """Lines between group fsyncs are all there after close, and close is idempotent."""
    path = tmp_path / "r.jsonl"
    log = ResultLog(str(path), "r", fsync_every=7, fsync_interval=3600)
    log.open()
    for i in range(100):
        log.append("sent", n=i)
    log.close()
    log.close()
    events, _ = read_all(path)
    assert [e["n"] for e in events] == list(range(100))


WRITER = """
import sys
from runner.log.writer import ResultLog
log = ResultLog(sys.argv[1], "killed", fsync_every=64)
log.open()
log.append("run-start", n=-1)
print("ready", flush=True)
n = 0
while True:
    log.append("done", n=n, file_id="file-" + "x" * (n % 500), outcome="attached")
    n += 1
"""


def test_writer_killed_with_sigkill_leaves_a_readable_log(tmp_path: Path) -> None:
    """A writer killed mid-stream leaves every line it wrote, at most one torn; a run resumes."""
    path = tmp_path / "r.jsonl"
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        while path.read_bytes().count(b"\n") <= 100:  # a poll, not a sleep: then the kill
            assert proc.poll() is None, "the writer stopped by itself"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    events, warnings = read_all(path)
    assert len(warnings) <= 1
    assert [e["n"] for e in events] == list(range(-1, len(events) - 1))
    assert len(events) > 100
    with ResultLog(str(path), "next") as log:
        log.append("run-start")
    events_after, warnings = read_all(path)
    assert warnings == []
    assert events_after == [*events, events_after[-1]]


def make_events() -> st.SearchStrategy[list[dict[str, object]]]:
    value = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=20),
        st.lists(st.text(max_size=5), max_size=3),
    )
    fields = st.dictionaries(st.sampled_from(["file_id", "outcome", "status", "x"]), value)
    event = st.builds(
        lambda name, f: {"event": name, **f}, st.sampled_from(["sent", "done", "run-end"]), fields
    )
    return st.lists(event, max_size=8)


@settings(deadline=None, max_examples=100)
@given(events=make_events(), data=st.data())
def test_any_prefix_reads_as_a_prefix_of_events(
    events: list[dict[str, object]], data: st.DataObject
) -> None:
    """Cut at any byte, a valid log reads as a prefix of its events, and a run resumes it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "r.jsonl")
        with ResultLog(str(path), "r") as log:
            for event in events:
                log.append(str(event["event"]), **{k: v for k, v in event.items() if k != "event"})
        raw = path.read_bytes()
        written, _ = read_all(path)
        cut = data.draw(st.integers(0, len(raw)))
        path.write_bytes(raw[:cut])
        got, warnings = read_all(path)
        complete = raw[:cut].count(b"\n")
        assert got == written[:complete]
        assert len(warnings) == (0 if cut == 0 or raw[cut - 1 : cut] == b"\n" else 1)
        with ResultLog(str(path), "r2") as log:
            log.append("run-start")
        got, warnings = read_all(path)
        assert got[:-1] == written[:complete]
        assert got[-1]["run"] == "r2"
        assert warnings == []


def test_log_bytes_are_compact_json(tmp_path: Path) -> None:
    """Each line is compact JSON starting with the event key (the torn-line check relies on it)."""
    path = tmp_path / "r.jsonl"
    with ResultLog(str(path), "r") as log:
        log.append("sent", file_id="f")
    line = path.read_bytes()
    assert line.startswith(b'{"event":"sent","ts":"')
    assert line.endswith(b'","run":"r","file_id":"f"}\n')
    assert json.loads(line)["file_id"] == "f"
    assert os.path.getsize(path) == len(line)
