"""Checking a whole manifest in one pass: every bad row named, and every pair repeated with other
options, else what it holds counted (pairs, repeats, owners, the most crowded owner)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter

from runner.attributes import Options, canonical
from runner.errors import MAX_REPORTED_PROBLEMS, ManifestError, ManifestProblem
from runner.items import Item, pin_mmap_threshold
from runner.manifest.common import Block, ManifestSource, Part
from runner.manifest.reader import iter_parts

OWNERS_OVER_SHOWN = 20
OWNER_OF = itemgetter(0)


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


def check_manifest(
    source: ManifestSource, owner_column: str, group_key: str, over_limit: int = 20, *,
    said_on: int | None = None,
) -> ManifestStats:
    """Read the whole manifest once: raise ManifestError naming every bad row (and every pair
    repeated with other options), else count it. `said_on`: see reader.iter_parts."""
    pin_mmap_threshold()  # the set of a million keys below must give its memory back
    problems: list[ManifestProblem] = []
    total = 0
    # hash((owner, file_id)) of distinct pairs, never the rows themselves. 64 bits are enough
    # here: a collision would only miscount a repeat in this count; the run de-duplicates on
    # items.pair_key (128 bits).
    seen: set[int] = set()
    files_of: Counter[str] = Counter()  # owner -> distinct files
    repeats = _Repeats()
    rows = 0
    for part in iter_parts(source, owner_column, group_key, said_on):
        if isinstance(part, Block):
            rows += len(part.pairs)
            keys = set(map(hash, part.pairs))
            if len(keys) == len(part.pairs) and seen.isdisjoint(keys):
                seen |= keys  # no repeat: count in bulk
                files_of.update(map(OWNER_OF, part.pairs))
                continue
            for line, pair in enumerate(part.pairs, part.line):
                key = hash(pair)
                if key not in seen:
                    seen.add(key)
                    files_of[pair[0]] += 1
                elif repeats.given:
                    repeats.plain_again(key, pair, line)
        elif isinstance(part, ManifestProblem):
            total += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(part)
        else:
            rows += 1
            key = hash((part.owner, part.file_id))
            new = key not in seen
            if new:
                seen.add(key)
                files_of[part.owner] += 1
            if part.options is not None:
                repeats.with_options(key, part, new)
            elif not new and repeats.given:
                repeats.plain_again(key, (part.owner, part.file_id), part.line)
    clashes = repeats.problems(source, lambda: iter_parts(source, owner_column, group_key))
    if total or clashes:
        merged = sorted(problems + clashes, key=lambda p: p.line or 0)
        raise ManifestError(merged[:MAX_REPORTED_PROBLEMS], total + len(clashes))
    return _stats(rows, len(seen), files_of, over_limit)


def options_key(options: Options | None) -> bytes:
    """8 bytes that stand for a pair's options: equal when SPEC calls them the same (numbers by
    value, keys in any order), and different for None (not managed) and {} (none)."""
    if options is None:
        return b""
    attributes = "-" if options.attributes is None else canonical(options.attributes)
    chunking = ("-" if options.chunking_strategy is None
                else json.dumps(options.chunking_strategy, sort_keys=True))
    return hashlib.blake2b(f"{attributes}|{chunking}".encode(), digest_size=8).digest()


class _Repeats:
    """A pair repeated with other options than before. Only pairs that give options are
    remembered (`given`), so a plain manifest costs nothing more than its set of keys."""

    def __init__(self) -> None:
        self.given: dict[int, tuple[bytes, int]] = {}  # pair -> (options_key, first line)
        self._clashes: list[tuple[tuple[str, str], int, int]] = []  # (pair, line, earlier)
        # pair -> (owner, file_id), line: options on a pair first seen plain, whose first
        # line is looked up in a second pass (only then, so a clean manifest is read once).
        self._after_plain: dict[int, tuple[tuple[str, str], int]] = {}

    def with_options(self, key: int, item: Item, new: bool) -> None:
        mine = options_key(item.options)
        earlier = self.given.get(key)
        if earlier is None:
            self.given[key] = (mine, item.line)
            if not new:
                self._after_plain.setdefault(key, ((item.owner, item.file_id), item.line))
        elif earlier[0] != mine:
            self._clashes.append(((item.owner, item.file_id), item.line, earlier[1]))

    def plain_again(self, key: int, pair: tuple[str, str], line: int) -> None:
        earlier = self.given.get(key)
        if earlier is not None:
            self._clashes.append((pair, line, earlier[1]))

    def problems(self, source: ManifestSource,
                 parts: Callable[[], Iterator[Part]]) -> list[ManifestProblem]:
        clashes = list(self._clashes)
        if self._after_plain:
            for key, line in _first_plain_lines(parts(), set(self._after_plain)).items():
                pair, later = self._after_plain[key]
                clashes.append((pair, later, line))
        return [ManifestProblem(source.display, line, (
            f"{pair[0]}/{pair[1]} is repeated with other options than on line {earlier}; give "
            "the pair one set of attributes and chunking_strategy, or remove the repeat"))
            for pair, line, earlier in sorted(clashes, key=lambda clash: clash[1])]


def _first_plain_lines(parts: Iterator[Part], wanted: set[int]) -> dict[int, int]:
    """pair key -> the first line where it stands without options, for the keys wanted."""
    found: dict[int, int] = {}
    for part in parts:
        items = part.items() if isinstance(part, Block) else (part,)
        for item in items:
            if isinstance(item, Item) and item.options is None:
                key = hash((item.owner, item.file_id))
                if key in wanted and key not in found:
                    found[key] = item.line
    return found


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
