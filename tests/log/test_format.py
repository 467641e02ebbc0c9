"""The log's line format, owned by runner/log: the `append_*` methods write the bytes earlier
versions wrote (a log of every kind of line, written by commit 9baed14, is kept in
tests/data/logs), the hot-path lines are byte for byte what the JSON encoder makes for any
value, and a log in either spelling (ours, or json.dumps's default spacing) reads alike."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.attributes import Options
from runner.attributes import digest as attributes_digest
from runner.items import Item
from runner.log.reader import read_log
from runner.log.resume import ResumeIndex
from runner.log.writer import ResultLog
from runner.requests.outcomes import Outcome
from runner.requests.targets import ApiError

ROOT = Path(__file__).resolve().parents[2]
WRITTEN_BY_9BAED14 = ROOT / "tests" / "data" / "logs" / "written-by-9baed14.jsonl"
TS = re.compile(rb'"ts":"[^"]*"')
FIXED_TS = b'"ts":"2026-12-05T12:00:00.000Z"'
A, V = "assistant_id", "vector_store_id"


def replay(log: ResultLog) -> None:
    """The lines of written-by-9baed14.jsonl, through today's API (the file was made by the
    same calls through 9baed14's `append`, `append_encoded` and the engine's helpers)."""
    log.append_run_start(manifest="jobs/nightly.csv", target="assistant-files", items=7)
    a1, a2, a3, a4 = (Item("asst_1", "file-1"), Item("asst_1", "file-2"),
                      Item("asst_2", "file-3"), Item("asst_2", "file-4"))
    log.append_sent(A, a1, "attach")
    log.append_done(A, a1, Outcome("attached", 200, 1))
    log.append_sent(A, a2, "attach")
    log.append_done(A, a2, Outcome("already_attached", None, 2))
    log.append_sent(A, a3, "attach")
    log.append_done(A, a3, Outcome("failed", 404, 1, ApiError(
        "invalid_request_error", 'No file "file-3" \u00e9t\u00e9 \U0001f600 \ud800 a\nb \\ end',
        None)))
    log.append_done(A, a3, Outcome("failed", 503, 5, ApiError(None, "<html>502</html>",
                                                              "server_error"),
                                   retryable=True, uncertain=True))
    log.append_sent(A, a4, "detach")
    log.append_done(A, a4, Outcome("detached", 200, 1, op="detach"))
    log.append_done(A, a4, Outcome("already_detached", 404, 1, op="detach"))
    v1 = Item("vs_1", "file-5", 3, Options(attributes={"team": "a", "n": 2}))
    log.append_sent(V, v1, "attach")
    log.append_done(V, v1, Outcome("attached", 200, 1, file_status="in_progress"))
    v2 = Item("vs_1", "file-6", 4, Options(attributes={"team": "b"}))
    log.append_sent(V, v2, "update")
    log.append_done(V, v2, Outcome("updated", 200, 1, op="update"))
    log.append_batch_sent(V, "vs_2", ["file-7", "file-8"])
    log.append_batch_created(V, "vs_2", "vsfb_1", ["file-7", "file-8"])
    log.append_done(V, Item("vs_2", "file-7"), Outcome("attached", 200, 1,
                                                       file_status="completed"))
    log.append_done(V, Item("vs_2", "file-8"), Outcome("failed", None, 0, ApiError(
        "run_refused", "not sent: the run stopped before this file's turn", None),
        retryable=True, uncertain=True))
    log.append_done(A, Item("asst_9", "file-9"), Outcome("failed", 404, 1, ApiError(
        "run_refused", "stopped: the first answers were all the same refusal", "not_found"),
        retryable=True))
    log.append_run_end(counts={"attached": 3, "already_attached": 1, "failed": 2},
                       interrupted=False, exit_code=1)


def test_every_kind_of_line_is_the_bytes_earlier_versions_wrote(tmp_path: Path) -> None:
    """Run-start, sent, done (in place, failed with any text, file status, digest), batch and
    run-end lines: the same bytes as 9baed14 wrote for the same values, `ts` aside."""
    path = tmp_path / "r.jsonl"
    with ResultLog(str(path), "0123456789ab") as log:
        replay(log)
    assert TS.sub(FIXED_TS, path.read_bytes()) == WRITTEN_BY_9BAED14.read_bytes()


def spaced_copy(source: Path, path: Path) -> Path:
    """`source` rewritten line by line by json.dumps with its default spacing."""
    path.write_text("".join(json.dumps(json.loads(line)) + "\n"
                            for line in source.read_text().splitlines()))
    return path


def test_a_log_of_earlier_versions_reads_alike_in_either_spelling(tmp_path: Path) -> None:
    """The 9baed14 log and its json.dumps-spaced rewrite read as the same events, and fold to
    the same resume index both line by line and through the bulk scan."""
    spaced = spaced_copy(WRITTEN_BY_9BAED14, tmp_path / "spaced.jsonl")
    assert spaced.read_bytes().startswith(b'{"event": "run-start", "ts": ')
    compact_events = list(read_log(str(WRITTEN_BY_9BAED14), warn=pytest_fail))
    assert list(read_log(str(spaced), warn=pytest_fail)) == compact_events
    assert len(compact_events) == 21
    for column in (A, V):
        indexes = []
        for path in (WRITTEN_BY_9BAED14, spaced):
            slow, fast = ResumeIndex(column), ResumeIndex(column)
            slow.load(read_log(str(path), warn=pytest_fail))
            fast.load_log(str(path), warn=pytest_fail)
            assert vars(fast) == vars(slow)
            indexes.append(vars(fast))
        assert indexes[0] == indexes[1]


def pytest_fail(message: str) -> None:
    raise AssertionError(f"unexpected warning: {message}")


# Any text, lone surrogates and controls included: what a server's message or an ID read
# from a listing may hold. The log must spell it as json does.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
IDS = st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True) | ANY_TEXT


def encoder_line(event: str, run: str, ts: bytes, fields: dict[str, Any]) -> bytes:
    """The line as json's encoder spells it: the reference the hot path must equal."""
    line = {"event": event, "ts": ts.decode(), "run": run, **fields}
    return json.dumps(line, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode() + b"\n"


@settings(deadline=None, max_examples=300)
@given(owner=IDS, file_id=IDS, op=st.sampled_from(["attach", "update", "detach"]),
       outcome=st.sampled_from(["attached", "already_attached", "updated", "detached",
                                "already_detached", "failed"]),
       status=st.none() | st.integers(100, 599), attempts=st.integers(0, 1000),
       error=st.none() | st.builds(ApiError, st.none() | ANY_TEXT, ANY_TEXT,
                                   st.none() | ANY_TEXT),
       retryable=st.booleans(), uncertain=st.booleans(),
       file_status=st.none() | st.sampled_from(["completed", "in_progress", "failed"]),
       column=st.sampled_from([A, V]),
       digest=st.none() | st.from_regex(r"[0-9a-f]{16}", fullmatch=True),
       run=st.from_regex(r"[0-9a-f]{12}", fullmatch=True))
def test_sent_and_done_lines_are_the_bytes_the_encoder_makes(
    owner: str, file_id: str, op: str, outcome: str, status: int | None, attempts: int,
    error: ApiError | None, retryable: bool, uncertain: bool, file_status: str | None,
    column: str, digest: str | None, run: str,
) -> None:
    """`sent` and `done` lines are spelled without the encoder where no escape is needed, and
    with it where one is (any ID, any message): byte for byte the encoder's line either way,
    one ASCII line, reading back as the values given."""
    item = Item(owner, file_id)
    end = Outcome(outcome, status, attempts, error, retryable=retryable, uncertain=uncertain,
                  file_status=file_status, op=op)
    done: dict[str, Any] = {
        "op": op, column: owner, "file_id": file_id, "outcome": outcome, "status": status,
        "attempts": attempts,
        "error": None if error is None else {"type": error.type, "message": error.message,
                                             "code": error.code},
        "retryable": retryable, "uncertain": uncertain}
    if file_status is not None:
        done["file_status"] = file_status
    if digest is not None:
        done["attributes_digest"] = digest
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "r.jsonl")
        with ResultLog(str(path), run) as log:
            log.append_sent(column, item, op)
            log.append_done(column, item, end, digest)
            log.append_batch_sent(column, owner, [file_id, owner])
            log.append_batch_created(column, owner, file_id, [file_id])
        raw = path.read_bytes()
        assert raw.isascii()
        lines = raw.splitlines(keepends=True)
        ts = [TS.search(line).group(0)[6:-1] for line in lines]  # type: ignore[union-attr]
        assert lines == [
            encoder_line("sent", run, ts[0], {"op": op, column: owner, "file_id": file_id}),
            encoder_line("done", run, ts[1], done),
            encoder_line("batch-sent", run, ts[2], {"op": "attach", column: owner,
                                                     "file_ids": [file_id, owner]}),
            encoder_line("batch-created", run, ts[3], {"op": "attach", column: owner,
                                                        "batch_id": file_id,
                                                        "file_ids": [file_id]}),
        ]
        events = list(read_log(str(path), warn=pytest_fail))
        assert {k: events[1][k] for k in done} == done


def test_a_done_line_records_the_digest_of_the_attributes_it_leaves_in_place(
    tmp_path: Path,
) -> None:
    """The log, not its caller, decides which `done` lines carry `attributes_digest`: those
    whose outcome leaves managed attributes in place; a given digest stands for the item's."""
    path = tmp_path / "r.jsonl"
    managed = Item("vs_1", "file-1", 2, Options(attributes={"team": "a"}))
    plain = Item("vs_1", "file-2")
    with ResultLog(str(path), "r") as log:
        log.append_done(V, managed, Outcome("attached", 200, 1))
        log.append_done(V, managed, Outcome("failed", 500, 3, retryable=True))
        log.append_done(V, plain, Outcome("attached", 200, 1))
        log.append_done(V, plain, Outcome("already_attached", 200, 1), "0123456789abcdef")
    events = list(read_log(str(path), warn=pytest_fail))
    assert [e.get("attributes_digest") for e in events] == [
        attributes_digest({"team": "a"}), None, None, "0123456789abcdef"]
