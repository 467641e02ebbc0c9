"""The limiter, measured on the real clock with short periods (20 per 1.0 s), never patched time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from runner.pacing.durations import parse_go_duration
from runner.pacing.limiter import (
    DROP,
    PROBE_PATIENCE,
    SAFETY,
    START_RATE,
    RateLimiter,
)
from runner.pacing.store_429 import binds_store
from runner.pacing.store_limiter import KEY_SLACK, SPACING_SLACK, KeyedLimiter
from runner.requests.opening import PATIENCE as OPENING_PATIENCE
from runner.requests.opening import OpeningWindow


def now() -> float:
    return asyncio.get_running_loop().time()


def busiest(grants: list[float], window: float) -> int:
    """The most grants in any half-open window [t, t + window) that starts at a grant."""
    grants = sorted(grants)
    most, j = 0, 0
    for i, start in enumerate(grants):
        while j < len(grants) and grants[j] < start + window:
            j += 1
        most = max(most, j - i)
    return most


async def grant_times(
    acquire: Callable[[], Awaitable[None]], total: int, workers: int
) -> list[float]:
    """Run `workers` tasks that share `total` acquires; return the loop time of each grant."""
    grants: list[float] = []
    left = [total]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await acquire()
            grants.append(now())

    await asyncio.gather(*(worker() for _ in range(workers)))
    return grants


async def test_fixed_rate_spaces_grants_evenly() -> None:
    """20 per 1.0 s from 16 tasks: no 1 s window holds more than 20 + B, and 60 take ~3 s."""
    limiter = RateLimiter(20, auto=False, period=1.0)
    started = now()
    grants = await grant_times(limiter.acquire, 60, 16)
    duration = max(grants) - started
    assert len(grants) == 60
    assert busiest(grants, 1.0) <= 20 * 1.0 + 1
    assert busiest(grants, 0.1) <= 2 + 1
    assert 2.0 <= duration <= 3.5


async def test_burst_is_at_most_rate_over_600() -> None:
    """At 6,000 per period B is 10: ten start at once, the eleventh waits its turn."""
    limiter = RateLimiter(6000, auto=False, period=60.0)
    started = now()
    grants = await grant_times(limiter.acquire, 12, 12)
    assert sum(1 for t in grants if t - started < 0.005) == 10


async def test_max_burst_caps_the_burst() -> None:
    """max_burst=1 spaces even a high rate strictly."""
    limiter = RateLimiter(6000, auto=False, max_burst=1, period=60.0)
    started = now()
    grants = await grant_times(limiter.acquire, 3, 3)
    assert sum(1 for t in grants if t - started < 0.005) == 1


async def test_unlimited_acquire_is_a_fast_path() -> None:
    """With no rate and no pause, 100,000 acquires take well under a second and never sleep."""
    limiter = RateLimiter(None, auto=False)
    started = time.perf_counter()
    for _ in range(100_000):
        await limiter.acquire()
    assert time.perf_counter() - started < 2.0
    assert limiter.rate is None
    assert limiter.stats()["wait_seconds"] == 0.0


async def test_unlimited_still_pauses_on_429() -> None:
    """Unlimited mode honours a 429 pause, then returns to the fast path."""
    limiter = RateLimiter(None, auto=False)
    limiter.on_429(0.2)
    started = now()
    await limiter.acquire()
    assert now() - started >= 0.19
    assert limiter.rate is None
    assert limiter.paused_until is None


async def test_429_pauses_everyone_and_drops_once() -> None:
    """After on_429(0.3) no waiter is granted for 0.3 s; five quick 429s drop the rate once."""
    limiter = RateLimiter(200, auto=False, period=1.0)
    grants: list[float] = []
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            await limiter.acquire()
            grants.append(now())
            await asyncio.sleep(0.005)  # the request

    tasks = [asyncio.create_task(worker()) for _ in range(16)]
    await asyncio.sleep(0.2)
    first = now()
    for _ in range(5):
        limiter.on_429(0.3)
        await asyncio.sleep(0.01)
    end = limiter.paused_until
    assert end is not None
    assert end >= first + 0.3
    assert limiter.rate == pytest.approx(200 * DROP)
    await asyncio.sleep(0.6)
    stop.set()
    await asyncio.gather(*tasks)
    assert [t for t in grants if first <= t < end] == []
    assert any(t >= end for t in grants)
    assert any(t < first for t in grants)
    assert limiter.stats()["drops"] == 1
    assert limiter.stats()["pauses"] == 1


async def test_rate_recovers_after_a_drop() -> None:
    """After a 429 the rate climbs back step by step to the user's rpm, never above it."""
    limiter = RateLimiter(100, auto=False, period=1.0)
    limiter.on_429(0.05)
    assert limiter.rate == pytest.approx(100 * DROP)
    seen: list[float] = []
    deadline = now() + 1.2
    while now() < deadline:
        await limiter.acquire()
        assert limiter.rate is not None
        seen.append(limiter.rate)
    assert max(seen) == pytest.approx(100)
    assert max(seen) <= 100
    assert len(set(seen)) >= 4  # climbed in steps, not in one jump
    assert seen == sorted(seen)


