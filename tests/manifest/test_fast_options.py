"""The fast path with per-pair data: rows that give attributes and chunking_strategy are read in
bulk (runner/manifest/block.py) exactly as the line-by-line readers read them, and a rerun
settles a block of them (the digests compared in bulk, or the check's verdict passing it over
unread) exactly as planning each pair would."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runner.manifest.fastpath
from runner.attributes import (
    canonical,
    canonical_texts,
    digest,
    digest_text,
    digest_value,
    digest_values_of,
    fingerprints_of,
)
from runner.errors import ManifestError, UsageError
from runner.items import Item
from runner.log.resume import ResumeIndex
from runner.log.writer import ResultLog
from runner.manifest import (
    Block,
    ManifestSource,
    ManifestStats,
    check_manifest,
    iter_blocks,
    iter_items,
)
from runner.manifest.csv_format import csv_rows
from runner.manifest.jsonl_format import jsonl_rows
from runner.manifest.reader import iter_rows
from runner.requests.outcomes import Outcome
from runner.run.tally import Tally
from runner.run.work import block_settles, block_vouches, iter_work

SETTINGS = settings(
    deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VS = ("vector_store_id", "vector_stores")

# Attribute objects as JSON text: the plain kind the fast path takes, and every kind it leaves
# to the line reader (which then names the problem, or reads it the slow way).
ATTRIBUTES = [
    '{"team": "a", "year": 2021}', '{"year":2021.0,"public":true}', "{}", '{ "x": "y" }',
    '{"title": "caf\\u00e9 \\"q\\" \\\\ /"}', '{"b": false, "a": -0.5}', '{"n": 123456789012345}',
    '{"k": "\u00e9t\u00e9"}', '{"a": 1, "a": 2}', '{"a": null}', '{"a": [1]}', '{"a": {"b": 1}}',
    '{"a": 1e3}', '{"a": 12345678901234567}', '{"a": "\\ud800"}', '{"": 1}', '{"a": NaN}',
    '{"' + "k" * 65 + '": 1}', '{"s": "' + "x" * 513 + '"}', '{"s": "' + "x" * 512 + '"}',
    '{"s": "' + "\\u00e9" * 200 + '"}', '{"s": "' + "\\u00e9" * 513 + '"}', "[]", '"text"',
    "{" + ", ".join(f'"k{i}": {i}' for i in range(17)) + "}",
    "{" + ", ".join(f'"k{i}": {i}' for i in range(16)) + "}", '{"t": "a},{b"}',
    '{"q\\"": 1}', '{"v": "a\\":1"}',
]
CHUNKING = [
    '{"type": "auto"}', '{"type":"static","static":{"max_chunk_size_tokens":800,'
    '"chunk_overlap_tokens":400}}', '{"type": "static"}', '{"type": "auto", "type": "auto"}',
    '{"type": "other"}', "null",
]


def slow_parts(source: ManifestSource) -> list[Item | tuple[int, str]]:
    rows = (csv_rows(source.display, source.path, VS[0]) if source.format == "csv"
            else jsonl_rows(source.display, source.path, VS[0]))
    return [row if isinstance(row, Item) else (row.line, row.message) for row in rows]


def fast_parts(source: ManifestSource) -> list[Item | tuple[int, str]]:
    rows = [row if isinstance(row, Item) else (row.line, row.message)
            for row in iter_rows(source, *VS)]
    for row in rows:  # a block's Items carry their canonical text, made in bulk: the same
        if isinstance(row, Item) and row.options is not None:
            assert row.options.canonical() == canonical(row.options.attributes)
    return rows


def csv_cell(text: str | None) -> str:
    return "" if text is None else '"' + text.replace('"', '""') + '"'


ROW = st.tuples(st.sampled_from(["vs_a", "vs_b"]), st.sampled_from(["file-1", "file-2", "f-3"]),
                st.one_of(st.none(), st.sampled_from(ATTRIBUTES)),
                st.one_of(st.none(), st.sampled_from(CHUNKING)))


@SETTINGS
@given(rows=st.lists(ROW, max_size=25), chunk=st.sampled_from([64, 256, 1 << 15]),
       swap=st.booleans())
def test_csv_rows_with_options_read_like_the_line_reader(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[str, str, str | None, str | None]], chunk: int, swap: bool,
) -> None:
    """Any attributes and chunking cells, in chunks of any size: the same Items (options
    included) and the same problems, on the same lines."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", chunk)
    path = tmp_path_factory.mktemp("csv") / "m.csv"
    header = ("file_id,note,vector_store_id,attributes,chunking_strategy" if swap
              else "vector_store_id,file_id,attributes,chunking_strategy")
    lines = [(f"{f},x,{o}" if swap else f"{o},{f}") + f",{csv_cell(a)},{csv_cell(c)}"
             for o, f, a, c in rows]
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    source = ManifestSource(str(path), str(path), "csv")
    assert fast_parts(source) == slow_parts(source)


