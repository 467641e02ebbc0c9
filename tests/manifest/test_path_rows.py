"""`path` rows (SPEC "Local files") in every manifest format: one Item a file a row names, on
the row's line with its options, relative to the manifest's folder; mixed with file_id rows;
globs over a real tree; and the check's rules across rows (one of file_id and path, vector
stores only, a file given other options by two rows)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.attributes import Options
from runner.errors import ManifestError
from runner.items import Item, LocalFile
from runner.manifest import STDIN_DISPLAY, ManifestSource, check_manifest, iter_items
from runner.manifest.fastpath import FAST_CHUNK
from runner.manifest.reader import iter_parts

VS = ("vector_store_id", "vector_stores")
ASSISTANTS = ("assistant_id", "assistants")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A manifest folder with docs/: nested files, hidden names, links (to a file and to a
    folder), and files file search cannot take."""
    docs = tmp_path / "docs"
    for name, text in {
        "a.md": "A", "b.txt": "B", "guide/c.md": "C", "guide/deep/d.pdf": "D",
        ".hidden.md": "H", ".secret/e.md": "E", "guide/.draft.md": "X",
        "notes.xyz": "N", "empty.md": "",
    }.items():
        path = docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (docs / "link.md").symlink_to(docs / "a.md")
    (docs / "linked").symlink_to(docs / "guide", target_is_directory=True)
    return tmp_path


def source_of(path: Path, text: str) -> ManifestSource:
    path.write_text(text)
    return ManifestSource(str(path), str(path), path.suffix[1:])


def local(path: Path) -> LocalFile:
    info = path.stat()
    return LocalFile(str(path), info.st_size, info.st_mtime_ns)


def shown(items: list[Item], root: Path) -> list[tuple[str, str, int]]:
    """(owner, file_id or the path relative to root, line) of each item."""
    return [(i.owner, os.path.relpath(i.local.path, root) if i.local else i.file_id, i.line)
            for i in items]


def problems(src: ManifestSource, target: tuple[str, str] = VS) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        check_manifest(src, *target)
    return [line.removeprefix(f"{src.display}:") for line in caught.value.lines()]


def test_a_path_row_is_an_item_of_the_local_file(work: Path) -> None:
    """A path row: owner, no file_id yet, its line, and the file's absolute path, size, mtime."""
    src = source_of(work / "m.csv", "vector_store_id,path\nvs_1,docs/a.md\n")
    assert list(iter_items(src, *VS)) == [Item("vs_1", "", 2, None, local(work / "docs/a.md"))]
    assert src.base_dir == str(work)


CSV = ("vector_store_id,file_id,path,attributes\n"
       "vs_1,file-1,,\n"
       'vs_1,,docs/a.md,"{""team"": ""a""}"\n'
       "vs_2,file-2,,\n"
       "vs_2,,{abs},\n")
JSONL = ('{"vector_store_id": "vs_1", "file_id": "file-1"}\n'
         '{"vector_store_id": "vs_1", "path": "docs/a.md", "attributes": {"team": "a"}}\n'
         '{"vector_store_id": "vs_2", "file_id": "file-2"}\n'
         '{"vector_store_id": "vs_2", "path": "{abs}"}\n')
YAML_ITEMS = ("items:\n"
              "  - {vector_store_id: vs_1, file_id: file-1}\n"
              "  - {vector_store_id: vs_1, path: docs/a.md, attributes: {team: a}}\n"
              "  - {vector_store_id: vs_2, file_id: file-2}\n"
              "  - {vector_store_id: vs_2, path: '{abs}'}\n")
YAML_GROUPED = ("vector_stores:\n"
                "  vs_1:\n"
                "    - file-1\n"
                '    - {path: docs/a.md, attributes: {"team": "a"}}\n'
                "  vs_2:\n"
                "    - {file_id: file-2}\n"
                "    - {path: '{abs}'}\n")


