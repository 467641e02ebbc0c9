"""Any valid log resumes alike: lines as json.dumps spaces them by default (a log rewritten
by a script), compact lines, mixtures of both, other spacings and key orders, with and
without `op`, with `updated` and digests, fold into the same resume index through the bulk
scan as through `load(read_log(...))`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runner.items
import runner.log.reader
from runner.items import ascii_pair_keys, pair_keys
from runner.log.reader import scan_log
from tests.log.folds import fold_fast, fold_slowly, same_index, same_refusal

SETTINGS = settings(
    deadline=None, max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
OWNERS = ["asst_a", "asst_b", "vs_c"]
FILES = ["file-1", "file-2", "file-3", "file-4"]
DIGESTS = ["0123456789abcdef", "fedcba9876543210"]

# How a line is written: ours, json.dumps's default, and two that only json reads.
FORMS = {
    "compact": lambda event: json.dumps(event, separators=(",", ":")),
    "spaced": json.dumps,
    "wide": lambda event: json.dumps(event, separators=(" ,", " : ")),
    "reordered": lambda event: json.dumps(dict(reversed(event.items()))),
}


def pair_event() -> st.SearchStrategy[dict[str, Any]]:
    """A sent or done line's fields in the writer's key order, `op` or not."""
    column = st.sampled_from(["assistant_id", "vector_store_id"])
    op = st.sampled_from([None, "attach", "update"])

    def sent(col: str, o: str, f: str, op: str | None) -> dict[str, Any]:
        return {"event": "sent", "ts": "2026-11-25T12:00:00.000Z", "run": "r1",
                **({"op": op} if op else {}), col: o, "file_id": f}

    def done(col: str, o: str, f: str, op: str | None, outcome: str, status: int | None,
             attempts: int, error: dict[str, Any] | None, retryable: bool, uncertain: bool,
             file_status: str | None, digest: str | None) -> dict[str, Any]:
        event = {**sent(col, o, f, op), "event": "done", "outcome": outcome, "status": status,
                 "attempts": attempts, "error": error, "retryable": retryable,
                 "uncertain": uncertain}
        if file_status is not None:
            event["file_status"] = file_status
        if digest is not None:
            event["attributes_digest"] = digest
        return event

    owner, file_id = st.sampled_from(OWNERS), st.sampled_from(FILES)
    return st.one_of(
        st.builds(sent, column, owner, file_id, op),
        st.builds(
            done, column, owner, file_id, op,
            st.sampled_from(["attached", "already_attached", "updated", "failed"]),
            st.sampled_from([200, 404, 500, None]), st.sampled_from([0, 1, 3]),
            st.sampled_from([None, {"type": "t", "message": "caf\u00e9", "code": None}]),
            st.booleans(), st.booleans(), st.sampled_from([None, "completed"]),
            st.sampled_from([None, *DIGESTS]),
        ),
    )


def other_event() -> st.SearchStrategy[dict[str, Any]]:
    batch = st.builds(
        lambda kind, o, fids: {"event": kind, "ts": "t", "run": "r1", "vector_store_id": o,
                               "file_ids": fids,
                               **({"batch_id": "vsfb_1"} if kind == "batch-created" else {})},
        st.sampled_from(["batch-sent", "batch-created"]), st.sampled_from(OWNERS),
        st.lists(st.sampled_from(FILES), max_size=3),
    )
    run = st.sampled_from([
        {"event": "run-start", "ts": "t", "run": "r1", "items": 3},
        {"event": "run-end", "ts": "t", "run": "r1", "exit": 0},
    ])
    return st.one_of(batch, run)


def write(path: Path, lines: list[tuple[str, dict[str, Any]]], torn: bytes = b"") -> None:
    path.write_bytes(b"".join(FORMS[form](event).encode() + b"\n" for form, event in lines)
                     + torn)


@SETTINGS
@given(
    lines=st.lists(st.tuples(st.sampled_from(["compact", "spaced"]),
                             st.one_of(pair_event(), pair_event(), other_event())),
                   max_size=40),
    column=st.sampled_from(["assistant_id", "vector_store_id"]),
    chunk=st.sampled_from([64, 300, 1 << 18]),
    torn=st.sampled_from([b"", b'{"event":"do', b'{"event": "done", "ts"', b"\0\0"]),
)
def test_compact_spaced_and_mixed_logs_fold_like_event_by_event(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    lines: list[tuple[str, dict[str, Any]]], column: str, chunk: int, torn: bytes,
) -> None:
    """A log of compact lines, json.dumps's spaced lines, or both mixed, in chunks of any
    size, torn or not: the same index (digests and `updated` marks too) either way."""
    monkeypatch.setattr(runner.log.reader, "SCAN_CHUNK", chunk)
    path = tmp_path_factory.mktemp("log") / "r.jsonl"
    write(path, lines, torn)
    slow, slow_warnings = fold_slowly(path, column)
    fast, fast_warnings = fold_fast(path, column)
    same_index(fast, slow)
    assert fast_warnings == slow_warnings


@SETTINGS
@given(
    lines=st.lists(st.tuples(st.sampled_from(list(FORMS)), st.one_of(pair_event(),
                                                                    other_event())),
                   max_size=30),
    chunk=st.sampled_from([64, 1 << 18]),
)
def test_any_spacing_or_key_order_folds_like_event_by_event(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    lines: list[tuple[str, dict[str, Any]]], chunk: int,
) -> None:
    """Other spacings and key orders are valid JSON too: read (by json) to the same index."""
    monkeypatch.setattr(runner.log.reader, "SCAN_CHUNK", chunk)
    path = tmp_path_factory.mktemp("log") / "r.jsonl"
    write(path, lines)
    same_index(fold_fast(path, "assistant_id")[0], fold_slowly(path, "assistant_id")[0])


def test_spaced_lines_take_the_fast_path(tmp_path: Path) -> None:
    """json.dumps's default spacing of our sent and done lines comes in bulk, as rows."""
    path = tmp_path / "r.jsonl"
    sent = {"event": "sent", "ts": "t", "run": "r1", "op": "attach", "assistant_id": "asst_a",
            "file_id": "file-1"}
    done = {**sent, "event": "done", "outcome": "updated", "status": 200, "attempts": 1,
            "error": None, "retryable": False, "uncertain": False,
            "attributes_digest": DIGESTS[0]}
    write(path, [("spaced", sent), ("spaced", done)])
    parts = list(scan_log(str(path), "assistant_id", warn=lambda message: None))
    assert parts == [[(b"", b"asst_a", b"file-1", b"", b"", b"", b""),
                      (b"done", b"asst_a", b"file-1", b"updated", DIGESTS[0].encode(), b"", b"")]]


