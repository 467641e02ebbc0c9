"""The settle rule's waiting room: items whose last write may have been applied, each
checked no sooner than its due time (SPEC, Behaviour under trouble; see outcomes.Unsettled).

Workers take a parked item whose time has come before any new work, then work handed in late
(`push`: sync's replaces, fed as their new versions land); once the work has run out they
wait for the next one due, or for more pushed while a feed is open (or a stop). Nothing here
sleeps a worker while other work is waiting, and nothing wakes more workers than there is
work for: a push, or a new earliest parked item, wakes one waiting worker, and a worker that
takes a unit while more is ready wakes the next (every waiting worker woken at each push cost
~1.8 ms of CPU a push with 64 workers, 6.5 ms with 256).

Taking new work reads the manifest (a batch of 500 attributed rows is milliseconds of CPU),
and the loop reads no socket meanwhile: a turn of the loop reads at most READ_PER_TURN of it
before the answers waiting get their turn. Else the 64 workers of a batched run each read their
batch in the run's first turn, and the first request went out a third of a second late.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from runner.items import Item
from runner.requests.outcomes import Unsettled

U = TypeVar("U")

READ_PER_TURN = 0.002  # seconds of reading new work in one turn of the event loop


@dataclass(order=True, slots=True)
class Parked:
    """An item whose last write may have been applied, waiting for its check (the settle
    rule: see outcomes.Unsettled). `unsettled` is None for a pair an earlier run left
    uncertain: its check has not begun, and it has no `sent` line in this run yet."""

    due: float  # loop time
    serial: int  # ties keep arrival order
    item: Item = field(compare=False)
    unsettled: Unsettled | None = field(compare=False, default=None)


class SettleQueue:
    """Parked items, earliest due first, and the wait for them."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self._stopping = stopping
        self._parked: list[Parked] = []  # a heap, earliest due first
        self._serial = 0
        self._work_left = True
        self._waiters: deque[asyncio.Future[None]] = deque()  # workers waiting, oldest first
        # Work handed in while the run goes on (`push`), and how many feeds may still hand
        # some in: while one is open, workers whose work ran out wait instead of ending.
        self._pushed: deque[object] = deque()
        self._feeds = 0
        self._read_this_turn = 0.0  # seconds spent reading work in this turn of the loop

    def park(self, item: Item, unsettled: Unsettled | None, due: float) -> None:
        """Hold an item until its check may go out (the settle rule)."""
        self._serial += 1
        entry = Parked(due, self._serial, item, unsettled)
        heapq.heappush(self._parked, entry)
        if self._parked[0] is entry:
            self._wake()  # a waiting worker may have to wake sooner

    def push(self, unit: object) -> None:
        """Work handed in late: taken before the work iterator's next unit."""
        self._pushed.append(unit)
        self._wake()

    def open_feed(self) -> None:
        """Workers whose work ran out wait for `push` from now on, until `close_feed`."""
        self._feeds += 1

    def close_feed(self) -> None:
        """A feed will push no more: workers may end once the work is done."""
        self._feeds -= 1
        self._wake(everyone=True)

    def stop(self) -> None:
        """The run stops: every waiting worker ends its wait (take returns None)."""
        self._stopping.set()
        self._wake(everyone=True)

    def _wake(self, *, everyone: bool = False) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return

    @property
    def settling(self) -> tuple[int, float] | None:
        """(items waiting for their check, loop time the first is due), or None."""
        if not self._parked:
            return None
        return len(self._parked), self._parked[0].due

    async def take(self, work: Iterator[U]) -> U | Parked | None:
        """The next thing to do: a parked item whose time has come, else the next unit of
        work; when the work has run out, wait for the next parked item (or a stop)."""
        loop = asyncio.get_running_loop()
        parked = self._parked
        while not self._stopping.is_set():
            if parked and parked[0].due <= loop.time():
                return self._passing_on(heapq.heappop(parked))
            if self._pushed:
                return self._passing_on(self._pushed.popleft())  # type: ignore[return-value]
            if self._work_left:
                if self._read_this_turn >= READ_PER_TURN:
                    await asyncio.sleep(0)  # the next turn, after the sockets are read
                    continue
                unit = self._read(work, loop)
                if unit is not None:
                    return unit
                self._work_left = False
            if not parked and not self._feeds and not self._pushed:
                return None
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = (loop.call_later(max(0.0, parked[0].due - loop.time()), _end, waiter)
                     if parked else None)
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                if not waiter.done():  # the worker was cancelled
                    waiter.cancel()
                if waiter in self._waiters:  # its time came, not a wake: out of the line
                    self._waiters.remove(waiter)
        return None

    def _read(self, work: Iterator[U], loop: asyncio.AbstractEventLoop) -> U | None:
        """The next unit of work, its reading counted against this turn of the loop."""
        if not self._read_this_turn:
            loop.call_soon(self._new_turn)  # runs at the start of the next turn
        started = time.perf_counter()
        unit = next(work, None)
        # Never 0 once something was read: the next turn's reset is scheduled once a turn.
        self._read_this_turn += time.perf_counter() - started or 1e-9
        return unit

    def _new_turn(self) -> None:
        self._read_this_turn = 0.0

    def _passing_on(self, taken: U) -> U:
        """A unit taken from what was ready: if more is ready, the next waiting worker
        wakes for it (one wake a unit)."""
        if self._pushed or (self._parked and
                            self._parked[0].due <= asyncio.get_running_loop().time()):
            self._wake()
        return taken

    def drain(self) -> Iterator[Parked]:
        """Every item still parked (the run is stopping), earliest first."""
        while self._parked:
            yield heapq.heappop(self._parked)


def _end(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