@SETTINGS
@given(rows=st.lists(ROW, max_size=25), chunk=st.sampled_from([64, 256, 1 << 15]),
       spaced=st.booleans())
def test_jsonl_rows_with_options_read_like_the_line_reader(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[str, str, str | None, str | None]], chunk: int, spaced: bool,
) -> None:
    """The same for JSONL objects that carry attributes and chunking_strategy."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", chunk)
    path = tmp_path_factory.mktemp("jsonl") / "m.jsonl"
    sep = ", " if spaced else ","
    lines = []
    for owner, file_id, attributes, chunking in rows:
        line = f'{{"vector_store_id": "{owner}"{sep}"file_id": "{file_id}"'
        if attributes is not None:
            line += f'{sep}"attributes": {attributes}'
        if chunking is not None:
            line += f'{sep}"chunking_strategy": {chunking}'
        lines.append(line + "}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = ManifestSource(str(path), str(path), "jsonl")
    assert fast_parts(source) == slow_parts(source)


def test_attributed_rows_come_as_blocks(tmp_path: Path) -> None:
    """Tool-written attributes (json.dumps, in a CSV cell or on the object) stay on the fast
    path: Blocks all the way, their options the line reader's."""
    csv_path, jsonl_path = tmp_path / "m.csv", tmp_path / "m.jsonl"
    attrs = [{"team": f"t{i % 3}", "year": 2000 + i, "public": i % 2 == 0,
              "title": f"caf\u00e9 {i}"} for i in range(2000)]
    csv_path.write_text("vector_store_id,file_id,attributes\n" + "".join(
        f"vs_1,file-{i},{csv_cell(json.dumps(a))}\n" for i, a in enumerate(attrs)))
    jsonl_path.write_text("".join(json.dumps({"vector_store_id": "vs_1", "file_id": f"file-{i}",
                                              "attributes": a}) + "\n"
                                  for i, a in enumerate(attrs)))
    for path, fmt in ((csv_path, "csv"), (jsonl_path, "jsonl")):
        parts = list(iter_blocks(ManifestSource(str(path), str(path), fmt), *VS))
        assert all(isinstance(part, Block) for part in parts)
        items = [item for part in parts if isinstance(part, Block) for item in part.items()]
        assert [item.options.attributes for item in items if item.options] == attrs


@given(st.lists(st.dictionaries(
    st.text(min_size=1, max_size=5),
    st.one_of(st.text(max_size=8), st.integers(-2**53, 2**53), st.booleans(),
              st.floats(allow_nan=False, allow_infinity=False).filter(
                  lambda f: not f.is_integer())), max_size=4), max_size=12))
def test_digests_in_bulk_equal_one_by_one(sets: list[dict[str, object]]) -> None:
    """Digests in bulk (one encoder call for a block) are digest_value of each set, whatever the
    strings hold ("},{" included)."""
    try:
        expected = [digest_value(s) for s in sets]  # type: ignore[arg-type]
    except UnicodeEncodeError:  # a lone surrogate: no digest either way
        return
    assert digest_values_of(canonical_texts(sets)) == expected  # type: ignore[arg-type]


