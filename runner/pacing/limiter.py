"""Even spacing under --rpm, one shared pause on 429, and a rate that adapts in `auto` mode.

`RateLimiter` is GCRA with reservation: `acquire()` reserves the next free slot at call time and
sleeps until it, so waiters go in arrival order. Slot k starts no earlier than its theoretical
arrival time minus a burst tolerance of (B - 1) emission intervals, which keeps any window of W
seconds to at most rate * W / period + B grants (SPEC, "Behaviour under trouble"). A 429 or a
low `x-ratelimit-remaining-requests` voids every reservation (an epoch counter); sleepers notice
when they wake and reserve again, in the order they woke. A rise of the rate voids them too and
wakes the sleepers at once: slots reserved at the old, slower spacing would hold them back.

Auto mode without headers ramps up like TCP's slow start: the probe's round trip sets the
opening rate (one request per round trip, at least START_RATE), and the rate doubles each time
an answer comes back to a request granted since the last doubling (once a round trip) if the
run used at least half of what the rate allowed, until a 429, a header limit or the user's
--rpm stops it.

All times are `loop.time()` (monotonic). One event loop, no threads.
"""

from __future__ import annotations

import asyncio
import contextlib

SAFETY = 0.99  # aim this far under the header's limit: our clock and the server's windows differ
START_RATE = 60.0  # per period: slow start opens at 1/s in production, then doubles
DROP = 0.7  # a burst of 429s multiplies the rate by this
RECOVERY_STEP = 0.05  # fraction of the pre-drop rate won back per clean window
ADAPT_EVERY = 0.1  # fraction of the period that makes one window for growth (6 s a minute)
BURST_SPAN = 600  # B = max(1, rate / 600): a tenth of a second's requests at a per-minute rate
DEFAULT_RETRY_AFTER = 1.0  # seconds to pause on a 429 that did not say
MAX_PAUSE = 60.0  # seconds: a longer retry-after is capped (retries will tell us again)
PROBE_PATIENCE = 2.0  # seconds: a probe that never reports (dropped connection) frees the next
MIN_ROUND_TRIP = 0.001  # seconds: the opening rate after the probe is at most one per this
_EPSILON = 1e-9  # seconds: float sums of intervals drift by about this much