@pytest.mark.parametrize(("name", "text", "lines"), [
    ("m.csv", CSV, (2, 3, 4, 5)), ("m.jsonl", JSONL, (1, 2, 3, 4)),
    ("m.yaml", YAML_ITEMS, (2, 3, 4, 5)), ("m.yaml", YAML_GROUPED, (3, 4, 6, 7))],
    ids=["csv", "jsonl", "yaml-items", "yaml-grouped"])
def test_every_format_mixes_file_id_and_path_rows(work: Path, name: str, text: str,
                                                  lines: tuple[int, ...]) -> None:
    """Relative (to the manifest's folder) and absolute paths, with options, among file_ids."""
    b_txt = work / "docs" / "b.txt"
    src = source_of(work / name, text.replace("{abs}", str(b_txt)))
    items = list(iter_items(src, *VS))
    assert shown(items, work) == [("vs_1", "file-1", lines[0]), ("vs_1", "docs/a.md", lines[1]),
                                  ("vs_2", "file-2", lines[2]), ("vs_2", "docs/b.txt", lines[3])]
    assert items[1].local == local(work / "docs/a.md")
    assert items[1].options == Options({"team": "a"}, None)
    assert items[3].options is None
    stats = check_manifest(src, *VS)
    assert (stats.pairs, stats.first_path_line, stats.skipped_notes) == (4, lines[1], [])