@pytest.mark.parametrize("chunk", [50, 1 << 18])
@pytest.mark.parametrize("bad", [
    b"\n", b"not json\n", b'{"event": "sent"}\n', b'{"event": "sent", "run": "r"}\xff\n',
    b'{"event": "done", "ts": "t", "run": "r", "assistant_id": "a", "file_id": "f", '
    b'"outcome": "attached", "status": 200, "attempts": 01, "error": null, '
    b'"retryable": false, "uncertain": false}\n',
])
def test_a_bad_line_among_spaced_ones_is_refused_like_read_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, bad: bytes
) -> None:
    """A corrupt middle line of a spaced log: the same error, naming the same line."""
    monkeypatch.setattr(runner.log.reader, "SCAN_CHUNK", chunk)
    path = tmp_path / "r.jsonl"
    sent = [("spaced", {"event": "sent", "ts": "t", "run": "r", "assistant_id": "asst_a",
                        "file_id": f"file-{i}"}) for i in range(5)]
    write(path, sent, bad + json.dumps(sent[0][1]).encode() + b"\n")
    assert f"{path}:6:" in same_refusal(path)


def test_a_line_longer_than_a_chunk_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch line of many file IDs, longer than the chunk read: read whole, then on."""
    monkeypatch.setattr(runner.log.reader, "SCAN_CHUNK", 64)
    path = tmp_path / "r.jsonl"
    batch = {"event": "batch-created", "ts": "t", "run": "r", "vector_store_id": "vs_c",
             "file_ids": [f"file-{i}" for i in range(50)], "batch_id": "vsfb_1"}
    done = {"event": "done", "ts": "t", "run": "r", "vector_store_id": "vs_c",
            "file_id": "file-3", "outcome": "attached", "status": 200, "attempts": 1,
            "error": None, "retryable": False, "uncertain": False}
    write(path, [("compact", batch), ("spaced", done)], b'{"event":"se')
    slow, slow_warnings = fold_slowly(path, "vector_store_id")
    fast, fast_warnings = fold_fast(path, "vector_store_id")
    same_index(fast, slow)
    assert fast_warnings == slow_warnings == [
        f"{path}:3: the last line is incomplete (a run was cut off while writing); it is "
        "ignored and will be cut off by the next run"]
    assert len(fast.batch_of) == 49


@pytest.mark.parametrize("hash_alike", [True, False])
@given(pairs=st.lists(st.tuples(st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
                                st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)),
                      max_size=20))
def test_keys_of_pairs_read_as_bytes_equal_their_str_keys(
    hash_alike: bool, pairs: list[tuple[str, str]]
) -> None:
    """A pair read from the log as bytes has the key of the same pair as str (the
    manifest's), whether or not the interpreter hashes ASCII bytes and str alike."""
    as_bytes = [(owner.encode(), file_id.encode()) for owner, file_id in pairs]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner.items, "_BYTES_HASH_LIKE_STR", hash_alike)
        assert ascii_pair_keys(as_bytes) == pair_keys(pairs)
