"""Reading a manifest of any format: one stream of rows, or of parts (the fast path's Blocks
left whole); the format readers never raise on bad input, these stop at the first bad row."""

from __future__ import annotations

from collections.abc import Iterator

from runner.errors import ManifestError, ManifestProblem, UsageError
from runner.items import Item
from runner.manifest.block import Block, Part, Skips
from runner.manifest.common import ManifestSource, Row, show
from runner.manifest.csv_format import csv_parts
from runner.manifest.fastpath import Vouches
from runner.manifest.jsonl_format import jsonl_parts
from runner.manifest.rows import LocalPaths
from runner.manifest.yaml_fast import yaml_parts


def iter_items(source: ManifestSource, owner_column: str, group_key: str) -> Iterator[Item]:
    """Every valid pair in file order, duplicates included; ManifestError at the first bad row."""
    for row in iter_rows(source, owner_column, group_key):
        if isinstance(row, ManifestProblem):
            raise ManifestError([row], 1)
        yield row


def iter_blocks(source: ManifestSource, owner_column: str, group_key: str,
                skips: Skips | None = None,
                identity: tuple[int, int, int] | None = None) -> Iterator[Block | Item]:
    """`iter_items`, with the fast path's blocks of pairs left whole (a rerun can settle a
    block of pairs it has all done with a few set operations). `skips`: the runs of blocks the
    check found settled (ManifestStats.skips), passed over unread. `identity`: the file's as
    it was checked; a file that is no longer the one checked stops the run before anything is
    sent (as do skips without it)."""
    if (skips and identity is None) or (identity is not None and identity != source.identity()):
        raise UsageError(f"{source.display}: changed while the run was reading it; run "
                         "the same command again once it is written")
    for part in iter_parts(source, owner_column, group_key, skips=skips):
        if isinstance(part, ManifestProblem):
            raise ManifestError([part], 1)
        yield part


def iter_rows(source: ManifestSource, owner_column: str, group_key: str,
              said_on: int | None = None) -> Iterator[Row]:
    """Every row, one at a time (blocks of the fast path taken apart)."""
    for part in iter_parts(source, owner_column, group_key, said_on):
        if isinstance(part, Block):
            yield from part.items()
        else:
            yield part


def iter_parts(source: ManifestSource, owner_column: str, group_key: str,
               said_on: int | None = None, *, skips: Skips | None = None,
               vouches: Vouches | None = None, notes: list[str] | None = None) -> Iterator[Part]:
    """Every part in file order. `said_on`: the line where the manifest named its target (not
    --target), for the message about a row of the other target. A CSV names it in its header
    alone, so no row of a CSV can be of the other target. `skips`: see iter_blocks.
    `vouches`: see fastpath.fast_blocks. `notes`: where each glob row's skipped files are
    noted (`FILE:LINE: ...`, one a row); None drops them. A `path` row yields one Item a file
    it names (rows.checked_rows), relative to the manifest's folder (source.base_dir)."""
    local = LocalPaths(source.base_dir, notes, source.expansions, source.unread_paths)
    if source.format == "csv":
        parsed = csv_parts(source.display, source.path, owner_column, skips, vouches, local)
    elif source.format == "jsonl":
        parsed = jsonl_parts(source.display, source.path, owner_column, said_on, skips,
                             vouches, local)
    elif source.format == "yaml":
        parsed = yaml_parts(source.display, source.path, owner_column, group_key, said_on,
                            skips, vouches, local)
    else:
        shown = show(source.format)
        raise UsageError(f"{source.display}: unknown format {shown}; use csv, yaml or jsonl")
    try:
        yield from parsed
    except OSError as exc:  # the file vanished or the disk failed between open and read
        reason = exc.strerror or exc
        raise UsageError(f"{source.display}: cannot be read ({reason}); check the file") from None