def test_relative_paths_are_relative_to_the_manifest_not_the_working_folder(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest given by a relative name, read from another folder: docs/ beside it."""
    (work / "jobs").mkdir()
    (work / "jobs" / "docs").symlink_to(work / "docs", target_is_directory=True)
    (work / "jobs" / "m.csv").write_text("vector_store_id,path\nvs_1,docs/a.md\n")
    monkeypatch.chdir(work)
    src = ManifestSource("jobs/m.csv", "jobs/m.csv", "csv")
    [item] = iter_items(src, *VS)
    assert item.local is not None
    assert item.local.path == str(work / "jobs/docs/a.md")


def test_a_glob_spans_folders_skips_hidden_names_and_links_and_counts_the_rest(
        work: Path) -> None:
    """`**` over a nested tree: sorted, one Item a file on the row's line with its options;
    hidden names unmet, the linked folder not entered (no docs/linked/c.md), the linked file
    and the files file search cannot take skipped with one note."""
    src = source_of(work / "m.jsonl", '{"vector_store_id": "vs_1", "file_id": "file-1"}\n'
                    '{"vector_store_id": "vs_1", "path": "docs/**/*", '
                    '"attributes": {"kind": "doc"}}\n')
    items = list(iter_items(src, *VS))
    assert shown(items, work) == [
        ("vs_1", "file-1", 1), ("vs_1", "docs/a.md", 2), ("vs_1", "docs/b.txt", 2),
        ("vs_1", "docs/guide/c.md", 2), ("vs_1", "docs/guide/deep/d.pdf", 2)]
    assert [item.options for item in items[1:]] == [Options({"kind": "doc"}, None)] * 4
    stats = check_manifest(src, *VS)
    assert stats.pairs == 5
    assert stats.skipped_notes == [
        f'{src.display}:2: glob "docs/**/*": 3 files skipped: 1 empty, 1 a symbolic link, '
        "1 of an extension file search does not take"]


def test_fast_path_blocks_then_path_rows(work: Path) -> None:
    """Thousands of file_id rows (taken by the fast path as blocks), then path rows: every row
    comes out, in order, the path rows as local files (the fast path never takes one)."""
    many = 4 * FAST_CHUNK // 50
    for name, row, path_row in [
        ("m.jsonl", '{{"vector_store_id": "vs_1", "file_id": "file-{}"}}\n',
         '{"vector_store_id": "vs_1", "path": "docs/a.md"}\n'),
        ("m.csv", "vs_1,file-{},\n", "vs_1,,docs/a.md\n"),
    ]:
        head = "vector_store_id,file_id,path\n" if name == "m.csv" else ""
        text = head + "".join(row.format(n) for n in range(many)) + path_row + row.format("x")
        src = source_of(work / name, text)
        items = list(iter_items(src, *VS))
        assert len(items) == many + 2
        assert [i.local is not None for i in items[-2:]] == [True, False]
        assert all(i.local is None for i in items[:-2])
        first = 1 + (name == "m.csv")
        assert [i.line for i in items] == list(range(first, first + many + 2))


def test_grouped_yaml_in_the_fast_shape_hands_path_entries_to_the_composer(work: Path) -> None:
    """Grouped YAML as tools write it: file_id entries, then path entries, each read."""
    entries = "".join(f"    - file-{n}\n" for n in range(3000))
    src = source_of(work / "m.yaml", "vector_stores:\n  vs_1:\n" + entries +
                    "    - {path: docs/a.md}\n  vs_2:\n    - {path: 'docs/*.txt'}\n")
    items = list(iter_items(src, *VS))
    assert len(items) == 3002
    assert shown(items[-2:], work) == [("vs_1", "docs/a.md", 3003), ("vs_2", "docs/b.txt", 3005)]


def test_stdin_manifest_takes_absolute_paths_only(work: Path) -> None:
    """A manifest from stdin has no folder: a relative path is a problem, an absolute fine."""
    spooled = work / "spooled.jsonl"
    spooled.write_text(f'{{"vector_store_id": "vs_1", "path": "{work}/docs/a.md"}}\n'
                       '{"vector_store_id": "vs_1", "path": "docs/b.txt"}\n')
    src = ManifestSource(STDIN_DISPLAY, str(spooled), "jsonl")
    assert src.base_dir is None
    assert problems(src) == [
        '2: path "docs/b.txt" is relative, and a manifest read from stdin has no folder to be '
        "relative to; give absolute paths"]


def test_row_rules(work: Path) -> None:
    """Both file_id and path, neither, a path that is not a string, a bad owner: one line each."""
    src = source_of(work / "m.jsonl", "\n".join((
        '{"vector_store_id": "vs_1", "file_id": "file-1", "path": "docs/a.md"}',
        '{"vector_store_id": "vs_1"}',
        '{"vector_store_id": "vs_1", "path": ""}',
        '{"vector_store_id": "vs_1", "path": ["docs/a.md"]}',
        '{"vector_store_id": "vs 1", "path": "docs/a.md"}',
        '{"vector_store_id": "vs_1", "path": "docs/nothing/*.md"}',
        '{"vector_store_id": "vs_1", "path": "docs/a.md", "attributes": {"a": null}}',
    )) + "\n")
    assert problems(src) == [
        "1: object gives both file_id and path; give one: file_id for a file already uploaded, "
        "path for a local file to upload",
        '2: object has no "file_id"; every object needs vector_store_id and file_id or path',
        "3: file_id and path are both empty; every object needs one: file_id for a file "
        "already uploaded, path for a local file to upload",
        "4: path is a list, not a string; give one path (or glob) per item",
        '5: vector_store_id "vs 1" is not a valid ID; IDs may hold only A-Z a-z 0-9 _ - '
        "(1 to 128 characters)",
        f'6: glob "docs/nothing/*.md" matches no file file search can take (its folder is not '
        f"there: {work}/docs/nothing); check the folder is there (and mounted) and the pattern",
        '7: attribute "a" is null; give it a value (a string, number or boolean), or leave the '
        "key out",
    ]


def test_csv_rows_with_both_or_neither(work: Path) -> None:
    """A CSV with both columns: each row fills exactly one."""
    src = source_of(work / "m.csv", "vector_store_id,file_id,path\nvs_1,file-1,docs/a.md\n"
                    "vs_1,,\nvs_1,file-2,\n")
    assert problems(src) == [
        "2: row gives both file_id and path; give one: file_id for a file already uploaded, "
        "path for a local file to upload",
        "3: file_id and path are both empty; every row needs one: file_id for a file already "
        "uploaded, path for a local file to upload"]


@pytest.mark.parametrize(("name", "text", "line"), [
    ("m.csv", "assistant_id,path\nasst_1,docs/a.md\n", 2),
    ("m.jsonl", '{"assistant_id": "asst_1", "path": "docs/a.md"}\n', 1),
    ("m.yaml", "items:\n  - {assistant_id: asst_1, path: docs/a.md}\n", 2),
    ("m.yaml", "assistants:\n  asst_1:\n    - {path: docs/a.md}\n", 3),
], ids=["csv", "jsonl", "yaml-items", "yaml-grouped"])
def test_path_on_the_assistant_target_is_an_error(work: Path, name: str, text: str,
                                                  line: int) -> None:
    """Assistants take file_ids only: a path row is named, in every format."""
    src = source_of(work / name, text)
    expected = (f"{line}: path names a local file to upload, which only vector stores take; "
                "for assistant-files give the file_id of an uploaded file instead")
    assert problems(src, ASSISTANTS) == [expected]


def test_a_file_two_rows_give_other_options_names_both_lines(work: Path) -> None:
    """A glob and a path (or two globs) matching one file of a store with other options."""
    src = source_of(work / "m.csv", "vector_store_id,path,attributes\n"
                    'vs_1,docs/*.md,"{""a"": 1}"\n'
                    "vs_2,docs/a.md,\n"
                    'vs_1,docs/a.md,"{""a"": 2}"\n')
    assert problems(src) == [
        '4: file "docs/a.md" is matched for vs_1 with other options than on line 2; give the '
        "file one set of attributes and chunking_strategy: narrow one of the globs, or give "
        "both rows the same options"]


def test_a_file_two_rows_give_the_same_options_is_a_repeat(work: Path) -> None:
    """The same file matched twice for a store, alike: one pair, one repeat; in two stores,
    two pairs."""
    src = source_of(work / "m.yaml", "items:\n"
                    "  - {vector_store_id: vs_1, path: 'docs/**/*.md', attributes: {a: 1}}\n"
                    "  - {vector_store_id: vs_1, path: docs/a.md, attributes: {a: 1.0}}\n"
                    "  - {vector_store_id: vs_2, path: docs/a.md}\n")
    stats = check_manifest(src, *VS)
    assert (stats.rows, stats.pairs, stats.duplicates, stats.owners) == (4, 3, 1, 2)


def test_notes_are_kept_only_when_asked(work: Path) -> None:
    """iter_parts without `notes` yields the same rows and drops the notes."""
    src = source_of(work / "m.jsonl", '{"vector_store_id": "vs_1", "path": "docs/*"}\n')
    notes: list[str] = []
    kept = list(iter_parts(src, *VS, notes=notes))
    assert kept == list(iter_parts(src, *VS))
    assert notes == [f'{src.display}:1: glob "docs/*": 3 files skipped: 1 empty, 1 a symbolic '
                     "link, 1 of an extension file search does not take"]


def test_yaml_and_csv_name_what_a_row_lacks(work: Path) -> None:
    """A grouped entry without file_id or path, a path that is not a string, a CSV header
    with neither column: each says path is the other way to name a file."""
    src = source_of(work / "m.yaml", "vector_stores:\n  vs_1:\n    - {attributes: {a: 1}}\n"
                    "    - {path: 12}\n")
    assert problems(src) == [
        '3: entry has no "file_id" or "path"; write {file_id: file-1, attributes: {...}} or '
        "{path: guide/intro.md, attributes: {...}}",
        '4: path is a number, not a string; quote it: "12"']
    src = source_of(work / "m.csv", "vector_store_id,name\nvs_1,a\n")
    assert problems(src) == [
        '1: header has no "file_id" column; the header row must name vector_store_id and '
        "file_id or path"]
