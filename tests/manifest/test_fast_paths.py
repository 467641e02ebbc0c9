"""The fast paths (bulk manifest blocks, bulk log scan) give exactly what the line-by-line
readers give: the same pairs, the same problems on the same lines, the same resume state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runner.log.reader
import runner.manifest.fastpath
from runner.attributes import Options
from runner.errors import ManifestError
from runner.items import Item, pair_key, pair_keys
from runner.log.reader import scan_log
from runner.log.resume import ResumeIndex
from runner.log.writer import ResultLog
from runner.manifest import Block, ManifestSource, check_manifest, iter_blocks, iter_items
from runner.manifest.csv_format import csv_rows
from runner.manifest.jsonl_format import jsonl_rows
from runner.manifest.reader import iter_rows
from runner.run.tally import Tally
from runner.run.work import Single, iter_work
from tests.log.folds import fold_fast, fold_slowly, same_index, same_refusal

SETTINGS = settings(
    deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
OWNERS = ["asst_a", "asst_b", "vs_c"]
FILES = ["file-1", "file-2", "file-3", "file-4"]


# ---------------------------------------------------------------- keys


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=20))
def test_pair_keys_in_bulk_equal_one_by_one(pairs: list[tuple[str, str]]) -> None:
    """pair_keys (in C) and pair_key (one pair) agree, for any strings, surrogates too."""
    assert pair_keys(pairs) == [pair_key(o, f) for o, f in pairs]


def test_pair_keys_tell_pairs_apart() -> None:
    """Distinct pairs of a big manifest get distinct keys; the separator keeps a|bc from ab|c."""
    pairs = [(f"asst_{i // 20:07d}", f"file-{i:09d}") for i in range(200_000)]
    assert len(set(pair_keys(pairs))) == len(pairs)
    assert pair_key("a", "bc") != pair_key("ab", "c")


# ---------------------------------------------------------------- the log


def event_strategy() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    owner = st.sampled_from(OWNERS)
    file_id = st.sampled_from(FILES)
    column = st.sampled_from(["assistant_id", "vector_store_id"])
    done = st.builds(
        lambda col, o, f, outcome, retryable, uncertain, status, error: (
            "done",
            {col: o, "file_id": f, "outcome": outcome, "status": status, "attempts": 1,
             "error": error, "retryable": retryable, "uncertain": uncertain},
        ),
        column, owner, file_id,
        st.sampled_from(["attached", "already_attached", "failed"]),
        st.booleans(), st.booleans(), st.sampled_from([200, 400, 500, None]),
        st.sampled_from([None, {"type": "t", "message": "caf\u00e9", "code": None}]),
    )
    sent = st.builds(lambda col, o, f: ("sent", {col: o, "file_id": f}), column, owner, file_id)
    batch = st.builds(
        lambda kind, o, fids: (kind, {"vector_store_id": o, "file_ids": fids,
                                      **({"batch_id": "vsfb_1"} if kind == "batch-created"
                                         else {})}),
        st.sampled_from(["batch-sent", "batch-created"]), owner,
        st.lists(st.sampled_from(FILES), max_size=3),
    )
    run = st.sampled_from([("run-start", {"items": 3}), ("run-end", {"exit": 0})])
    return st.one_of(done, done, sent, sent, batch, run)


@SETTINGS
@given(
    events=st.lists(event_strategy(), max_size=40),
    column=st.sampled_from(["assistant_id", "vector_store_id"]),
    chunk=st.sampled_from([64, 300, 1 << 18]),
    torn=st.sampled_from([b"", b'{"event":"do', b"\0\0"]),
)
def test_bulk_log_scan_folds_like_event_by_event(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    events: list[tuple[str, dict[str, Any]]], column: str, chunk: int, torn: bytes,
) -> None:
    """Any log of ours, cut in chunks of any size, with or without a torn tail, folds into
    the same resume state through load_log as through load(read_log(...))."""
    monkeypatch.setattr(runner.log.reader, "SCAN_CHUNK", chunk)
    path = tmp_path_factory.mktemp("log") / "r.jsonl"
    with ResultLog(str(path), "run-1") as log:
        for kind, fields in events:
            log.append(kind, **fields)
    with open(path, "ab") as out:
        out.write(torn)
    slow, slow_warnings = fold_slowly(path, column)
    fast, fast_warnings = fold_fast(path, column)
    same_index(fast, slow)
    assert fast_warnings == slow_warnings


@pytest.mark.parametrize("chunk", [50, 1 << 18])
@pytest.mark.parametrize(
    "bad",
    [b"\n", b"not json\n", b'{"event":"sent"}\n', b'{"event":"sent","run":"r"}\xff\n', b"[]\n"],
)
def test_bulk_log_scan_refuses_a_bad_middle_line_like_read_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, bad: bytes
) -> None:
    """A bad line among fast ones is refused with the same message, naming the same line."""
    monkeypatch.setattr(runner.log.reader, "SCAN_CHUNK", chunk)
    path = tmp_path / "r.jsonl"
    with ResultLog(str(path), "run-1") as log:
        for i in range(5):
            log.append("sent", assistant_id="asst_a", file_id=f"file-{i}")
    with open(path, "ab") as out:
        out.write(bad)
        out.write(b'{"event":"sent","ts":"t","run":"r","assistant_id":"a","file_id":"f"}\n')
    assert f"{path}:6:" in same_refusal(path)


def test_bulk_log_scan_takes_our_lines_in_bulk(tmp_path: Path) -> None:
    """Our sent and done-in-place lines come as tuples; others (run-start, failed) as dicts."""
    path = tmp_path / "r.jsonl"
    with ResultLog(str(path), "run-1") as log:
        log.append("run-start", manifest="m.csv", target="assistant-files", items=2)
        log.append("sent", assistant_id="asst_a", file_id="file-1")
        log.append("done", assistant_id="asst_a", file_id="file-1", outcome="attached",
                   status=200, attempts=1, error=None, retryable=False, uncertain=False)
        log.append("done", assistant_id="asst_a", file_id="file-2", outcome="failed",
                   status=404, attempts=1, error={"type": "x", "message": "m", "code": None},
                   retryable=False, uncertain=False)
    parts = list(scan_log(str(path), "assistant_id", warn=lambda message: None))
    assert isinstance(parts[0], dict)
    assert parts[0]["event"] == "run-start"
    assert parts[1] == [(b"", b"asst_a", b"file-1", b"", b"", b"", b""),
                        (b"done", b"asst_a", b"file-1", b"attached", b"", b"", b"")]
    assert isinstance(parts[2], dict)
    assert parts[2]["outcome"] == "failed"


# ---------------------------------------------------------------- manifests


def slow_parts(source: ManifestSource, owner_column: str) -> list[Item | tuple[int, str]]:
    """What the line-by-line readers say, problems as (line, message)."""
    if source.format == "csv":
        rows = csv_rows(source.display, source.path, owner_column)
    else:
        rows = jsonl_rows(source.display, source.path, owner_column)
    return [row if isinstance(row, Item) else (row.line, row.message) for row in rows]


def fast_parts(source: ManifestSource, owner_column: str) -> list[Item | tuple[int, str]]:
    rows = iter_rows(source, owner_column, "assistants")
    return [row if isinstance(row, Item) else (row.line, row.message) for row in rows]


CSV_LINES = st.sampled_from([
    "asst_a,file-1", "asst_b,file-2", "asst_a,file-1", "asst_c,file-9", "asst_a,file-3\r",
    "", ",", "asst_a,", "asst_a,file 1", '"asst_a",file-4', "asst_a,file-5,extra",
    "asst_a", " asst_b , file-6 ", "asst_\u00e9,file-7", '"asst_a,file-8', "asst_a,file-9,,",
])
CSV_HEADERS = st.sampled_from([
    "assistant_id,file_id", "file_id,assistant_id", "assistant_id,file_id,note",
    "\ufeffassistant_id,file_id", "note,file_id,assistant_id", "assistant_id,file",
    "", "assistant_id, file_id ",
])


@SETTINGS
@given(header=CSV_HEADERS, lines=st.lists(CSV_LINES, max_size=30),
       chunk=st.sampled_from([16, 64, 1 << 15]), final_newline=st.booleans())
def test_csv_fast_path_reads_like_the_line_reader(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, header: str,
    lines: list[str], chunk: int, final_newline: bool,
) -> None:
    """Any CSV, in chunks of any size: the same pairs and problems, on the same lines."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", chunk)
    path = tmp_path_factory.mktemp("csv") / "m.csv"
    text = "\n".join([header, *lines]) + ("\n" if final_newline else "")
    path.write_bytes(text.encode("utf-8"))
    source = ManifestSource(str(path), str(path), "csv")
    assert fast_parts(source, "assistant_id") == slow_parts(source, "assistant_id")