@given(st.lists(st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.one_of(st.text(max_size=10), st.integers(-2**70, 2**70), st.booleans()), max_size=5),
    max_size=12))
def test_canonical_texts_without_floats_are_canonical(sets: list[dict[str, object]]) -> None:
    """Sets with no float are spelled in bulk by another encoder (orjson): the texts are
    still exactly `canonical`'s (the log's digests depend on it), whatever the keys and strings
    hold (control characters, non-BMP, quotes) and however large the integers."""
    expected = [canonical(s) for s in sets]  # type: ignore[arg-type]
    assert canonical_texts(sets) == expected  # type: ignore[arg-type]


# ---------------------------------------------------------------- a rerun settles blocks


DIGEST_CHOICES = [None, '{"team": "a", "year": 2021}', '{"year": 2021.0, "team": "a"}', "{}",
                  '{"team": "b"}']


def write_log(path: Path, done: list[tuple[str, str, str | None]],
              written: list[bool] | None = None,
              fingerprint: Callable[[list[str]], list[int]] = fingerprints_of) -> None:
    """`done` lines; `written`: which record the fingerprint of their attributes' text as a
    CSV cell holds it (quotes doubled), as a run from such a manifest does (`fingerprint`:
    made as it makes them)."""
    with ResultLog(str(path), "run-1") as log:
        for at, (owner, file_id, attributes) in enumerate(done):
            extra = ({} if attributes is None
                     else {"attributes_digest": digest(json.loads(attributes))})
            if written and written[at] and attributes is not None:
                cell = csv_cell(attributes)[1:-1]  # as the fast path captures it
                extra["attributes_written"] = digest_text(fingerprint([cell])[0])
            log.append("done", vector_store_id=owner, file_id=file_id, outcome="attached",
                       status=200, attempts=1, error=None, retryable=False, uncertain=False,
                       **extra)


