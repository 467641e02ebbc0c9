"""The run's units of work, from the manifest and the log: what to send, check, update or
follow, in what order.

`iter_work` plans each manifest pair against the resume index (batching new pairs per store
with --batch-size), `interleave_owners` opens the run across owners (for the breaker), and
`FreeStoresFirst` keeps every vector store busy when the manifest is grouped by store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.items import Item
from runner.log.resume import ResumeIndex
from runner.log.states import DONE_STATES, Plan
from runner.manifest import Block

if TYPE_CHECKING:
    from runner.operations.base import Operation
    from runner.run.tally import Tally

# The opening units are reordered round-robin by owner across this many (see interleave_owners),
# holding this many pairs once they span the owners the breaker's first answers must span
# (SPEC: at least 3), and never more than OPENING_MOST_PAIRS: with --batch-size 500, 256 units
# were 128,000 pairs, the whole of a big manifest held as Items before the first request.
# 5,000 pairs are ten batches of 500; holding 20,000 always cost a batched run with attributes
# 7 MiB of peak memory (bench/attributes_bench.py --batch-size 500: 73 -> 66 MiB).
OPENING_LOOKAHEAD = 256
OPENING_PAIRS = 5_000
OPENING_MOST_PAIRS = 20_000
OPENING_OWNERS = 3
# Vector stores: pairs held back while their store is busy, so others can go (see FreeStoresFirst).
STORE_LOOKAHEAD = 20_000


@dataclass(slots=True)
class Single:
    item: Item
    plan: Plan


@dataclass(slots=True)
class NewBatch:
    store: str
    items: list[Item]


@dataclass(slots=True)
class FollowBatch:
    store: str
    batch_id: str
    items: list[Item]


Work = Single | NewBatch | FollowBatch


def _store_of(unit: Work) -> str:
    """The unit's owner: the assistant or vector store its requests go to."""
    return unit.item.owner if isinstance(unit, Single) else unit.store


def interleave_owners(work: Iterator[Work], lookahead: int, max_pairs: int = OPENING_PAIRS,
                      most_pairs: int = OPENING_MOST_PAIRS) -> Iterator[Work]:
    """The first `lookahead` units (about `max_pairs` pairs once they span OPENING_OWNERS
    owners, at most about `most_pairs`), taken round-robin by owner, then the rest in order.

    A run's first answers decide the breaker (SPEC: the first 20 answers must span 3 owners
    before a uniform refusal stops the run). A manifest sorted by owner would otherwise open
    with 20 requests to one owner, and a wrong base URL could then burn the whole manifest."""
    head: dict[str, list[Work]] = {}
    pairs = 0
    for taken, unit in enumerate(work, 1):
        head.setdefault(_store_of(unit), []).append(unit)
        pairs += _size(unit)
        if taken >= lookahead or pairs >= most_pairs or (
                pairs >= max_pairs and len(head) >= OPENING_OWNERS):
            break
    queues = [q[::-1] for q in head.values()]  # popped from the end: keeps each owner's order
    while queues:
        for queue in queues:
            yield queue.pop()
        queues = [q for q in queues if q]
    yield from work


def _size(unit: Work) -> int:
    return 1 if isinstance(unit, Single) else len(unit.items)


class FreeStoresFirst:
    """The work in manifest order, except that a unit whose vector store is busy (its
    per-store slot is not free yet) waits aside, up to `lookahead` pairs, while units of free
    stores go first. The API allows each store 300 requests a minute: without this, a manifest
    grouped by store (a grouped YAML manifest always is) kept every worker queueing behind one
    store, at one store's rate, while the other stores sat idle.

    Each store's own units keep their order. When every store in sight is busy (or the
    lookahead is full), a worker gets the unit whose store frees first and waits for it there.
    Units still held when the run stops were never sent: they stay pending for the next run."""

    def __init__(self, work: Iterator[Work], ready_in: Callable[[str], float], *,
                 lookahead: int = STORE_LOOKAHEAD) -> None:
        self._work: Iterator[Work] | None = work
        self._ready_in = ready_in
        self._lookahead = lookahead
        self._held: dict[str, deque[Work]] = {}  # busy store -> its units, in manifest order
        self._holding = 0  # pairs in _held

    def __iter__(self) -> FreeStoresFirst:
        return self

    def __next__(self) -> Work:
        ready_in = self._ready_in
        for store in self._held:
            if ready_in(store) <= 0.0:
                return self._release(store)
        while self._work is not None and self._holding < self._lookahead:
            unit = next(self._work, None)
            if unit is None:
                self._work = None
                break
            store = _store_of(unit)
            if store not in self._held and ready_in(store) <= 0.0:
                return unit
            self._held.setdefault(store, deque()).append(unit)
            self._holding += _size(unit)
        if not self._held:
            raise StopIteration
        return self._release(min(self._held, key=ready_in))

    def _release(self, store: str) -> Work:
        queue = self._held[store]
        unit = queue.popleft()
        if not queue:
            del self._held[store]
        self._holding -= _size(unit)
        return unit


