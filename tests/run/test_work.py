"""The run's units of work: how the opening is taken (run/work.py)."""

from __future__ import annotations

from collections.abc import Iterator

from runner.items import Item
from runner.run.work import NewBatch, interleave_owners


def test_the_opening_of_a_batched_run_holds_a_bounded_number_of_pairs() -> None:
    """interleave_owners reorders the opening across owners, but with --batch-size it stops
    at OPENING_PAIRS pairs, not 256 units (which were the whole of a big manifest)."""
    pulled = 0

    def batches() -> Iterator[NewBatch]:
        nonlocal pulled
        for store in range(400):
            for part in range(2):
                pulled += 500
                yield NewBatch(f"vs_{store}", [Item(f"vs_{store}", f"f-{part}-{i}")
                                               for i in range(500)])

    work = interleave_owners(batches(), 256, max_pairs=20_000)
    first = next(work)
    assert pulled == 20_000  # 40 units, not 256 (128,000 pairs)
    opening = [first] + [next(work) for _ in range(39)]
    assert len({unit.store for unit in opening[:20]}) == 20  # one unit of each store first
    assert sum(1 for _ in work) == 800 - 40
