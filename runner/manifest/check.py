"""Checking a whole manifest in one pass: every bad row named, else what it holds counted
(pairs, repeats, owners, the most crowded owner)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter

from runner.errors import MAX_REPORTED_PROBLEMS, ManifestError, ManifestProblem
from runner.items import pin_mmap_threshold
from runner.manifest.common import Block, ManifestSource
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
    source: ManifestSource, owner_column: str, group_key: str, over_limit: int = 20
) -> ManifestStats:
    """Read the whole manifest once: raise ManifestError naming every bad row, else count it."""
    pin_mmap_threshold()  # the set of a million keys below must give its memory back
    problems: list[ManifestProblem] = []
    total = 0
    # hash((owner, file_id)) of distinct pairs, never the rows themselves. 64 bits are enough
    # here: a collision would only miscount a repeat in this count; the run de-duplicates on
    # items.pair_key (128 bits).
    seen: set[int] = set()
    files_of: Counter[str] = Counter()  # owner -> distinct files
    rows = 0
    for part in iter_parts(source, owner_column, group_key):
        if isinstance(part, Block):
            rows += len(part.pairs)
            keys = set(map(hash, part.pairs))
            if len(keys) == len(part.pairs) and seen.isdisjoint(keys):
                seen |= keys  # no repeat: count in bulk
                files_of.update(map(OWNER_OF, part.pairs))
                continue
            for pair in part.pairs:
                key = hash(pair)
                if key not in seen:
                    seen.add(key)
                    files_of[pair[0]] += 1
        elif isinstance(part, ManifestProblem):
            total += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(part)
        else:
            rows += 1
            key = hash((part.owner, part.file_id))
            if key not in seen:
                seen.add(key)
                files_of[part.owner] += 1
    if total:
        raise ManifestError(problems, total)
    return _stats(rows, len(seen), files_of, over_limit)


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
