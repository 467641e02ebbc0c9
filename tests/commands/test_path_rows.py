"""`validate` on manifests with `path` rows (SPEC "Local files"), through the real CLI: accepted
and counted in every format, a glob's skipped files one warning a row, every bad row one line
(exit 2), and a manifest from stdin taking absolute paths only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import main_in, run_cli

WARNING = "attach-runner: warning: "
ERROR = "attach-runner: error: "


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """docs/ with nested files, a hidden one, a link to a file and one to a folder, an empty
    file and one of an extension file search does not take."""
    docs = tmp_path / "docs"
    for name, text in {"a.md": "A", "b.txt": "B", "guide/c.md": "C", ".hidden.md": "H",
                       "empty.md": "", "notes.xyz": "N"}.items():
        path = docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (docs / "link.md").symlink_to(docs / "a.md")
    (docs / "linked").symlink_to(docs / "guide", target_is_directory=True)
    (tmp_path / "tmp").mkdir()
    return tmp_path


MANIFESTS = {
    "m.csv": ("vector_store_id,file_id,path,attributes\nvs_1,file-1,,\n"
              'vs_1,,docs/**/*,"{""kind"": ""doc""}"\nvs_2,,docs/a.md,\n', 3),
    "m.jsonl": ('{"vector_store_id": "vs_1", "file_id": "file-1"}\n'
                '{"vector_store_id": "vs_1", "path": "docs/**/*", "attributes": {"kind": "doc"}}\n'
                '{"vector_store_id": "vs_2", "path": "docs/a.md"}\n', 2),
    "m.yaml": ("vector_stores:\n  vs_1:\n    - file-1\n"
               "    - {path: 'docs/**/*', attributes: {kind: doc}}\n"
               "  vs_2:\n    - {path: docs/a.md}\n", 4),
}


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_validate_accepts_path_rows_and_warns_of_skipped_files(
        work: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Exit 0, the files counted as pairs, one warning naming the glob's line."""
    text, glob_line = MANIFESTS[name]
    (work / name).write_text(text)
    res = main_in(work, monkeypatch, ["validate", name])
    assert res.code == 0, res.err
    fmt = name.rsplit(".", 1)[1]
    assert res.out.splitlines()[:3] == [
        f"{name}: OK ({fmt}, vector-store-files, from the manifest)",
        "  pairs: 5  (rows 5, repeated 0)", "  vector stores: 2"]
    assert res.err.splitlines() == [
        f'{WARNING}{name}:{glob_line}: glob "docs/**/*": 3 files skipped: 1 empty, 1 a '
        "symbolic link, 1 of an extension file search does not take"]


def test_validate_names_every_bad_path_row(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One line a bad row, in file order, exit 2, no traceback; the good rows say nothing."""
    (work / "m.jsonl").write_text("\n".join((
        '{"vector_store_id": "vs_1", "path": "docs/a.md"}',
        '{"vector_store_id": "vs_1", "path": "docs/nope.md"}',
        '{"vector_store_id": "vs_1", "path": "docs/guide"}',
        '{"vector_store_id": "vs_1", "path": "docs/empty.md"}',
        '{"vector_store_id": "vs_1", "path": "docs/notes.xyz"}',
        '{"vector_store_id": "vs_1", "path": "docs/*.pdf"}',
        '{"vector_store_id": "vs_1", "file_id": "file-1", "path": "docs/a.md"}',
        '{"vector_store_id": "vs_1"}',
    )) + "\n")
    res = main_in(work, monkeypatch, ["validate", "m.jsonl"])
    assert res.code == 2
    assert "Traceback" not in res.err
    lines = res.err.splitlines()
    assert [line.split(":")[3] for line in lines] == ["2", "3", "4", "5", "6", "7", "8"]
    assert all(line.startswith(f"{ERROR}m.jsonl:") for line in lines)
    assert lines[0].startswith(f'{ERROR}m.jsonl:2: path "docs/nope.md" does not exist')
    assert lines[2] == (f'{ERROR}m.jsonl:4: path "docs/empty.md" is empty; leave it out: an '
                        "empty file has nothing to search")


def test_stdin_manifest_takes_absolute_paths_only(work: Path) -> None:
    """From stdin, a relative path is exit 2 naming the line; an absolute one is accepted."""
    relative = '{"vector_store_id": "vs_1", "path": "docs/a.md"}\n'
    res = run_cli("validate", "-", "--format", "jsonl", "--log", "r.jsonl", stdin=relative,
                  cwd=work, key=None,
                  env={"TMPDIR": str(work / "tmp")})
    assert res.code == 2
    assert res.err == (f'{ERROR}<stdin>:1: path "docs/a.md" is relative, and a manifest read '
                       "from stdin has no folder to be relative to; give absolute paths\n")
    absolute = f'{{"vector_store_id": "vs_1", "path": "{work}/docs/a.md"}}\n'
    res = run_cli("validate", "-", "--format", "jsonl", "--log", "r.jsonl", stdin=absolute,
                  cwd=work, key=None,
                  env={"TMPDIR": str(work / "tmp")})
    assert res.code == 0, res.err
    assert "pairs: 1" in res.out


def test_a_file_matched_twice_alike_is_a_repeat(work: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Two rows matching one file of a store with the same options: one pair, the repeat
    warned of as any repeated pair; the same file in another store is a pair of its own."""
    (work / "m.csv").write_text("vector_store_id,path\nvs_1,docs/*.md\nvs_1,docs/a.md\n"
                                "vs_2,docs/a.md\n")
    res = main_in(work, monkeypatch, ["validate", "m.csv"])
    assert res.code == 0, res.err
    assert "  pairs: 2  (rows 3, repeated 1)" in res.out.splitlines()
    assert f"{WARNING}m.csv: 1 repeated pair(s) in the manifest; each pair is attached once" in (
        res.err.splitlines())