def iter_work(parts: Iterable[Block | Item], index: ResumeIndex, tally: Tally, *,
              retry_failed: bool, batch_size: int,
              operation: Operation | type[Operation] | None = None) -> Iterator[Work]:
    """Manifest items in order, minus what the log settles (counted in `tally`); with
    `batch_size`, new pairs grouped per store into batches, flushed at the end. `parts`:
    items, or the manifest's blocks of pairs (manifest.iter_blocks), which a rerun that has
    them all done skips whole. `operation` (or its class) plans each pair (None: attach)."""
    pending: dict[str, list[Item]] = {}  # store -> items waiting for a full batch
    follow: dict[str, FollowBatch] = {}  # batch id -> its manifest items (followed at the end)
    skips_blocks = operation is None or operation.skips_blocks
    resolve = index.uploads.resolve if operation is None else (
        lambda item: operation.resolve(index, item))
    for item in _items_to_plan(parts, index, tally, skips_blocks, resolve):
        plan, raw = (index.plan(item, retry_failed=retry_failed) if operation is None
                     else operation.plan(index, item, retry_failed=retry_failed))
        if plan is Plan.DUPLICATE:
            count_duplicate(index, tally, item, raw)
        elif plan is Plan.DONE:
            tally.done_earlier += 1
        elif plan is Plan.SKIP_REFUSED:
            tally.refused_earlier += 1
        elif plan is Plan.FOLLOW and (batch_id := index.batch_for(item)) is not None:
            unit = follow.get(batch_id)
            if unit is None:
                unit = follow[batch_id] = FollowBatch(item.owner, batch_id, [])
            unit.items.append(item)
        elif batch_size > 0 and plan is Plan.SEND:
            group = pending.setdefault(item.owner, [])
            group.append(item)
            if len(group) >= batch_size:
                del pending[item.owner]
                yield NewBatch(item.owner, group)
        else:
            yield Single(item, Plan.CHECK if plan is Plan.FOLLOW else plan)
    yield from follow.values()
    for store, group in pending.items():
        yield NewBatch(store, group)


def count_duplicate(index: ResumeIndex, tally: Tally, item: Item, raw: int | None) -> None:
    """A pair the manifest met before. A path of a content another path has in place in the
    store is one pair with it: done if its row asks for what the other's line recorded, else
    refused (a file has one set of attributes in a store). Any other repeat is a repeat."""
    if item.local is None or raw not in DONE_STATES:
        tally.duplicates += 1
    elif index.records_in_place(item.owner, item.file_id, managed_digest(item)):
        tally.done_earlier += 1
    else:
        tally.refused_earlier += 1


def managed_digest(item: Item) -> int | None:
    """The digest of the attributes the pair manages, None when it manages none."""
    options = item.options
    return options.digest_value() if options is not None and options.manages_attributes else None


def digests_of(block: Block) -> Callable[[], list[int | None]] | None:
    """What a block's pairs must have recorded of their attributes to be settled (None: no
    pair of it manages attributes)."""
    return None if block.attributes is None else block.digests


def block_settles(index: ResumeIndex) -> Callable[[Block], bool]:
    """The check's verdict on a block: the log has all of it done (see check_manifest)."""
    return lambda block: index.settles(block.pairs, digests_of(block))


def block_vouches(index: ResumeIndex) -> Callable[[Block], bool]:
    """The check's verdict on a block by its attribute texts as written, before they are read
    (see fastpath.fast_blocks): the log has all of it done with these very texts."""
    return lambda block: index.vouches(block.pairs, block.written, block.written_before)


def _items_to_plan(parts: Iterable[Block | Item], index: ResumeIndex, tally: Tally,
                   skips_blocks: bool, resolve: Callable[[Item], Item]) -> Iterator[Item]:
    for part in parts:
        if isinstance(part, Item):
            # A local file the log has read with this size and mtime names its content's
            # file object (the quick check), and plans as a file_id pair (Operation.resolve).
            yield part if part.local is None else resolve(part)
        elif skips_blocks and index.all_in_place(part.pairs, digests_of(part)):
            tally.done_earlier += len(part.pairs)
        else:
            yield from part.items()
