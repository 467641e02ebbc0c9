"""The run's units of work: how the opening is taken (run/work.py)."""

from __future__ import annotations

from collections.abc import Iterator

from runner.items import Item
from runner.run.work import OPENING_OWNERS, NewBatch, Work, interleave_owners


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

    work = interleave_owners(batches(), 256, max_pairs=20_000, most_pairs=20_000)
    first = next(work)
    assert pulled == 20_000  # 40 units, not 256 (128,000 pairs)
    opening = [first] + [next(work) for _ in range(39)]
    assert len({unit.store for unit in opening[:20]}) == 20  # one unit of each store first
    assert sum(1 for _ in work) == 800 - 40


def opening_of(files_per_store: int, batch_size: int = 500) -> tuple[int, list[str]]:
    """With the default bounds: the pairs a batched run's opening holds (pulled before the
    first unit is handed out), and the owners of its first 20 units, in order."""
    pulled = 0

    def batches() -> Iterator[Work]:
        nonlocal pulled
        for store in range(60):
            for part in range(files_per_store // batch_size):
                pulled += batch_size
                yield NewBatch(f"vs_{store}", [Item(f"vs_{store}", f"f-{part}-{i}")
                                               for i in range(batch_size)])

    work = interleave_owners(batches(), 256)
    first = [next(work)]
    held = pulled
    first += [next(work) for _ in range(19)]
    return held, [unit.store for unit in first if isinstance(unit, NewBatch)]


def test_a_batched_opening_is_small_when_owners_are_many() -> None:
    """Stores of 1,000 files: the opening stops at 5,000 pairs (ten batches, five stores),
    and its first answers span them (the breaker's rule)."""
    pulled, owners = opening_of(1_000)
    assert pulled == 5_000
    assert len(set(owners[:5])) == 5


def test_a_batched_opening_of_big_stores_still_spans_the_breakers_owners() -> None:
    """Stores of 6,000 files (12 batches each): 5,000 pairs would be one store, and a wrong
    base URL's 20 refusals would never span the 3 owners the breaker needs (SPEC). The opening
    takes on until it spans them (at most 20,000 pairs)."""
    pulled, owners = opening_of(6_000)
    assert pulled == 12_500  # two stores of 6,000, then the third one's first batch
    assert len(set(owners[:OPENING_OWNERS])) == OPENING_OWNERS
