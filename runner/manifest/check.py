"""Checking a whole manifest in one pass: every bad row named, and every pair repeated with other
options, else what it holds counted (pairs, repeats, owners, the most crowded owner)."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from runner.attributes import Options
from runner.errors import MAX_REPORTED_PROBLEMS, ManifestError, ManifestProblem
from runner.items import Item, pin_mmap_threshold
from runner.manifest.block import Block, Part
from runner.manifest.common import ManifestSource, show
from runner.manifest.fastpath import Vouches
from runner.manifest.kept import KeptParts
from runner.manifest.reader import iter_parts

OWNERS_OVER_SHOWN = 20
OWNER_OF = itemgetter(0)
PATH_MARK = "\0"  # what Item.identity of a path row starts with (never in an ID)


@dataclass
class ManifestStats:
    """What one checking pass counted; `owners_over` feeds the warning about crowded owners."""

    rows: int = 0  # pairs as written, duplicates included
    pairs: int = 0  # distinct pairs
    duplicates: int = 0  # rows - pairs
    owners: int = 0  # distinct owners
    max_files_owner: str | None = None  # the owner with the most distinct files (first seen wins)
    max_files: int = 0
    owners_over: list[tuple[str, int]] = field(default_factory=list)  # most files first, capped
    owners_over_count: int = 0  # all owners over the limit, shown or not
    # Runs of blocks the run has nothing to do for (check_manifest's `settles`): byte offset
    # -> (end, lines), and the pairs they hold; the manifest's size, mtime and inode then.
    skips: dict[int, tuple[int, int, object]] = field(default_factory=dict, compare=False)
    settled: int = field(default=0, compare=False)
    identity: tuple[int, int, int] | None = field(default=None, compare=False)
    # Local files (`path` rows): the first line of one (the commands that cannot take them
    # yet name it), and one warning a glob row that skipped files, `FILE:LINE: ...`.
    first_path_line: int | None = None
    skipped_notes: list[str] = field(default_factory=list)
    # The parts the check read and did not settle, kept for the run (check_manifest's
    # `keep`): None when there are none to take, and the run reads the manifest again.
    kept: KeptParts | None = field(default=None, compare=False, repr=False)

    def forget_settled(self) -> None:
        """The run must meet every pair after all (the log changed under it, say): nothing
        passed over, and the manifest read again (the kept parts leave the settled out)."""
        self.skips, self.settled = {}, 0
        if self.kept is not None:
            self.kept.close()
            self.kept = None


def check_manifest(
    source: ManifestSource, owner_column: str, group_key: str, over_limit: int = 20, *,
    said_on: int | None = None, settles: Callable[[Block], bool] | None = None,
    vouches: Vouches | None = None, keep: KeptParts | None = None,
) -> ManifestStats:
    """Read the whole manifest once: raise ManifestError naming every bad row (and every pair
    repeated with other options), else count it. `said_on`: see reader.iter_parts.
    `settles`: whether the run has nothing to do for a block (the resume index's verdict);
    the runs of such blocks are kept in the stats, for the run to pass over unread.
    `vouches`: its verdict on a block's attribute texts as written (fastpath.fast_blocks),
    which settles a block without reading them. `keep`: where to keep every part not
    settled, for the run to take instead of reading the manifest again (ManifestStats.kept);
    its owner closes it (a repeat, planned pair by pair from the file, closes it here)."""
    pin_mmap_threshold()  # the set of a million keys below must give its memory back
    identity = source.identity()
    problems: list[ManifestProblem] = []
    total = 0
    # hash((owner, file_id)) of distinct pairs, never the rows themselves. 64 bits are enough
    # here: a collision would only miscount a repeat in this count; the run de-duplicates on
    # items.pair_key (128 bits).
    seen: set[int] = set()
    repeated: set[int] = set()  # pairs met more than once: their options are compared after
    files_of: Counter[str] = Counter()  # owner -> distinct files
    settled = _Settled()
    rows = 0
    notes: list[str] = []
    first_path_line: int | None = None
    for part in iter_parts(source, owner_column, group_key, said_on,
                           vouches=vouches if settles is not None else None, notes=notes):
        if isinstance(part, Block):
            rows += len(part.pairs)
            keys = set(map(hash, part.pairs))
            if len(keys) == len(part.pairs) and seen.isdisjoint(keys):
                seen |= keys  # no repeat: count in bulk
                files_of.update(map(OWNER_OF, part.pairs))
                if settles is not None and (part.vouched or settles(part)):
                    settled.add(part)
                elif keep is not None:
                    keep.add(part)
                continue
            if keep is not None:
                keep.add(part)
            for pair in part.pairs:
                key = hash(pair)
                if key in seen:
                    repeated.add(key)
                else:
                    seen.add(key)
                    files_of[pair[0]] += 1
        elif isinstance(part, ManifestProblem):
            total += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(part)
        else:
            rows += 1
            if keep is not None:
                keep.add(part)
            # A path row's file is named by its path (Item.identity): one matched by two rows
            # of a store is one pair, its options compared as a repeat's.
            key = hash((part.owner, part.identity))
            if part.local is not None and first_path_line is None:
                first_path_line = part.line
            if key in seen:
                repeated.add(key)
            else:
                seen.add(key)
                files_of[part.owner] += 1
    clashes = (_clashes(source, iter_parts(source, owner_column, group_key), repeated)
               if repeated else [])
    if total or clashes:
        merged = sorted(problems + clashes, key=lambda p: p.line or 0)
        raise ManifestError(merged[:MAX_REPORTED_PROBLEMS], total + len(clashes))
    stats = _stats(rows, len(seen), files_of, over_limit)
    if not repeated:  # a repeat is planned pair by pair (the first of it wins): none passed
        stats.skips, stats.settled = settled.skips, settled.pairs
        stats.kept = keep if keep is not None and keep.keeping else None
    elif keep is not None:
        keep.close()  # the run reads the file: its disk is given back now
    stats.identity = identity
    stats.first_path_line, stats.skipped_notes = first_path_line, notes
    return stats


class _Settled:
    """Runs of consecutive settled blocks: byte offset -> (end, lines, state at the end)."""

    def __init__(self) -> None:
        self.skips: dict[int, tuple[int, int, object]] = {}
        self.pairs = 0
        self._last: tuple[int, int] | None = None  # (start, end) of the run being extended

    def add(self, block: Block) -> None:
        self.pairs += len(block.pairs)
        last = self._last
        if last is not None and last[1] == block.offset:
            start = last[0]
            self.skips[start] = (block.end, self.skips[start][1] + block.span, block.state)
        else:
            start = block.offset
            self.skips[start] = (block.end, block.span, block.state)
        self._last = (start, block.end)


def options_key(options: Options | None) -> bytes:
    """8 bytes that stand for a pair's options: equal when SPEC calls them the same (numbers by
    value, keys in any order), and different for None (not managed) and {} (none)."""
    if options is None:
        return b""
    attributes = options.canonical() if options.manages_attributes else "-"
    chunking = ("-" if options.chunking_strategy is None
                else json.dumps(options.chunking_strategy, sort_keys=True))
    return hashlib.blake2b(f"{attributes}|{chunking}".encode(), digest_size=8).digest()


def _clashes(source: ManifestSource, parts: Iterator[Part],
             repeated: set[int]) -> list[ManifestProblem]:
    """Each line where a repeated pair is given other options than before (a second pass,
    over the repeated pairs alone). A pair's options are the first it is given with; a line
    that gives none, or other ones, after that clashes with that line; options first given
    on a repeat clash with the pair's first, plain, line."""
    first: dict[int, list[Any]] = {}  # pair -> [first line, (options_key, line) or None]
    clashes: list[tuple[tuple[str, str], int, int]] = []  # (pair, line, earlier line)
    for part in parts:
        if isinstance(part, Block):
            if repeated.isdisjoint(map(hash, part.pairs)):
                continue
            items: Iterable[Part] = part.items()
        else:
            items = (part,)
        for item in items:
            if not isinstance(item, Item):
                continue
            pair = (item.owner, item.identity)
            key = hash(pair)
            if key not in repeated:
                continue
            state = first.get(key)
            options = item.options
            if state is None:
                given = None if options is None else (options_key(options), item.line)
                first[key] = [item.line, given]
            elif options is None:
                if state[1] is not None:
                    clashes.append((pair, item.line, state[1][1]))
            else:
                mine = options_key(options)
                if state[1] is None:
                    state[1] = (mine, item.line)
                    clashes.append((pair, item.line, state[0]))
                elif state[1][0] != mine:
                    clashes.append((pair, item.line, state[1][1]))
    return [ManifestProblem(source.display, line, _clash_text(pair, earlier, source.base_dir))
            for pair, line, earlier in sorted(clashes, key=lambda clash: clash[1])]