async def test_auto_mode_probes_with_one_request() -> None:
    """Auto mode: of 16 concurrent acquirers one goes before the first answer; then spaced."""
    limiter = RateLimiter(None, auto=True, period=1.0)
    grants: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        grants.append(now())

    tasks = [asyncio.create_task(one()) for _ in range(16)]
    await asyncio.sleep(0.3)
    assert len(grants) == 1
    answered = now()
    limiter.on_response(limit=600, remaining=599, reset=0.1)
    await asyncio.gather(*tasks)
    assert limiter.rate == pytest.approx(600 * SAFETY)
    later = sorted(grants[1:])
    assert len(later) == 15
    assert later[0] >= answered
    assert later[-1] - later[0] >= 14 * (1.0 / (600 * SAFETY)) * 0.8


async def test_auto_mode_without_headers_opens_at_one_per_round_trip() -> None:
    """Auto mode with no headers opens at one request per round trip of the probe (at least
    START_RATE)."""
    limiter = RateLimiter(None, auto=True, period=1.0)
    await limiter.acquire()
    sent = now()
    await asyncio.sleep(0.005)
    round_trip = now() - sent  # the limiter's own is a little longer: it started earlier
    limiter.on_response(limit=None, remaining=None, reset=None)
    assert limiter.rate is not None
    assert START_RATE <= limiter.rate <= max(START_RATE, 1 / round_trip)


async def test_a_probe_that_carried_a_long_body_opens_at_its_answers_round_trip() -> None:
    """An upload's round trip for the opening rate is from its last byte to its answer: the
    0.3 s its body took to send would open the uploads at about 3 a second."""
    limiter = RateLimiter(None, auto=True, period=60.0)
    await limiter.acquire()
    await asyncio.sleep(0.3)  # the body going out
    last_byte = now()
    await asyncio.sleep(0.01)  # the answer's wait
    limiter.on_response(limit=None, remaining=None, reset=None, sent_at=last_byte)
    assert limiter.rate is not None
    assert limiter.rate > 60.0 / 0.1  # not 60 / 0.31 (about 190 a minute)


async def test_auto_mode_without_headers_doubles_once_a_round_trip() -> None:
    """Slow start: no burst after the probe, then the rate doubles each round trip of answers,
    and sleepers holding slots at the old spacing are let through at the new one."""
    limiter = RateLimiter(None, auto=True, period=1.0)
    round_trip = 0.02
    grants: list[float] = []
    left = [300]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await limiter.acquire()
            grants.append(now())
            await asyncio.sleep(round_trip)
            limiter.on_response(limit=None, remaining=None, reset=None)

    started = now()
    await asyncio.gather(*(worker() for _ in range(32)))
    grants.sort()
    assert limiter.rate is not None
    opening = 1 / round_trip  # at most: the probe's round trip is at least `round_trip`
    # The probe alone, then the opening rate without a burst: not 31 requests at once.
    first = grants[1]
    assert grants[1] - grants[0] >= round_trip * 0.9
    assert sum(1 for t in grants if first <= t < first + round_trip) <= 3
    # Doubling once a round trip: 300 requests take a few round trips, not 300 / opening s.
    assert now() - started < 0.5 * 300 / opening
    assert limiter.rate >= 8 * START_RATE


async def test_auto_mode_ceiling_and_429_stop_slow_start() -> None:
    """A user rpm caps auto mode; a 429 ends doubling (the next growth is additive)."""
    limiter = RateLimiter(100, auto=True, period=1.0)
    await limiter.acquire()
    limiter.on_response(limit=10_000, remaining=None, reset=None)
    assert limiter.rate == 100
    limiter.on_429(0.0)
    assert limiter.rate == pytest.approx(100 * DROP)


