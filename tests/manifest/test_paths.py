"""Local files a manifest names (runner/manifest/paths.py): a path or a glob, relative to the
manifest's folder, expanded in sorted order and checked as SPEC's "Local files" says, on a
real tree with hidden names, symbolic links, empty, unsupported and oversized files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.manifest.paths import MAX_FILE_BYTES, LocalFile, PathProblem, expand


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """docs/ with nested folders, hidden names, links, and files file search cannot take."""
    docs = tmp_path / "docs"
    for name, text in {
        "a.md": "A", "b.PDF": "B", "guide/c.txt": "C", "guide/deep/d.md": "D",
        ".hidden.md": "H", ".secret/e.md": "E", "guide/.draft.md": "X",
        "notes.xyz": "N", "noext": "N", "empty.md": "", "guide/big.txt": "",
    }.items():
        path = docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    os.truncate(docs / "guide" / "big.txt", MAX_FILE_BYTES + 1)  # sparse: no disk used
    (docs / "link.md").symlink_to(docs / "a.md")
    (docs / "linked").symlink_to(docs / "guide", target_is_directory=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.md").write_text("O")
    (docs / "guide" / "out").symlink_to(outside, target_is_directory=True)
    return tmp_path


def names(expansion_files: list[LocalFile], root: Path) -> list[str]:
    return [os.path.relpath(f.path, root) for f in expansion_files]


def test_a_glob_expands_sorted_skipping_hidden_names_and_links(tree: Path) -> None:
    found = expand("docs/**/*", str(tree))
    assert names(found.files, tree) == [
        "docs/a.md", "docs/b.PDF", "docs/guide/c.txt", "docs/guide/deep/d.md"]
    # Hidden names and what lies behind linked folders are never met; a linked file is
    # skipped and counted with the files file search cannot take.
    assert dict(found.skipped) == {
        "of an extension file search does not take": 2, "empty": 1, "over 512 MB": 1,
        "a symbolic link": 1}
    assert found.skipped_text().startswith("5 files skipped: 2 of an extension")
    one = found.files[0]
    assert (one.size, one.mtime_ns) == (1, os.stat(tree / "docs" / "a.md").st_mtime_ns)


def test_a_glob_in_one_folder_and_an_absolute_glob(tree: Path) -> None:
    assert names(expand("docs/*.md", str(tree)).files, tree) == ["docs/a.md"]
    absolute = expand(str(tree / "docs" / "guide" / "*"), None)
    assert names(absolute.files, tree) == ["docs/guide/c.txt"]


@pytest.mark.parametrize(("text", "message"), [
    ("docs/missing.md", 'path "docs/missing.md" does not exist'),
    ("docs/guide", 'path "docs/guide" is a folder; name a file, or a glob such as'),
    ("docs/empty.md", 'path "docs/empty.md" is empty; leave it out'),
    ("docs/notes.xyz", 'path "docs/notes.xyz" is a .xyz file, which file search does not take;'
                       " convert it to one of c cpp"),
    ("docs/noext", 'path "docs/noext" is a file without an extension'),
    ("docs/guide/big.txt", 'path "docs/guide/big.txt" is 512 MB, over file search\'s 512 MB;'
                           " split it"),
    ("", "path is empty; name a file"),
    ("gone/**/*.md", 'glob "gone/**/*.md" matches no file file search can take (its folder '
                     "is not there: "),
    ("docs/*.xyz", 'glob "docs/*.xyz" matches no file file search can take (1 file skipped: '
                   "1 of an extension file search does not take: "),
    ("docs/*.txt", 'glob "docs/*.txt" matches no file file search can take (no file matches'),
])
def test_each_wrong_path_is_one_message(tree: Path, text: str, message: str) -> None:
    with pytest.raises(PathProblem) as refused:
        expand(text, str(tree))
    assert str(refused.value).startswith(message), str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_named_file_may_be_a_link_and_any_case_of_extension(tree: Path) -> None:
    """Named without a glob, a link is followed (the user named it); extensions in any case."""
    assert names(expand("docs/link.md", str(tree)).files, tree) == ["docs/link.md"]
    assert expand("docs/b.PDF", str(tree)).files[0].size == 1


def test_a_manifest_from_stdin_takes_absolute_paths_only(tree: Path) -> None:
    with pytest.raises(PathProblem, match="read from stdin has no folder"):
        expand("docs/a.md", None)
    assert expand(str(tree / "docs" / "a.md"), None).files[0].path == str(tree / "docs/a.md")


@pytest.mark.parametrize("pattern", [
    "**/*", "**/*.md", "*/*.md", "*.md", "sub/**/*.py", "[a-c]*.*", "**/deep/*", "*/?.md",
    "**/.hidden/*", ".*",
])
def test_the_walk_finds_what_wcmatch_finds(tmp_path: Path, pattern: str) -> None:
    """The scandir walk (paths._walked) against wcmatch's glob over one tree: the same files,
    hidden names and linked folders left alone by both."""
    from runner.manifest.paths import _walked, _wcmatched

    for name in ("a.md", "b.txt", "c.py", "sub/d.md", "sub/e.py", "sub/deep/f.md",
                 "sub/deep/g.py", ".hidden/h.md", "sub/.hidden/i.md", "x/y/z/deep/j.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "linkdir").symlink_to(tmp_path / "sub")
    (tmp_path / "link.md").symlink_to(tmp_path / "a.md")
    walked = sorted(name for name, info in _walked(str(tmp_path), pattern) if info is not None)
    matched = sorted(name for name, info in _wcmatched(str(tmp_path), pattern)
                     if info is not None)
    if any(part.startswith(".") for part in pattern.split("/")):
        assert walked == []  # such a pattern is wcmatch's to walk (see _globbed)
    else:
        assert walked == matched
        assert walked  # every pattern here matches something