JSONL_LINES = st.sampled_from([
    '{"assistant_id":"asst_a","file_id":"file-1"}',
    '{"assistant_id": "asst_b", "file_id": "file-2"}  ',
    '{"file_id":"file-3","assistant_id":"asst_a"}', "", "   ", "not json",
    '{"assistant_id":"asst_a","file_id":"file 1"}', '{"assistant_id":"asst_a"}',
    '{"assistant_id":"asst_a","file_id":"file-1","assistant_id":"asst_b"}',
    '{"assistant_id":"asst_a","file_id":"file-1"}\r', '{"vector_store_id":"vs_a","file_id":"f"}',
    '{"assistant_id":"asst_\\u0061","file_id":"file-4"}',
])


@SETTINGS
@given(lines=st.lists(JSONL_LINES, max_size=30), chunk=st.sampled_from([16, 64, 1 << 15]),
       bom=st.booleans())
def test_jsonl_fast_path_reads_like_the_line_reader(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    lines: list[str], chunk: int, bom: bool,
) -> None:
    """Any JSONL, in chunks of any size: the same pairs and problems, on the same lines."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", chunk)
    path = tmp_path_factory.mktemp("jsonl") / "m.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "\n".join(lines).encode("utf-8"))
    source = ManifestSource(str(path), str(path), "jsonl")
    assert fast_parts(source, "assistant_id") == slow_parts(source, "assistant_id")


def test_check_counts_repeats_and_owners_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts made in bulk: repeats within and across blocks, distinct files per owner."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", 64)
    rows = [f"asst_{i % 3},file-{i % 7}" for i in range(60)]
    path = tmp_path / "m.csv"
    path.write_text("assistant_id,file_id\n" + "\n".join(rows) + "\n")
    source = ManifestSource(str(path), str(path), "csv")
    stats = check_manifest(source, "assistant_id", "assistants", over_limit=5)
    distinct = {tuple(r.split(",")) for r in rows}
    assert (stats.rows, stats.pairs, stats.duplicates) == (60, len(distinct), 60 - len(distinct))
    assert stats.owners == 3
    per_owner = {o: sum(1 for p in distinct if p[0] == o) for o in ("asst_0", "asst_1", "asst_2")}
    assert stats.max_files == max(per_owner.values())
    assert [item.line for item in iter_items(source, "assistant_id", "assistants")] == list(
        range(2, 62))


def test_a_bad_row_after_fast_blocks_is_named_by_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of plain rows, then a bad one: the problem names the right line."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", 256)
    path = tmp_path / "m.jsonl"
    lines = [json.dumps({"assistant_id": "asst_a", "file_id": f"file-{i}"}) for i in range(3000)]
    lines.append('{"assistant_id": "asst_a", "file_id": "bad id"}')
    path.write_text("\n".join(lines) + "\n")
    source = ManifestSource(str(path), str(path), "jsonl")
    with pytest.raises(ManifestError) as caught:
        check_manifest(source, "assistant_id", "assistants")
    assert caught.value.problems[0].line == 3001


# ---------------------------------------------------------------- planning a rerun


@SETTINGS
@given(
    events=st.lists(event_strategy(), max_size=40),
    rows=st.lists(st.tuples(st.sampled_from(OWNERS), st.sampled_from(FILES)), max_size=30),
    chunk=st.sampled_from([16, 64, 1 << 15]),
    batch_size=st.sampled_from([0, 2]),
    retry_failed=st.booleans(),
)
def test_planning_whole_blocks_plans_like_item_by_item(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    events: list[tuple[str, dict[str, Any]]], rows: list[tuple[str, str]], chunk: int,
    batch_size: int, retry_failed: bool,
) -> None:
    """A rerun skips a manifest block whose pairs the log has all done, in bulk: the same
    work, in the same order, and the same counts as planning each item, for any log and any
    manifest (repeats included, which turn the bulk skip off)."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", chunk)
    folder = tmp_path_factory.mktemp("plan")
    log_path, manifest = folder / "r.jsonl", folder / "m.csv"
    with ResultLog(str(log_path), "run-1") as log:
        for kind, fields in events:
            log.append(kind, **fields)
    manifest.write_text("vector_store_id,file_id\n" + "".join(f"{o},{f}\n" for o, f in rows))
    source = ManifestSource(str(manifest), str(manifest), "csv")
    stats = check_manifest(source, "vector_store_id", "vector_stores")
    plans = []
    for parts in (iter_items(source, "vector_store_id", "vector_stores"),
                  iter_blocks(source, "vector_store_id", "vector_stores")):
        index = ResumeIndex("vector_store_id", expect_repeats=stats.duplicates > 0)
        index.load_log(str(log_path), warn=lambda _: None)
        tally = Tally(pairs=stats.pairs)
        work = list(iter_work(parts, index, tally, retry_failed=retry_failed,
                              batch_size=batch_size))
        plans.append((work, tally))
    assert plans[1] == plans[0]


