"""The opening window: how many requests may be in flight before the run's first success.

The default `--concurrency` is high (256) so that pacing, not the worker pool, decides the rate
when answers are slow (see runner/config/options.py). A high cap must not let a run that has
heard nothing but refusals (a wrong base URL) fire hundreds of requests before the breaker's
20 answers are in. So until the first 2xx answer, requests in flight are held to 1 + the
answers so far, like TCP's slow start (one more per answer: the window doubles once a round
trip). When the breaker trips
on its 20th answer at most 2 x 19 + 1 = 39 requests have left (SPEC: at most 40 with default
settings). The first 2xx opens the window for good: from then on the rate limiter paces the run
and `--concurrency` is the only cap. Only an unknown limit (`--rpm auto`, the default) opens
this way: a run told its rate opens at that rate, as it always did. A server that answers
nothing for PATIENCE seconds (a hung first request) lets one more out per PATIENCE, as the rate
limiter's probe does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

PATIENCE = 2.0  # seconds without any answer after which one more request may go


class OpeningWindow:
    """In flight at most 1 + answers (+ one per silent PATIENCE) until the first success."""

    __slots__ = ("open", "_in_flight", "_allowed", "_waiters", "_timer")

    def __init__(self, *, opened: bool = False) -> None:
        self.open = opened  # a 2xx came: no limit from here on (checked on the hot path)
        self._in_flight = 0  # slots taken and not given back
        self._allowed = 1  # 1 + answers + silent periods
        # Waiting acquirers in arrival order; a granted future already holds its slot.
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None  # PATIENCE without an answer

    async def acquire(self) -> None:
        """Wait for a slot (at once when open). Each slot taken is given back by `release`."""
        if self.open:
            return
        if self._in_flight < self._allowed and not self._waiters:
            self._in_flight += 1
            return
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()
        self._waiters.append(granted)
        if self._timer is None:
            self._timer = loop.call_later(PATIENCE, self._silent)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(ok=False, answered=False)  # granted, then cancelled: give it back
            else:
                with contextlib.suppress(ValueError):  # _wake drops cancelled waiters itself
                    self._waiters.remove(granted)
            raise

    def release(self, *, ok: bool, answered: bool = True) -> None:
        """A request holding a slot ended: `ok` when it was answered 2xx (opens the window)."""
        if self.open:
            return
        self._in_flight -= 1
        if ok:
            self.open = True
            self._stop_timer()
            while self._waiters:
                _grant(self._waiters.popleft())
            return
        if answered:
            self._allowed += 1
            self._stop_timer()
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self._allowed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                _grant(waiter)
        if self._waiters and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(PATIENCE, self._silent)

    def _silent(self) -> None:
        """PATIENCE passed with waiters and no answer: the requests out may never report."""
        self._timer = None
        self._allowed += 1
        self._wake()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _grant(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
