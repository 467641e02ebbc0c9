"""Spare slots (runner/pacing/spare.py), on the real clock with short periods: uploads and file
deletes take only the slots of the run's rate that the other requests leave free."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from runner.pacing.limiter import RateLimiter
from runner.pacing.spare import DELETE_RANK, UPLOAD_RANK, SpareSlots

from .test_limiter import busiest, now


async def test_spare_waiters_go_after_every_reserved_slot_by_rank() -> None:
    """Store writes (plain acquirers) come first, even one that arrives while spare waiters
    wait; then uploads; deletes last; and the grants together keep the limiter's rate."""
    limiter = RateLimiter(10, auto=False, period=1.0)  # a slot every 0.1 s
    spare = SpareSlots(limiter)
    order: list[tuple[str, float]] = []

    async def take(name: str, acquire: Awaitable[None]) -> None:
        await acquire
        order.append((name, now()))

    async def late_write() -> None:
        await asyncio.sleep(0.75)  # while the spare waiters wait
        await take("write-late", limiter.acquire())

    tasks = [asyncio.create_task(take(f"write{i}", limiter.acquire())) for i in range(5)]
    await asyncio.sleep(0)  # the writes reserve their slots first
    tasks += [asyncio.create_task(take(f"delete{i}", spare.acquire(DELETE_RANK)))
              for i in range(3)]
    tasks += [asyncio.create_task(take(f"upload{i}", spare.acquire(UPLOAD_RANK)))
              for i in range(3)]
    tasks.append(asyncio.create_task(late_write()))
    await asyncio.gather(*tasks)

    names = [name for name, _ in order]
    assert names[:5] == [f"write{i}" for i in range(5)]
    # The uploads came after the writes reserved before them, the deletes after the uploads,
    # and the write that came at 0.75 s went ahead of the deletes still waiting.
    uploads = [names.index(f"upload{i}") for i in range(3)]
    deletes = [names.index(f"delete{i}") for i in range(3)]
    assert uploads == sorted(uploads)
    assert deletes == sorted(deletes)
    assert max(uploads) < min(deletes)
    assert names.index("write-late") < max(deletes)
    times = [t for _, t in order]
    assert busiest(times, 0.5) <= 5 + 1  # 10 a second, B = 1


async def test_a_waiter_that_stops_waiting_gives_its_turn_to_the_next() -> None:
    limiter = RateLimiter(20, auto=False, period=1.0)
    spare = SpareSlots(limiter)
    await limiter.acquire()  # the next free slot is 0.05 s away
    first = asyncio.create_task(spare.acquire(UPLOAD_RANK))
    second = asyncio.create_task(spare.acquire(UPLOAD_RANK))
    await asyncio.sleep(0)
    first.cancel()  # a halted run cuts its wait
    await asyncio.wait_for(second, 1.0)
    assert first.cancelled()


async def test_no_wait_when_a_slot_is_free() -> None:
    limiter = RateLimiter(None, auto=False)  # unlimited
    spare = SpareSlots(limiter)
    started = now()
    for _ in range(100):
        await spare.acquire(DELETE_RANK)
    assert now() - started < 0.5