class RateLimiter:
    """Spaces requests evenly under a per-period rate (GCRA), pauses everyone on 429, adapts.

    rpm=None, auto=False: unlimited (a 429 still pauses everyone; headers are ignored).
    rpm=N, auto=False: at most N per `period`; a 429 lowers the rate, which recovers up to N.
    auto=True: the rate is unknown; one probe goes first, then the rate follows
    `x-ratelimit-limit-requests` or doubles while nothing objects; rpm, if given, is a ceiling.
    Both modes aim at SAFETY (0.99) x the header's limit when that is below rpm, and slow down when
    the header's remaining count would run out before its reset. Header limits are taken as
    per `period` (60 s in production, where they are per minute).
    """

    # fmt: off
    __slots__ = (
        "_period", "_ceiling", "_max_burst", "_auto",  # settings
        "_rate", "_interval", "_tolerance", "_burst", "_tat", "_epoch", "_free",  # GCRA
        "_pause_until", "_drop_guard_until", "_hold_interval", "_hold_until",  # trouble
        "_target", "_recover_to", "_step", "_growing", "_limited", "_window_end",  # adapting
        "_probing", "_probe_at", "_answered",  # auto mode before the first answer
        "_grants", "_answers", "_grown_at", "_grown_time", "_last_grant", "_sleepers",  # rises
        "_drops", "_pauses", "_holds", "_waited",  # stats
    )
    # fmt: on

    def __init__(
        self, rpm: float | None, *, auto: bool, max_burst: int | None = None, period: float = 60.0
    ) -> None:
        if rpm is not None and rpm <= 0:
            raise ValueError(f"rpm must be positive, not {rpm}")
        self._period = period
        self._ceiling = rpm  # never above the user's rpm, whatever the headers say
        self._max_burst = max_burst
        self._auto = auto
        self._rate: float | None = None  # requests per period now; None: unlimited or probing
        self._interval = 0.0  # emission interval T = period / rate
        self._tolerance = 0.0  # (B - 1) * T: how far ahead of its TAT a request may start
        self._burst = 1
        self._tat = 0.0  # theoretical arrival time of the next request (end of reservations)
        self._epoch = 0  # bumped when reservations are voided; a sleeper compares on waking
        self._free = rpm is None and not auto  # fast path: nothing to check in acquire()
        self._pause_until = 0.0  # no grant before this (429 retry-after)
        self._drop_guard_until = 0.0  # 429s before this belong to the burst that dropped us
        self._hold_interval = 0.0  # spacing that spreads the header's remaining over its reset
        self._hold_until = 0.0  # ...until this time
        self._target: float | None = None if auto else rpm  # fixed: rpm; auto: from headers
        self._recover_to = 0.0  # the rate before the last drop: recovery climbs back to it
        self._step = 0.0  # additive recovery per clean window (5% of the pre-drop rate)
        self._growing = auto  # slow start: double per window until headers or a 429
        self._limited = False  # someone waited for spacing this window: growing is useful
        self._window_end = 0.0
        self._probing = auto  # auto, no answer yet: one request in the air at a time
        self._probe_at: float | None = None  # when the probe went out
        self._answered: asyncio.Event | None = None  # set by the probe's answer
        self._grants = 0  # requests let through while the rate applies
        self._answers = 0  # answers reported (on_response) while growing
        self._grown_at = 0  # _grants at the last doubling: a later answer means a round trip
        self._grown_time = 0.0  # when the last doubling (or the probe's answer) came
        self._last_grant = 0.0  # slot of the last request let through
        self._sleepers: set[asyncio.Future[None]] = set()  # waiting for a slot: woken on a rise
        self._drops = self._pauses = self._holds = 0
        self._waited = 0.0  # seconds all acquirers slept, summed
        if rpm is not None and not auto:
            self._set_rate(rpm)
            self._recover_to = rpm

    @property
    def rate(self) -> float | None:
        """Requests per period now (None: unlimited, or auto mode still probing)."""
        return self._rate

    @property
    def auto(self) -> bool:
        """Whether the limit is learned (--rpm auto) rather than given."""
        return self._auto

    @property
    def probing(self) -> bool:
        """Auto mode before its first answer: the rate is not known yet."""
        return self._probing

    @property
    def interval(self) -> float:
        """Seconds between two requests at the current rate (0.0: unlimited or probing)."""
        return self._interval

    @property
    def paused_until(self) -> float | None:
        """Loop time the 429 pause ends, while one is active (for the progress bar)."""
        until = self._pause_until
        return until if until > asyncio.get_running_loop().time() else None

    def stats(self) -> dict[str, float]:
        """Counters for the summary: rate drops, 429 pauses, header slowdowns, seconds waited."""
        return {
            "drops": float(self._drops),
            "pauses": float(self._pauses),
            "slowdowns": float(self._holds),
            "wait_seconds": self._waited,
        }

    async def acquire(self) -> None:
        """Wait until a request may start: after any pause, in its GCRA slot."""
        if self._free:
            return
        await self._wait_turn()

    def ready_in(self) -> float:
        """Seconds until a request could start without waiting (0.0: now), as things stand:
        for a scheduler choosing what to send next, not a promise (others may take the slot)."""
        if self._free:
            return 0.0
        now = asyncio.get_running_loop().time()
        start = self._pause_until
        if self._rate is not None and not self._probing:
            start = self._slot_from(start)[0]
        return max(0.0, start - now)

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, without waiting: True when a request may start (as
        `await acquire()` would have let it at once); False, taking nothing, when it must
        `await acquire()`. Saves the awaiting machinery on the common path."""
        if self._free:
            return True
        if self._probing or self._rate is None:
            return False
        now = asyncio.get_running_loop().time()
        if self._pause_until > now:
            return False
        self._adapt(now)
        if self._slot_from(now)[0] > now:  # what _reserve(now) would take
            return False
        self._last_grant = self._reserve(now)
        self._grants += 1
        return True

    async def _wait_turn(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._probing:
                wait = self._probe_wait(now)
                if wait <= 0.0:
                    return
                await self._await_answer(wait)
                continue
            start = max(now, self._pause_until)
            if self._rate is None:  # unlimited: only a pause holds us
                if start <= now:
                    self._free = True
                    return
                await self._sleep(start - now)
                continue
            self._adapt(now)
            slot = self._reserve(start)
            if slot <= now:
                self._grants += 1
                self._last_grant = slot
                return
            epoch = self._epoch
            await self._sleep_until_slot(slot - now)
            if epoch == self._epoch:
                self._grants += 1
                self._last_grant = slot
                return
            # A 429, a slowdown or a rise voided our slot while we slept: reserve again.

    def _reserve(self, start: float) -> float:
        """Take the next slot at or after `start`; GCRA: TAT = max(TAT, slot) + T."""
        slot, held = self._slot_from(start)
        interval = max(self._interval, self._hold_interval) if held else self._interval
        if slot > start:
            self._limited = True
        self._tat = max(self._tat, slot) + interval
        return slot

    def _slot_from(self, start: float) -> tuple[float, bool]:
        """The next free slot at or after `start` (GCRA, less the burst tolerance), and
        whether the header's hold applies to it: the server is nearly out, so no burst and
        (in _reserve) wider spacing. (The epsilon: slots summed from the hold's spacing land
        on its end give or take a rounding, depending on the clock.)"""
        slot = max(start, self._tat - self._tolerance)
        if slot < self._hold_until - _EPSILON:
            return max(start, self._tat), True
        return slot, False

    async def _sleep(self, delay: float) -> None:
        self._waited += delay
        await asyncio.sleep(delay)

    async def _sleep_until_slot(self, delay: float) -> None:
        """Sleep `delay` seconds, or less if the rate rises meanwhile (`_wake_sleepers`)."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(delay, _resolve, woken)
        self._sleepers.add(woken)
        started = loop.time()
        try:
            await woken
        finally:
            timer.cancel()
            self._sleepers.discard(woken)
            self._waited += loop.time() - started

    def _wake_sleepers(self, now: float) -> None:
        """The rate rose: void the slots taken at the old spacing and wake their sleepers, who
        reserve again at the new one (in the order they wake)."""
        self._epoch += 1
        # The next slot comes one new interval after the last grant (GCRA, as if the new rate
        # had applied all along), not before now.
        self._tat = min(self._tat, max(now, self._last_grant + self._interval))
        for woken in self._sleepers:
            _resolve(woken)

    def _probe_wait(self, now: float) -> float:
        """0: you are the probe. Else how long to wait for its answer before probing again."""
        if self._probe_at is None or now - self._probe_at >= PROBE_PATIENCE:
            self._probe_at = now
            return 0.0
        return self._probe_at + PROBE_PATIENCE - now

    async def _await_answer(self, timeout: float) -> None:
        if self._answered is None:
            self._answered = asyncio.Event()
        # On timeout the probe went silent: the caller loops and may become the next probe.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._answered.wait(), timeout)

    def _end_probe(self, now: float) -> None:
        """The first answer came: open at one request per round trip of the probe."""
        self._probing = False
        round_trip = now - self._probe_at if self._probe_at is not None else PROBE_PATIENCE
        rate = max(START_RATE, self._period / max(round_trip, MIN_ROUND_TRIP))
        cap = self._cap()
        self._set_rate(rate if cap is None else min(rate, cap))
        self._tat = now
        self._window_end = now + self._period * ADAPT_EVERY
        self._grown_at, self._grown_time = self._grants, now
        if self._answered is not None:
            self._answered.set()

    def _set_rate(self, rate: float) -> None:
        self._rate = rate
        self._interval = self._period / rate
        burst = max(1, int(rate // BURST_SPAN))
        if self._max_burst is not None:
            burst = max(1, min(burst, self._max_burst))
        # Slow start keeps the same burst: B is a tenth of a second's requests, 1 until the
        # rate passes 10/s (600 a minute). With B = 1 for good, a headerless run whose rate had
        # outgrown its demand (growth stops at about twice what is used) would still space
        # every request out, and a wave of answers would wait in line for slots. A server that
        # limits without saying so answers 429, which ends the growth and pauses everyone.
        self._burst = burst
        self._tolerance = (burst - 1) * self._interval

    def _cap(self) -> float | None:
        return self._target if self._target is not None else self._ceiling

    def _adapt(self, now: float) -> None:
        """Slow start doubles once a round trip; else once per window: recovery adds a step,
        probing adds one more (and slow start doubles, should answers stop coming back)."""
        if self._rate is None:
            return
        if self._growing and self._answers > self._grown_at and self._rate_used(now):
            self._change_rate(now, self._rate * 2)
            self._grown_at, self._grown_time = self._grants, now
            self._limited = False
            return
        if now < self._window_end:
            return
        window = self._period * ADAPT_EVERY
        clean = 1 + int((now - self._window_end) // window)  # windows passed since the last look
        rate = grown = self._rate
        if self._growing:
            grown = rate * 2 if self._limited else rate
        elif rate < self._recover_to:
            grown = min(self._recover_to, rate + self._step * clean)
        elif self._limited:  # past the old rate and still the bottleneck: probe upwards
            grown = rate + self._step
        if grown != rate:
            self._change_rate(now, grown)
        self._limited = False
        self._window_end = now + window

    def _rate_used(self, now: float) -> bool:
        """Whether at least half the grants the rate allowed since the last doubling were
        taken: doubling a rate that is not what holds the run back would only inflate it."""
        assert self._rate is not None
        allowed = (now - self._grown_time) * self._rate / self._period
        return 2 * (self._grants - self._grown_at) >= allowed

    def _change_rate(self, now: float, rate: float) -> None:
        """Go to `rate` (never past the cap); on a rise, let waiters use it at once."""
        cap = self._cap()
        if cap is not None:
            rate = min(rate, cap)
        if rate == self._rate:
            return
        rising = self._rate is not None and rate > self._rate
        self._set_rate(rate)
        if rising:
            self._wake_sleepers(now)

    def note_answer(self) -> None:
        """An answer to a request that took a slot here but whose headers describe another
        limit (an upload's, paced by its own limiter too): it counts for slow start's growth
        and says nothing of this limit. (It does not end a probe: it was not the probe.)"""
        if self._growing and not self._probing:
            self._answers += 1

    def on_response(self, *, limit: int | None, remaining: int | None, reset: float | None,
                    sent_at: float | None = None) -> None:
        """Read the x-ratelimit-*-requests headers of any answer (limit per period, reset in s).
        `sent_at`: when the request's last byte left, if later than its grant (an upload's
        round trip is its answer's wait, not the transfer of its body)."""
        if self._rate is None and not self._probing:
            return  # unlimited by request
        now = asyncio.get_running_loop().time()
        if self._probing:
            if sent_at is not None and self._probe_at is not None:
                self._probe_at = max(self._probe_at, sent_at)
            self._end_probe(now)
        elif self._growing:
            self._answers += 1  # a 429 reported next stops the growth before it is used
        if limit is not None and limit > 0:
            self._follow_limit(limit)
        if remaining is not None and reset is not None:
            self._check_remaining(now, remaining, reset)

    def _follow_limit(self, limit: int) -> None:
        target = limit * SAFETY
        if self._ceiling is not None:
            target = min(target, self._ceiling)
        if target == self._target:
            return
        self._target = target
        self._growing = False
        assert self._rate is not None
        if self._rate < self._recover_to:  # recovering from a 429: keep climbing slowly
            self._recover_to = min(self._recover_to, target)
            if self._rate > target:
                self._set_rate(target)
        else:
            self._recover_to = target
            self._set_rate(target)

    def _check_remaining(self, now: float, remaining: int, reset: float) -> None:
        """Slow down before the limit: spread what the server has left over its reset time."""
        assert self._rate is not None
        if remaining >= self._rate * reset / self._period + self._burst + 1:
            self._hold_until = 0.0  # plenty left (or a new window): full speed
            return
        spacing = reset / (remaining + 1)
        if spacing <= self._interval:
            return
        starting = now >= self._hold_until
        self._hold_interval = spacing
        self._hold_until = now + reset
        if starting:
            self._holds += 1
            self._void_reservations(now + spacing)

    def on_429(self, retry_after: float | None) -> None:
        """Pause every acquirer for retry_after seconds; drop the rate once per burst of 429s."""
        now = asyncio.get_running_loop().time()
        delay = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
        delay = min(max(delay, 0.0), MAX_PAUSE)
        until = now + delay
        if self._probing:
            self._end_probe(now)
        if until > self._pause_until:
            if self._pause_until <= now:
                self._pauses += 1
            self._pause_until = until
            self._free = False
            self._void_reservations(until)
        if self._rate is not None and now >= self._drop_guard_until:
            self._drop(until, delay)

    def _drop(self, until: float, delay: float) -> None:
        assert self._rate is not None
        window = self._period * ADAPT_EVERY
        self._drops += 1
        self._recover_to = self._rate
        self._step = self._rate * RECOVERY_STEP
        self._growing = False
        self._set_rate(self._rate * DROP)
        # Requests already in flight answer 429 too; they are the same burst, not news.
        self._drop_guard_until = until + max(delay, window)
        self._window_end = until + window
        self._limited = False

    def _void_reservations(self, start: float) -> None:
        self._epoch += 1
        self._tat = start


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
