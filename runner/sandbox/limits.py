"""Rate limits of the sandbox: a token bucket, and the headers OpenAI sends about it.

Time is `time.monotonic()` seconds throughout.
"""

from __future__ import annotations

import math

# Float sums drift: a client spaced exactly at the rate must not miss a token by 1e-12.
_EPSILON = 1e-9


class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second, starting full; one request takes one."""

    __slots__ = ("rate", "capacity", "_tokens", "_updated")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity  # tokens at `_updated`
        self._updated = now

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available."""
        self._refill(now)
        if self._tokens >= 1 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / self.rate

    def remaining(self, now: float) -> int:
        """Whole tokens left."""
        self._refill(now)
        return int(self._tokens + _EPSILON)

    def time_to_full(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        self._refill(now)
        return max(0.0, (self.capacity - self._tokens) / self.rate)


def format_go_duration(seconds: float) -> str:
    """Seconds as Go's `time.Duration.String()` at millisecond precision, as OpenAI sends
    `x-ratelimit-reset-requests`: `0s`, `20ms`, `1s`, `1.5s`, `6m0s`, `1h0m0s`."""
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def retry_headers(wait: float) -> dict[str, str]:
    """`retry-after` (whole seconds, rounded up, at least 1) and `retry-after-ms` (exact)."""
    return {
        "retry-after": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
    }