def _clash_text(pair: tuple[str, str], earlier: int, base_dir: str | None) -> str:
    owner, identity = pair
    if identity.startswith(PATH_MARK):  # a path row's file, named as the manifest would
        path = identity[1:]
        if base_dir is not None and path.startswith(os.path.join(base_dir, "")):
            path = os.path.relpath(path, base_dir)
        return (f"file {show(path, 200)} is matched for {owner} with other options than "
                f"on line {earlier}; give the file one set of attributes and "
                "chunking_strategy: narrow one of the globs, or give both rows the same options")
    return (f"{owner}/{identity} is repeated with other options than on line {earlier}; give "
            "the pair one set of attributes and chunking_strategy, or remove the repeat")


def _stats(rows: int, pairs: int, files_of: dict[str, int], over_limit: int) -> ManifestStats:
    stats = ManifestStats(rows=rows, pairs=pairs, duplicates=rows - pairs, owners=len(files_of))
    if files_of:
        # max() keeps the first of equals, and dicts keep insertion order: first seen wins.
        stats.max_files_owner, stats.max_files = max(files_of.items(), key=lambda kv: kv[1])
    over = [(owner, n) for owner, n in files_of.items() if n > over_limit]
    over.sort(key=lambda kv: (-kv[1], kv[0]))
    stats.owners_over = over[:OWNERS_OVER_SHOWN]
    stats.owners_over_count = len(over)
    return stats
