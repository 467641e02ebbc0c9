"""The last step of every format's row: a `file_id` row is one pair (common.checked_pair); a
`path` row (SPEC "Local files") is one pair a file it names, expanded and checked here
(paths.expand), with the row's line and options on each.

A row has exactly one of `file_id` and `path`; `path` is for vector stores only. A glob's
skipped files are not a problem: one note a row goes to `LocalPaths.notes`, when the caller
keeps them (check_manifest does, for the commands' warnings), so the stream of rows keeps its
shape (Item | ManifestProblem) for every consumer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from runner.attributes import Options
from runner.errors import ManifestProblem
from runner.items import Item, is_valid_id
from runner.manifest.common import (
    NO_OPTIONS,
    ExpansionCache,
    Row,
    checked_pair,
    invalid_id,
    show,
)
from runner.manifest.paths import Expansion, PathProblem, expand, is_glob

PATH_TARGET_COLUMN = "vector_store_id"  # the only owner column a `path` row may stand with


@dataclass(frozen=True)
class LocalPaths:
    """What a reader needs for `path` rows: the folder a relative path is relative to (the
    manifest's; None for one read from stdin or a pipe: absolute paths only), and where a
    glob's skipped files are noted (`FILE:LINE: ...`), None to drop the notes."""

    base_dir: str | None = None
    notes: list[str] | None = None
    # Expansions of globs met on an earlier pass over the manifest: a rerun over 100,000
    # files walks the tree once (the check's pass), not twice.
    expansions: ExpansionCache | None = None
    unread: bool = False  # see ManifestSource.unread_paths


NO_LOCAL_PATHS = LocalPaths()


def checked_rows(display: str, line: int, owner_column: str, owner: str,
                 file_id: str | None, path: str | None, noun: str, local: LocalPaths,
                 options: tuple[Options | None, str | None] = NO_OPTIONS) -> Iterator[Row]:
    """The row's pairs, or its one problem. `file_id`, `path`: the row's values, None where
    the row has no such column or key ("" where it has an empty one)."""
    if not path:
        if path is None or file_id:
            yield checked_pair(display, line, owner_column, owner, file_id or "", noun,
                               options)
        else:
            what = _owner_problem(owner_column, owner, noun) or _neither(noun)
            yield ManifestProblem(display, line, what)
        return
    problem = _path_row_problem(owner_column, owner, file_id, noun, options[1])
    if problem is not None:
        yield ManifestProblem(display, line, problem)
        return
    cache = local.expansions
    expansion: Expansion | None = (cache.by_row.get((line, path)) if cache is not None
                                   else None)
    if expansion is None:
        try:
            expansion = expand(path, local.base_dir, unread=local.unread)
        except PathProblem as exc:
            yield ManifestProblem(display, line, str(exc))
            return
        if cache is not None and is_glob(path):
            cache.keep((line, path), expansion, len(expansion.files))
    if expansion.skipped and local.notes is not None:
        local.notes.append(f"{display}:{line}: glob {show(path)}: {expansion.skipped_text()}")
    given = options[0]
    for found in expansion.files:
        yield Item(owner, "", line, given, found)


def _path_row_problem(owner_column: str, owner: str, file_id: str | None, noun: str,
                      options_problem: str | None) -> str | None:
    """What is wrong with a `path` row before its path is looked at, or None."""
    if owner_column != PATH_TARGET_COLUMN:
        return ("path names a local file to upload, which only vector stores take; for "
                "assistant-files give the file_id of an uploaded file instead")
    problem = _owner_problem(owner_column, owner, noun)
    if problem is not None:
        return problem
    if file_id:
        return (f"{noun} gives both file_id and path; give one: file_id for a file already "
                "uploaded, path for a local file to upload")
    return options_problem


def _owner_problem(owner_column: str, owner: str, noun: str) -> str | None:
    if not owner:
        return f"{owner_column} is empty; every {noun} needs {owner_column} and file_id or path"
    if not is_valid_id(owner):
        return invalid_id(owner_column, owner)
    return None


def _neither(noun: str) -> str:
    return (f"file_id and path are both empty; every {noun} needs one: file_id for a file "
            "already uploaded, path for a local file to upload")
