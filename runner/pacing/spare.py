"""Slots of the run's rate that its other requests leave free, for requests that can wait.

Uploads and file deletes count against the run's rate (SPEC: `--rpm` counts every request the
run sends; the API's request limit counts them too). `RateLimiter` hands out slots in arrival
order, and these two come in floods: uploads as fast as their own limiter lets them, deletes as
fast as detaches free objects. Queued in line with the store writes they would push each store
write later and later, and a store (300 writes a minute) would fall behind its own rate while
the run's rate was full of work that could have gone at any time. So they take only the slots
no other request has reserved: by rank (uploads, whose attaches the stores wait for, before
deletes), then first come, first served. One task hands the free slots out, so a slot wakes
one waiter, not every one.
"""

from __future__ import annotations

import asyncio
import heapq

from runner.pacing.limiter import RateLimiter

UPLOAD_RANK = 0
DELETE_RANK = 1
_IDLE_LOOK = 0.001  # seconds: how soon to look again when the limiter refused without a time


class SpareSlots:
    """Free slots of `limiter` for requests of lower rank than its own acquirers."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # heap: rank, serial
        self._serial = 0
        self._dispatcher: asyncio.Task[None] | None = None

    async def acquire(self, rank: int) -> None:
        """Wait for a slot nobody else wants (no wait when one is free and no one is ahead)."""
        if not self._waiting and self._limiter.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._serial += 1
        heapq.heappush(self._waiting, (rank, self._serial, waiter))
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._hand_out())
        await waiter

    async def _hand_out(self) -> None:
        limiter, waiting = self._limiter, self._waiting
        while waiting:
            if waiting[0][2].done():  # its waiter stopped waiting (the run halted)
                heapq.heappop(waiting)
                continue
            if limiter.try_acquire():
                heapq.heappop(waiting)[2].set_result(None)
                continue
            await asyncio.sleep(limiter.ready_in() or _IDLE_LOOK)