def test_a_rerun_with_every_pair_done_skips_blocks_whole(tmp_path: Path) -> None:
    """The bulk skip is taken (no item is made) when the log has every pair of a block."""
    pairs = [(f"asst_{i // 20:03d}", f"file-{i:05d}") for i in range(5000)]
    manifest, log_path = tmp_path / "m.csv", tmp_path / "r.jsonl"
    manifest.write_text("assistant_id,file_id\n" + "".join(f"{o},{f}\n" for o, f in pairs))
    with ResultLog(str(log_path), "run-1") as log:
        for owner, file_id in pairs[:-1]:
            log.append("done", assistant_id=owner, file_id=file_id, outcome="attached",
                       status=200, attempts=1, error=None, retryable=False, uncertain=False)
    source = ManifestSource(str(manifest), str(manifest), "csv")
    index = ResumeIndex("assistant_id", expect_repeats=False)
    index.load_log(str(log_path), warn=lambda _: None)
    blocks = list(iter_blocks(source, "assistant_id", "assistants"))
    assert sum(len(b.pairs) for b in blocks if isinstance(b, Block)) == len(pairs)
    assert sum(index.all_in_place(b.pairs) for b in blocks if isinstance(b, Block)) == len(
        blocks) - 1  # the last block holds the one pair not done
    tally = Tally(pairs=len(pairs))
    work = list(iter_work(iter(blocks), index, tally, retry_failed=False, batch_size=0))
    assert [unit.item.file_id for unit in work if isinstance(unit, Single)] == ["file-04999"]
    assert tally.done_earlier == len(pairs) - 1