@SETTINGS
@given(
    pairs=st.lists(st.tuples(st.sampled_from(["vs_a", "vs_b"]), st.integers(0, 11)),
                   max_size=30),
    wanted=st.lists(st.sampled_from(DIGEST_CHOICES), min_size=12, max_size=12),
    logged=st.lists(st.tuples(st.sampled_from(["vs_a", "vs_b"]),
                              st.sampled_from([f"file-{i}" for i in range(12)]),
                              st.sampled_from(DIGEST_CHOICES)), max_size=30),
    chunk=st.sampled_from([64, 128, 1 << 15]),
    batch_size=st.sampled_from([0, 2]),
    written=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_settling_blocks_plans_like_item_by_item(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    pairs: list[tuple[str, int]], wanted: list[str | None],
    logged: list[tuple[str, str, str | None]], chunk: int, batch_size: int,
    written: list[bool],
) -> None:
    """A rerun of an attributed manifest, four ways: each pair planned alone; blocks whose
    digests all match the log's skipped in bulk; blocks the check found settled passed over
    unread; and the same with the check settling blocks by their texts as written, where the
    log recorded them. The same work, in the same order, and the same counts."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", chunk)
    # A repeated pair keeps its attributes (a repeat with others is refused by the check).
    manifest_rows = [(owner, f"file-{n}", wanted[n]) for owner, n in pairs]
    folder = tmp_path_factory.mktemp("settle")
    manifest, log_path = folder / "m.csv", folder / "r.jsonl"
    manifest.write_text("vector_store_id,file_id,attributes\n" + "".join(
        f"{o},{f},{csv_cell(a)}\n" for o, f, a in manifest_rows))
    write_log(log_path, logged, written)
    source = ManifestSource(str(manifest), str(manifest), "csv")
    plans = []
    for way in ("items", "blocks", "skips", "vouched"):
        index = ResumeIndex(VS[0])
        index.load_log(str(log_path), warn=lambda _: None)
        stats = check_manifest(source, *VS, settles=block_settles(index),
                               vouches=block_vouches(index) if way == "vouched" else None)
        index.expect_repeats = stats.duplicates > 0
        tally = Tally(pairs=stats.pairs)
        if way == "items":
            parts = iter_items(source, *VS)
        elif way == "blocks":
            parts = iter_blocks(source, *VS)
        else:
            tally.done_earlier = stats.settled
            parts = iter_blocks(source, *VS, stats.skips, stats.identity)
        work = list(iter_work(parts, index, tally, retry_failed=False, batch_size=batch_size))
        plans.append((work, tally))
    assert plans[1] == plans[0]
    assert plans[2] == plans[0]
    assert plans[3] == plans[0]


def checked_with_log(folder: Path, rows: list[tuple[str, str, str]],
                     logged: list[tuple[str, str, str | None]],
                     ) -> tuple[ManifestSource, ManifestStats]:
    """A CSV of `rows` (attributes as JSON), a log with `logged` done, and the check of the
    manifest given the log's verdicts, as `run` makes it."""
    manifest, log_path = folder / "m.csv", folder / "r.jsonl"
    manifest.write_text("vector_store_id,file_id,attributes\n" + "".join(
        f"{o},{f},{csv_cell(a)}\n" for o, f, a in rows))
    write_log(log_path, logged)
    source = ManifestSource(str(manifest), str(manifest), "csv")
    index = ResumeIndex(VS[0])
    index.load_log(str(log_path), warn=lambda _: None)
    return source, check_manifest(source, *VS, settles=block_settles(index))


def test_a_converged_rerun_reads_no_block_twice(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pair done with its attributes: the check finds every block settled, and the run
    pass reads none of the manifest (the reader is given every block's range to skip)."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", 256)
    rows = [("vs_a", f"file-{i}", f'{{"team": "a", "year": {i}}}') for i in range(300)]
    source, stats = checked_with_log(tmp_path, rows, list(rows))
    assert stats.settled == 300
    header = len("vector_store_id,file_id,attributes\n")
    size = os.path.getsize(source.path)
    assert stats.skips == {header: (size, 300, None)}  # one run, merged
    assert list(iter_blocks(source, *VS, stats.skips, stats.identity)) == []
    # One attribute changed: its block is read again and planned pair by pair.
    source, stats = checked_with_log(
        tmp_path, rows, [*rows[:-1], ("vs_a", "file-299", '{"team": "b"}')])
    assert 0 < stats.settled < 300
    parts = list(iter_blocks(source, *VS, stats.skips, stats.identity))
    assert sum(len(p.pairs) for p in parts if isinstance(p, Block)) == 300 - stats.settled


def _another_hash(texts: list[str]) -> list[int]:
    """Fingerprints of neither kind this version knows (one bit off XXH3's)."""
    return [value ^ 1 for value in fingerprints_of(texts)]


@pytest.mark.parametrize(("fingerprint", "vouched_rows"), [
    (fingerprints_of, 60),  # this version's (XXH3)
    (digest_values_of, 60),  # versions before 2026-12-06 wrote BLAKE2b fingerprints
    (_another_hash, 0),
])
def test_fingerprints_of_this_version_and_earlier_ones_vouch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    fingerprint: Callable[[list[str]], list[int]], vouched_rows: int,
) -> None:
    """A log's fingerprints of attributes as written settle blocks unread whether this
    version wrote them or an earlier one (BLAKE2b then): an upgrade keeps a converged rerun
    on its fast path. Fingerprints of any other kind vouch for nothing: each block is then
    settled by its digests instead, read and spelled, and nothing is planned all the same."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", 512)
    rows = [("vs_a", f"file-{i}", f'{{"team": "t{i % 3}", "year": {2000 + i}}}')
            for i in range(60)]
    manifest, log_path = tmp_path / "m.csv", tmp_path / "r.jsonl"
    manifest.write_text("vector_store_id,file_id,attributes\n" + "".join(
        f"{o},{f},{csv_cell(a)}\n" for o, f, a in rows))
    write_log(log_path, list(rows), [True] * len(rows), fingerprint)
    index = ResumeIndex(VS[0])
    index.load_log(str(log_path), warn=lambda _: None)
    vouches = block_vouches(index)
    vouched: list[Block] = []

    def watching(block: Block) -> bool:
        verdict = vouches(block)
        if verdict:
            vouched.append(block)
        return verdict
    source = ManifestSource(str(manifest), str(manifest), "csv")
    stats = check_manifest(source, *VS, settles=block_settles(index), vouches=watching)
    assert stats.settled == 60
    assert sum(len(block.pairs) for block in vouched) == vouched_rows
    assert all(block._objects is None for block in vouched)  # never read


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "yaml"])
def test_a_rerun_settles_blocks_by_their_texts_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """The log a run writes from a fast-path manifest records each pair's attributes as
    written: the rerun's check settles every block by them, none read (no JSON parsed). A row
    whose text changed but not its attributes (keys in another order) is settled by the exact
    digests, its block read; a changed attribute is planned as an update."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", 512)
    rows = [("vs_a", f"file-{i}", f'{{"team": "t{i % 3}", "year": {2000 + i}}}')
            for i in range(60)]

    def write_manifest(rows: list[tuple[str, str, str]]) -> ManifestSource:
        path = tmp_path / f"m.{fmt}"
        if fmt == "csv":
            path.write_text("vector_store_id,file_id,attributes\n" + "".join(
                f"{o},{f},{csv_cell(a)}\n" for o, f, a in rows))
        elif fmt == "jsonl":
            path.write_text("".join(f'{{"vector_store_id": "{o}", "file_id": "{f}", '
                                    f'"attributes": {a}}}\n' for o, f, a in rows))
        else:
            path.write_text("vector_stores:\n  vs_a:\n" + "".join(
                f"    - {{file_id: {f}, attributes: {a}}}\n" for _, f, a in rows))
        return ManifestSource(str(path), str(path), fmt)

    log_path = tmp_path / "r.jsonl"
    with ResultLog(str(log_path), "run-1") as log:  # what the run writes for each pair
        for item in iter_rows(write_manifest(rows), *VS):
            assert isinstance(item, Item)
            log.append_done(VS[0], item, Outcome("attached", 200, 1))

    def rerun(rows: list[tuple[str, str, str]]) -> tuple[list[Block], ManifestStats, int]:
        source = write_manifest(rows)
        index = ResumeIndex(VS[0])
        index.load_log(str(log_path), warn=lambda _: None)
        vouched: list[Block] = []
        vouches = block_vouches(index)

        def watching(block: Block) -> bool:
            verdict = vouches(block)
            if verdict:
                vouched.append(block)
            return verdict
        stats = check_manifest(source, *VS, settles=block_settles(index), vouches=watching)
        index.expect_repeats = False
        tally = Tally(pairs=stats.pairs, done_earlier=stats.settled)
        work = list(iter_work(iter_blocks(source, *VS, stats.skips, stats.identity), index,
                              tally, retry_failed=False, batch_size=0))
        return vouched, stats, len(work)

    vouched, stats, work = rerun(rows)
    assert stats.settled == 60
    assert work == 0
    assert sum(len(block.pairs) for block in vouched) == 60
    assert all(block._objects is None for block in vouched)  # never read
    reordered = [*rows[:30], ("vs_a", "file-30", '{"year": 2030, "team": "t0"}'), *rows[31:]]
    vouched, stats, work = rerun(reordered)
    assert stats.settled == 60
    assert work == 0
    assert 0 < sum(len(block.pairs) for block in vouched) < 60
    changed = [*rows[:30], ("vs_a", "file-30", '{"team": "t9", "year": 2030}'), *rows[31:]]
    vouched, stats, work = rerun(changed)
    assert stats.settled < 60
    assert work == 1


def test_a_manifest_changed_after_its_check_stops_the_run(tmp_path: Path) -> None:
    """The runs to skip are byte ranges of the file checked: a file changed since is refused
    (one line, before anything is read), never skipped by stale offsets."""
    rows = [("vs_a", f"file-{i}", '{"team": "a"}') for i in range(50)]
    source, stats = checked_with_log(tmp_path, rows, list(rows))
    assert stats.skips
    manifest = Path(source.path)
    with open(manifest, "a") as out:
        out.write("vs_a,file-new,\n")
    with pytest.raises(UsageError, match="changed while the run was reading it"):
        list(iter_blocks(source, *VS, stats.skips, stats.identity))
    os.utime(manifest)  # and no stale verdict when nothing is skipped
    assert len(list(iter_items(source, *VS))) == 51


def test_a_repeat_with_other_attributes_is_named_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeats are found by a second pass over the repeated pairs alone, blocks included:
    the clash names both lines, as before."""
    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", 128)
    lines = [f'vs_a,file-{i},"{{""n"": {i}}}"' for i in range(40)]
    lines.append('vs_a,file-3,"{""n"": 99}"')
    lines.append('vs_a,file-4,"{""n"": 4}"')  # the same options: a plain repeat
    path = tmp_path / "m.csv"
    path.write_text("vector_store_id,file_id,attributes\n" + "\n".join(lines) + "\n")
    source = ManifestSource(str(path), str(path), "csv")
    with pytest.raises(ManifestError) as caught:
        check_manifest(source, *VS)
    assert [(p.line, p.message.split(";")[0]) for p in caught.value.problems] == [
        (42, "vs_a/file-3 is repeated with other options than on line 5")]


# ---------------------------------------------------------------- grouped YAML


YAML_IDS = ["file-1", "file-2", "f_3", "yes", "No", "123", "no-1", "0x1F", "null", "a" * 129]
YAML_ENTRIES = st.one_of(
    st.sampled_from(YAML_IDS),
    st.builds(lambda f, a, c: "{file_id: " + f + (f", attributes: {a}" if a else "")
              + (f", chunking_strategy: {c}" if c else "") + "}",
              st.sampled_from(YAML_IDS[:3]), st.one_of(st.none(), st.sampled_from(ATTRIBUTES)),
              st.one_of(st.none(), st.sampled_from(CHUNKING[:3]))),
    st.sampled_from(["{file_id: file-1, attributes: {team: a}}", "file-1  # a comment",
                     "{file_id: file-9, attributes: {}}", "'file-1'", "{file_id: file-1, x: 1}",
                     "[file-1]", "file-1 ", "&a file-1", "\tfile-1"]),
)
YAML_GROUPS = st.sampled_from(["vs_a", "vs_b", "vs_c", "yes", "123", "vs_\u00e9"])


@SETTINGS
@given(groups=st.lists(st.tuples(YAML_GROUPS, st.lists(YAML_ENTRIES, max_size=6)), max_size=6),
       indent=st.sampled_from([("  ", "    "), ("  ", "  "), (" ", "   ")]),
       chunk=st.sampled_from([48, 128, 1 << 15]), extra=st.sampled_from(["", "\n", "items: []\n",
                                                                          "# end\n"]))
def test_grouped_yaml_reads_like_the_composer(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    groups: list[tuple[str, list[str]]], indent: tuple[str, str], chunk: int, extra: str,
) -> None:
    """Grouped YAML through the fast path, in chunks of any size: the same Items, options
    included, and the same problems (repeated or empty groups, YAML's own readings of yes and
    123, comments, flow styles it does not take) as composing the whole document. (A document
    YAML cannot read gives the composer's problem alone; the fast path may have given the
    rows before it: refused all the same, as any problem refuses the manifest.)"""
    from runner.manifest.yaml_format import yaml_rows

    monkeypatch.setattr(runner.manifest.fastpath, "FAST_CHUNK", chunk)
    path = tmp_path_factory.mktemp("yaml") / "m.yaml"
    lines = ["vector_stores:"]
    for group, entries in groups:
        lines.append(f"{indent[0]}{group}:")
        lines += [f"{indent[1]}- {entry}" for entry in entries]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    fast = [row if isinstance(row, Item) else (row.line, row.message)
            for row in iter_rows(ManifestSource(str(path), str(path), "yaml"), *VS)]
    slow = [row if isinstance(row, Item) else (row.line, row.message)
            for row in yaml_rows(str(path), str(path), *VS, None)]
    if any("YAML syntax error" in str(row) for row in slow):
        assert [row for row in fast if not isinstance(row, Item)] == slow
    else:
        assert fast == slow


def test_grouped_yaml_comes_as_blocks_and_names_its_target_on_line_one(tmp_path: Path) -> None:
    """The tool-written shape is read in Blocks throughout (attributes and all), and its
    target is said from line 1 without composing the document."""
    from runner.manifest import detect_target

    path = tmp_path / "m.yaml"
    lines = ["vector_stores:"]
    for store in range(20):
        lines.append(f"  vs_{store}:")
        lines += [f'    - {{file_id: file-{store}-{i}, attributes: {{"n": {i}, "t": "x"}}}}'
                  if i % 2 else f"    - file-{store}-{i}" for i in range(100)]
    path.write_text("\n".join(lines) + "\n")
    source = ManifestSource(str(path), str(path), "yaml")
    parts = list(iter_blocks(source, *VS))
    assert parts
    assert all(isinstance(part, Block) for part in parts)
    items = [item for part in parts if isinstance(part, Block) for item in part.items()]
    assert len(items) == 2000
    assert items[1].owner == "vs_0"
    assert items[1].line == 4
    assert items[1].options is not None
    assert items[1].options.attributes == {"n": 1, "t": "x"}
    assert items[100].owner == "vs_1"
    assert items[100].line == 104
    detected = detect_target(source)
    assert detected is not None
    assert (detected.owner_column, detected.line) == (VS[0], 1)


@given(st.dictionaries(st.sampled_from("abc"), st.one_of(
           st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 1.0, 2.0, 0.5, -1.0]),
           st.sampled_from(["1", "true", ""])), max_size=3),
       st.dictionaries(st.sampled_from("abc"), st.one_of(
           st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 1.0, 2.0, 0.5, -1.0]),
           st.sampled_from(["1", "true", ""])), max_size=3))
def test_same_attributes_is_the_canonical_comparison(a: dict[str, object],
                                                     b: dict[str, object]) -> None:
    """The quick comparison a run makes after every add says what comparing canonical texts
    says: numbers by value, booleans never numbers, None as the empty set."""
    from runner.attributes import same_attributes

    assert same_attributes(a, b) is (canonical(a) == canonical(b))  # type: ignore[arg-type]
    assert same_attributes(None, b) is (canonical(b) == "{}")  # type: ignore[arg-type]


SMALL_SETS = st.dictionaries(st.sampled_from("abc"), st.one_of(
    st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 1.0, 2.0, 0.5, -1.0]),
    st.sampled_from(["1", "true", "},{", ""])), max_size=3)


@given(st.lists(st.tuples(st.one_of(st.none(), SMALL_SETS), SMALL_SETS), max_size=8))
def test_same_as_canonical_is_same_attributes_in_bulk(pairs: list[tuple[Any, Any]]) -> None:
    """A batch's read-back compares a page in bulk: for each pair, what `same_attributes`
    says of the shown set (None, 2021.0, true against 1) and the manifest's set."""
    from runner.attributes import same_as_canonical, same_attributes

    shown = [one for one, _ in pairs]
    wanted = [canonical(two) for _, two in pairs]
    assert same_as_canonical(shown, wanted) == [same_attributes(two, one) for one, two in pairs]