async def test_fixed_mode_follows_a_lower_header_limit() -> None:
    """Fixed mode aims under a header limit below --rpm, and never above --rpm."""
    limiter = RateLimiter(600, auto=False, period=1.0)
    limiter.on_response(limit=100, remaining=None, reset=None)
    assert limiter.rate == pytest.approx(100 * SAFETY)
    limiter.on_response(limit=10_000, remaining=None, reset=None)
    assert limiter.rate == 600


async def test_silent_probe_lets_one_more_out() -> None:
    """A probe that never reports (dropped connection) frees one more request after a while."""
    limiter = RateLimiter(None, auto=True, period=1.0)
    tasks = [asyncio.create_task(limiter.acquire()) for _ in range(4)]
    await asyncio.sleep(PROBE_PATIENCE + 0.3)
    assert sum(task.done() for task in tasks) == 2
    limiter.on_response(limit=None, remaining=None, reset=None)
    await asyncio.gather(*tasks)


async def test_low_remaining_spreads_grants_over_reset() -> None:
    """remaining=2, reset=1.0 at a high rate: the next grants spread over ~1 s, not 5 ms."""
    limiter = RateLimiter(600, auto=False, period=1.0)
    answered = now()
    limiter.on_response(limit=None, remaining=2, reset=1.0)
    grants = sorted(await grant_times(limiter.acquire, 5, 5))
    offsets = [t - answered for t in grants]
    assert offsets[0] >= 0.3
    assert sum(1 for t in offsets if t < 0.95) <= 2
    assert offsets[-1] <= 1.3
    assert limiter.stats()["slowdowns"] == 1


async def test_plenty_remaining_keeps_full_speed() -> None:
    """Remaining above what we would send before reset does not slow anything down."""
    limiter = RateLimiter(600, auto=False, period=1.0)
    limiter.on_response(limit=None, remaining=500, reset=0.5)
    started = now()
    await grant_times(limiter.acquire, 10, 10)
    assert now() - started < 0.1
    assert limiter.stats()["slowdowns"] == 0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("250ms", 0.25),
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("2h3m4.5s", 7384.5),
        ("20ms", 0.02),
        ("0s", 0.0),
        ("0", 0.0),
        ("17", 17.0),
        ("500us", 0.0005),
        (" 3s ", 3.0),
        ("", None),
        ("s", None),
        ("1x", None),
        ("1s2", None),
        ("-1s", None),
        ("1 s", None),
        ("soon", None),
    ],
)
def test_parse_go_duration(text: str, seconds: float | None) -> None:
    """Go durations as OpenAI sends them in x-ratelimit-reset-*; None for anything else."""
    if seconds is None:
        assert parse_go_duration(text) is None
    else:
        assert parse_go_duration(text) == pytest.approx(seconds)


async def test_keyed_limiter_keys_are_independent() -> None:
    """Two keys at 20 per 1.0 s each run at their own pace; one key alone respects its rate."""
    limiter = KeyedLimiter(20, period=1.0)
    started = now()
    a, b = await asyncio.gather(
        grant_times(lambda: limiter.acquire("vs_a"), 10, 4),
        grant_times(lambda: limiter.acquire("vs_b"), 10, 4),
    )
    assert max(a + b) - started < 0.7  # shared, 20 grants would need ~0.95 s
    a.sort()
    gaps = [y - x for x, y in zip(a, a[1:], strict=False)]
    assert min(gaps) >= 0.04
    assert busiest(a, 0.25) <= 20 * 0.25 + 1


async def test_keyed_limiter_pauses_one_key() -> None:
    """A 429 on one store pauses that store only."""
    limiter = KeyedLimiter(300, period=60.0)
    limiter.on_429("vs_a", 0.3)
    started = now()
    await limiter.acquire("vs_b")
    assert now() - started < 0.05
    await limiter.acquire("vs_a")
    assert now() - started >= 0.29
    assert limiter.stats()["pauses"] == 1


async def test_try_acquire_takes_only_a_free_slot() -> None:
    """try_acquire grants what acquire would grant at once, and takes nothing otherwise."""
    limiter = RateLimiter(20, auto=False, period=1.0)  # no burst: 50 ms apart
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    started = now()
    await limiter.acquire()
    waited = now() - started
    assert 0.04 <= waited < 0.09  # one interval: the refused try took no slot
    limiter.on_429(0.2)
    assert not limiter.try_acquire()
    assert not RateLimiter(None, auto=True, period=1.0).try_acquire()  # the probe: acquire's
    assert RateLimiter(None, auto=False).try_acquire()


# --- the opening window, a store's own 429, late store requests -------------------------------

