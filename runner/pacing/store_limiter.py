"""Per-key pacing for --store-rpm: one fixed-rate `RateLimiter` per vector store.

Each store has its own GCRA spacing, 429 pause and rate drop (docs/trouble.md, "429"), with a
little slack on the period for the server's late count, and late requests leave at the store's
rate, never bunched. Which 429s are a store's is runner/pacing/store_429.py.
"""

from __future__ import annotations

import asyncio

from runner.pacing.limiter import RateLimiter

# Per-key slack on the period: OpenAI's per-store limit (300 a minute) is counted by the server.
KEY_SLACK = 1 / 120
# Late requests leave at most this far under one interval apart: a hair of slack, so that a
# request on time in its slot does not wait for one that left a hair late (loop jitter), and
# a backlog still drains at no more than 1/0.995 of the key's rate (a store's bucket of 5 at
# 300 a minute absorbs that for a backlog of 1,000).
SPACING_SLACK = 0.995


class KeyedLimiter:
    """One fixed-rate limiter per key (e.g. per vector store for --store-rpm), made lazily.

    Each key has its own GCRA spacing, 429 pause and rate drop; keys are few (stores).
    The server counts our requests when they arrive, a little after their slots and not all
    equally late, so each key aims at `rpm` per `period * (1 + KEY_SLACK)`: calls sent up to
    that much late (0.5 s in a minute) still never put `rpm + 1` in one `period` window.
    """

    __slots__ = ("_rpm", "_period", "_limiters", "_departed")

    def __init__(self, rpm: float, *, period: float = 60.0) -> None:
        self._rpm = rpm
        self._period = period
        self._limiters: dict[str, RateLimiter] = {}
        self._departed: dict[str, float] = {}  # key -> when its last request left (or will)

    def _limiter(self, key: str) -> RateLimiter:
        limiter = self._limiters.get(key)
        if limiter is None:
            period = self._period * (1 + KEY_SLACK)
            limiter = self._limiters[key] = RateLimiter(self._rpm, auto=False, period=period)
        return limiter

    async def acquire(self, key: str) -> None:
        """Wait for this key's next slot."""
        await self._limiter(key).acquire()

    async def space(self, key: str) -> bool:
        """Call after the run's own slot, as the request leaves: one interval of this key's
        after its last request left, or at once. True when it had to wait.

        A key's slot is a time: a request that waited past it for the run's slot (slow start,
        a 429 pause) would else leave bunched with the key's next requests, and a backlog
        would catch up faster than the key's rate; a store's bucket answers both with 429s.
        So late requests go out at the key's rate, never faster (SPACING_SLACK aside)."""
        limiter = self._limiters.get(key)
        if limiter is None:
            return False
        now = asyncio.get_running_loop().time()
        due = self._departed.get(key, 0.0) + limiter.interval * SPACING_SLACK
        # Claimed before sleeping, so that the next late one queues behind this one.
        self._departed[key] = max(now, due)
        if now >= due:
            return False
        await asyncio.sleep(due - now)
        return True

    def ready_in(self, key: str) -> float:
        """RateLimiter.ready_in for this key (0.0 for a key not used yet)."""
        limiter = self._limiters.get(key)
        return 0.0 if limiter is None else limiter.ready_in()

    @property
    def rpm(self) -> float:
        """The per-key limit given (--store-rpm)."""
        return self._rpm

    def on_429(self, key: str, retry_after: float | None) -> None:
        """Pause this key only."""
        self._limiter(key).on_429(retry_after)

    def on_response(self, key: str, *, limit: int | None, remaining: int | None,
                    reset: float | None) -> None:
        """Headers that describe this key's own limit (a store's 429): they pace this key only.
        Call after `on_429`, so the drop starts from the old rate and climbs back only to
        what the header allows (a drop after learning the limit would go below it)."""
        self._limiter(key).on_response(limit=limit, remaining=remaining, reset=reset)

    def stats(self) -> dict[str, float]:
        """The per-key counters, summed."""
        total: dict[str, float] = {}
        for limiter in self._limiters.values():
            for name, value in limiter.stats().items():
                total[name] = total.get(name, 0.0) + value
        return total