# ---------------------------------------------------------------- options and the fast path


def test_csv_fast_path_leaves_option_cells_to_the_line_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An `attributes` cell of `{}` (clear them) is not an ignored column: the pair keeps its
    options, in whichever chunk it stands; rows with empty option cells stay plain Blocks."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", 64)
    rows = [f"vs_1,file-{i},," for i in range(40)]
    rows[30] = "vs_1,file-30,{},"
    path = tmp_path / "m.csv"
    path.write_text("vector_store_id,file_id,attributes,chunking_strategy\n"
                    + "\n".join(rows) + "\n")
    source = ManifestSource(str(path), str(path), "csv")
    parts = list(iter_blocks(source, "vector_store_id", "vector_stores"))
    assert isinstance(parts[0], Block)  # the plain rows before it went the fast way
    items = [item for part in parts
             for item in (part.items() if isinstance(part, Block) else [part])]
    assert [item.line for item in items] == list(range(2, 42))
    assert items[30].options == Options({}, None)
    assert all(item.options is None for item in items if item.file_id != "file-30")


def test_plain_manifests_still_take_the_fast_path(tmp_path: Path) -> None:
    """Plain CSV and JSONL come as Blocks (pairs only), options columns or not."""
    csv_path, jsonl_path = tmp_path / "m.csv", tmp_path / "m.jsonl"
    csv_path.write_text("vector_store_id,file_id,attributes\n"
                        + "".join(f"vs_1,file-{i},\n" for i in range(500)))
    jsonl_path.write_text("".join(json.dumps({"vector_store_id": "vs_1", "file_id": f"f-{i}"})
                                  + "\n" for i in range(500)))
    for path, fmt in ((csv_path, "csv"), (jsonl_path, "jsonl")):
        parts = list(iter_blocks(ManifestSource(str(path), str(path), fmt), "vector_store_id",
                                 "vector_stores"))
        assert all(isinstance(part, Block) for part in parts)
        assert sum(len(part.pairs) for part in parts if isinstance(part, Block)) == 500