async def test_opening_window_lets_one_more_out_per_answer_until_a_success() -> None:
    """Before any 2xx, in flight <= 1 + answers; the first 2xx lifts the limit."""
    window = OpeningWindow()
    granted: list[int] = []

    async def take(i: int) -> None:
        await window.acquire()
        granted.append(i)

    tasks = [asyncio.create_task(take(i)) for i in range(10)]
    await asyncio.sleep(0.01)
    assert granted == [0]
    window.release(ok=False)  # a refusal: one answer, so two may be out
    await asyncio.sleep(0.01)
    assert granted == [0, 1, 2]
    window.release(ok=False)
    await asyncio.sleep(0.01)
    assert len(granted) == 5  # 2 answers: 3 in flight (1 + 2 answers), 5 granted in all
    window.release(ok=True)
    await asyncio.gather(*tasks)
    assert sorted(granted) == list(range(10))
    assert window.open


async def test_opening_window_bounds_a_refused_opening_to_40() -> None:
    """All answers refusals: when the 20th comes, at most 39 requests have left."""
    window = OpeningWindow()
    sent = answered = 0
    tripped = asyncio.Event()

    async def request() -> None:
        nonlocal sent, answered
        await window.acquire()
        if tripped.is_set():
            return
        sent += 1
        await asyncio.sleep(0.002)
        answered += 1
        if answered == 20:
            tripped.set()
        window.release(ok=False)

    tasks = [asyncio.create_task(request()) for _ in range(256)]
    await asyncio.wait_for(tripped.wait(), 5)
    assert sent <= 40
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_opening_window_frees_one_more_when_nothing_answers() -> None:
    """A first request that never reports lets the next one out after PATIENCE."""
    window = OpeningWindow()
    await window.acquire()
    started = time.monotonic()
    await asyncio.wait_for(window.acquire(), OPENING_PATIENCE + 1)
    assert OPENING_PATIENCE - 0.1 <= time.monotonic() - started <= OPENING_PATIENCE + 0.5


@pytest.mark.parametrize(
    ("raw", "limit", "store", "mine"),
    [
        (b'{"error": {"message": "Rate limit reached on vector store vs_abc: Limit 300"}}',
         10_000, "vs_abc", True),  # named, whatever the header
        (b'{"error": {"message": "Rate limit reached on vector store vs_abcd"}}', 10_000,
         "vs_abc", False),  # another store's name is not this one's
        (b'{"error": {"message": "Rate limit reached for requests in organization"}}', 300,
         "vs_abc", True),  # a limit at --store-rpm binds a store
        (b'{"error": {"message": "Rate limit reached for requests in organization"}}', 10_000,
         "vs_abc", False),  # the run's limit
        (b"<html>429</html>", None, "vs_abc", False),
    ],
)
def test_binds_store(raw: bytes, limit: int | None, store: str, mine: bool) -> None:
    """A 429 is the store's when it names the store or its limit is at or under --store-rpm."""
    assert binds_store(limit, raw, store, 300) is mine


async def test_keyed_limiter_header_limit_slows_that_key_only() -> None:
    """A store's own headers (limit 60 per period) slow that store, not another one."""
    limiter = KeyedLimiter(120, period=1.0)
    limiter.on_429("a", 0.0)
    limiter.on_response("a", limit=60, remaining=None, reset=None)
    a = await grant_times(lambda: limiter.acquire("a"), 20, 4)
    b = await grant_times(lambda: limiter.acquire("b"), 20, 4)
    assert busiest(a, 1.0) <= 60 * 1.0 + 1
    assert max(a) - min(a) >= 19 / 60 - 0.02  # at most 60 a second: 19 intervals of 1/60 s
    assert max(b) - min(b) < 19 / 60  # b kept its 120


async def test_keyed_limiter_spaces_late_requests_at_the_key_rate() -> None:
    """Requests that got their key's slots, then waited (a global pause), leave one key
    interval apart, not bunched."""
    limiter = KeyedLimiter(20, period=1.0)  # one every ~50 ms
    for _ in range(5):
        await limiter.acquire("a")
    await asyncio.sleep(0.3)  # every slot is now in the past
    left: list[float] = []

    async def leave() -> None:
        await limiter.space("a")
        left.append(now())

    await asyncio.gather(*(leave() for _ in range(5)))
    gaps = [b - a for a, b in zip(sorted(left), sorted(left)[1:], strict=False)]
    interval = (1.0 + 1.0 * KEY_SLACK) / 20
    assert min(gaps) >= interval * SPACING_SLACK - 0.005, gaps
