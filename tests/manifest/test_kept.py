"""The parts a check keeps for the run (runner/manifest/kept.py) are what reading the manifest
again would give: the same Items in the same order, with the same lines, options, fingerprints
and local files, in every format, fast-path blocks and line-by-line rows mixed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.items import Item
from runner.manifest import Block, KeptParts, ManifestSource, check_manifest, iter_blocks

VS = ("vector_store_id", "vector_stores")
CHUNKING = {"type": "static", "static": {"max_chunk_size_tokens": 400,
                                         "chunk_overlap_tokens": 100}}


def csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # the fast path takes no surrogate escape


def attributes(i: int) -> dict[str, Any]:
    return {"team": f"t{i % 3}", "year": 2000 + i, "public": i % 2 == 0, "score": i / 4,
            "title": f"caf\u00e9 \U0001f600 {i}"}


def csv_manifest(path: Path, n: int) -> None:
    """Plain, attributed and chunked rows, then rows the fast path leaves to the line reader
    (a key written with an escape; a whole float 2021.0): it reads the rest line by line."""
    lines = ["vector_store_id,file_id,attributes,chunking_strategy"]
    for i in range(n):
        if i == n - 50:
            lines.append(f'vs_{i % 4},file-{i},"{{""\\u0041"": {i}}}",')
        elif i > n - 50 and i % 7 == 0:
            lines.append(f'vs_{i % 4},file-{i},"{{""year"": 2021.0}}",')
        elif i % 3 == 0:
            lines.append(f"vs_{i % 4},file-{i},,")
        elif i % 5 == 0:
            lines.append(f"vs_{i % 4},file-{i},,{csv_cell(json.dumps(CHUNKING))}")
        else:
            lines.append(f"vs_{i % 4},file-{i},{csv_cell(text(attributes(i)))},")
    path.write_text("\n".join(lines) + "\n")


def jsonl_manifest(path: Path, n: int) -> None:
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"vector_store_id": f"vs_{i % 4}", "file_id": f"file-{i}"}
        if i % 3:
            row["attributes"] = attributes(i)
        if i == n - 50:  # a key written with an escape: the line reader's from here on
            rows.append(f'{{"vector_store_id": "vs_1", "file_id": "file-{i}", '
                        '"attributes": {"\\u0041": 2021.0}}')
            continue
        rows.append(text(row))
    path.write_text("\n".join(rows) + "\n")


def yaml_manifest(path: Path, n: int) -> None:
    """Grouped, as tools write it, then an entry the fast path does not take."""
    lines = ["vector_stores:"]
    for i in range(n):
        if i % 500 == 0:
            lines.append(f"  vs_{i // 500}:")
        if i % 7 == 0:
            lines.append(f"    - file-{i}")
        elif i == n - 50:
            lines.append(f"    - {{file_id: file-{i}, attributes: {{team: plain yaml}}}}")
        else:
            lines.append(f"    - {{file_id: file-{i}, attributes: {text(attributes(i))}}}")
    path.write_text("\n".join(lines) + "\n")


def path_manifest(path: Path, n: int) -> None:
    docs = path.parent / "docs"
    docs.mkdir()
    for i in range(n):
        (docs / f"d{i}.md").write_text(f"document {i}")
    path.write_text("vector_store_id,path,attributes\n" + "".join(
        f"vs_1,docs/d{i}.md,{csv_cell(json.dumps({'n': i}))}\n" for i in range(n))
        + "vs_2,docs/*.md,\n")


def items_of(parts: Any) -> list[tuple[Item, int | None, Any]]:
    """Each Item with what the log's lines record of its options (the fingerprint of the text
    as written, the canonical text)."""
    out = []
    for part in parts:
        for item in part.items() if isinstance(part, Block) else [part]:
            options = item.options
            out.append((item, None if options is None else options.written,
                        None if options is None else (options.canonical(), options.digest())))
    return out


@pytest.mark.parametrize(("fmt", "write", "n"), [
    ("csv", csv_manifest, 3000), ("jsonl", jsonl_manifest, 3000),
    ("yaml", yaml_manifest, 3000), ("csv", path_manifest, 30)])
def test_the_kept_parts_are_the_manifest_read_again(tmp_path: Path, fmt: str, write: Any,
                                                    n: int) -> None:
    path = tmp_path / f"m.{fmt}"
    write(path, n)
    source = ManifestSource(str(path), str(path), fmt)
    with KeptParts.beside(str(tmp_path)) as kept:
        stats = check_manifest(source, *VS, keep=kept)
        assert stats.kept is kept
        again = list(iter_blocks(source, *VS))
        kinds = {type(part) for part in again}
        from_kept = items_of(stats.kept.parts())
    assert items_of(again) == from_kept
    assert len(from_kept) == stats.pairs
    if fmt != "csv" or n > 100:
        assert kinds == {Block, Item}  # blocks and line-by-line rows, mixed
    assert not list(tmp_path.glob(".attach-runner-parts-*"))  # the file has no name


def test_a_check_that_fails_or_finds_repeats_keeps_nothing(tmp_path: Path) -> None:
    """A bad manifest is refused before anything is sent, and a manifest with repeats is
    planned pair by pair from the file: neither leaves kept parts for the run."""
    path = tmp_path / "m.csv"
    path.write_text("vector_store_id,file_id\nvs_1,file-1\nvs_1,file-1\n")
    source = ManifestSource(str(path), str(path), "csv")
    with KeptParts.beside(str(tmp_path)) as kept:
        stats = check_manifest(source, *VS, keep=kept)
        assert stats.duplicates == 1
        assert stats.kept is None
        assert not kept.keeping


def test_no_file_beside_the_log_keeps_nothing(tmp_path: Path) -> None:
    """A folder where no file can be made: the run reads its manifest again, as before."""
    kept = KeptParts.beside(str(tmp_path / "missing"))
    assert not kept.keeping
    path = tmp_path / "m.csv"
    path.write_text("vector_store_id,file_id\nvs_1,file-1\n")
    stats = check_manifest(ManifestSource(str(path), str(path), "csv"), *VS, keep=kept)
    assert stats.kept is None


def test_a_write_that_fails_keeps_nothing_and_the_check_goes_on(tmp_path: Path) -> None:
    """A disk that fills while the check keeps its parts costs the run a second read of the
    manifest, never the run (here a file open for reading refuses the write)."""
    path = tmp_path / "m.csv"
    path.write_text("vector_store_id,file_id\n" + "".join(
        f"vs_1,file-{i}\n" for i in range(100)))
    with open(path, "rb") as unwritable:
        kept = KeptParts(unwritable)
        stats = check_manifest(ManifestSource(str(path), str(path), "csv"), *VS, keep=kept)
    assert stats.pairs == 100
    assert stats.kept is None
    assert not kept.keeping
