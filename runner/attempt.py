"""One item, start to finish: check when uncertain, attach with retries, wait when asked.

Every request goes through `Attempter.request`, which holds the rate limiters, reads the
x-ratelimit headers of every answer, and turns a 429 into a pause for every worker.

Retries use tenacity: exponential backoff with full jitter, `--max-attempts` counted over attach
requests that were not throttled (a 429 other than quota waits out the shared pause and does not use
an attempt). The first try runs outside tenacity: most items succeed at once, and building a
retry loop for each of a million items costs more than the request's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from runner.breaker import Breaker
from runner.client import Answer, ApiClient, CertificateError, TransportError
from runner.items import Item
from runner.limiter import RateLimiter
from runner.opening import OpeningWindow
from runner.outcomes import (
    NOT_SENT,
    UNCERTAIN_STATUSES,
    Counters,
    GaveUp,
    ItemState,
    NotSent,
    Outcome,
    RunRefused,
    Unsettled,
    file_failed,
    in_place,
    refusal_kind,
)
from runner.store_limiter import KeyedLimiter
from runner.store_limits import binds_store
from runner.targets import ApiError, Judgement, Target, Verdict, api_error, classify_error
from runner.update import Updater, manages_attributes

__all__ = ["Attempter", "Breaker", "Counters", "GaveUp", "ItemState", "Outcome", "RunRefused",
           "Unsettled"]

# A 429 storm must not hold one item forever: after this many throttled tries it ends failed
# (retryable) and the next run picks it up.
MAX_THROTTLED = 50
# Longest pause we take from one retry-after header.
MAX_RETRY_AFTER = 120.0
# --wait polling: 1 s doubling to 10 s.
POLL_FIRST, POLL_MAX = 1.0, 10.0


class _Retry(Exception):  # noqa: N818 - control flow inside the retry loop
    """A transient failure: try again after a backoff (`wait` overrides it, e.g. 0 after a 429)."""

    def __init__(self, status: int | None, error: ApiError, *, wait: float | None = None) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.wait = wait


class Attempter:
    def __init__(
        self,
        client: ApiClient,
        target: Target,
        *,
        limiter: RateLimiter,
        store_limiter: KeyedLimiter | None,
        max_attempts: int,
        backoff_initial: float,
        backoff_max: float,
        wait: bool,
        wait_timeout: float,
        breaker: Breaker,
        settle: float = 10.0,
    ) -> None:
        self.client = client
        self.target = target
        self.limiter = limiter
        self.store_limiter = store_limiter
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.breaker = breaker
        self.settle = settle
        self.counters = Counters()
        self.updater = Updater(self)
        self.window = OpeningWindow(opened=not limiter.auto)
        self.breaker_tripped = False
        # Set when the run stops (signal, --max-runtime, refusal): start no new try; an item
        # that would retry ends failed and retryable instead, for the next run.
        self.halted = False
        # Tasks waiting for a limiter slot, a backoff or a poll interval: halt() cuts those
        # waits short (in flight means sent, not queued), and remembers whom it cut.
        self._waiting: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()

    def halt(self) -> None:
        """The run stops: no request leaves from now on, and every wait for a turn ends now,
        so a stop waits only for requests in flight (a wrong key is not sent again and again
        as queued workers get their slots)."""
        self.halted = True
        for task in self._waiting:
            task.cancel()
        self._cut.update(self._waiting)

    async def _interruptible(self, waiting: Awaitable[None]) -> None:
        """Await a wait that halt() may cut short; a cut one returns early."""
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            await waiting
        except asyncio.CancelledError:
            # Ours to absorb only when halt() alone asked (not a hard stop's cancel too).
            if task not in self._cut or _uncancel(task):
                raise
        finally:
            self._waiting.discard(task)
            self._cut.discard(task)

    async def pause(self, seconds: float) -> None:
        """Sleep (a backoff, a poll interval); halt() ends it at once (or skips it)."""
        if not self.halted:
            await self._interruptible(asyncio.sleep(seconds))

    async def _turn(self, store: str | None) -> None:
        stores = self.store_limiter
        # The per-store slot first: it can be far off, and a request must leave in its own
        # global slot, not after it (or it would crowd the next window). Taken before the
        # opening window too, so that the store looks busy at once and the engine hands the
        # next workers other stores' pairs (FreeStoresFirst) instead of queueing them here.
        if store is not None and stores is not None:
            await stores.acquire(store)
        if not self.window.open:
            await self.window.acquire()  # until the first 2xx: see runner/opening.py
        await self.limiter.acquire()
        # Waits since the store's slot (the window, slow start, a 429 pause) may have made it
        # late: late requests leave at the store's rate, not bunched (KeyedLimiter.space).
        if store is not None and stores is not None and await stores.space(store):
            while self.limiter.paused_until is not None:  # a 429 pause began meanwhile
                await self.limiter.acquire()

    # --- requests -------------------------------------------------------------------------

    async def request(self, method: str, path: str, body: bytes | None = None, *,
                      store: str | None = None, kind: str = "request") -> Answer:
        """One HTTP request under the limiters; feeds what the answer says back to them.
        Raises NotSent, never sending, once the run is halted (before or while it waits)."""
        window = self.window
        # A slot free now is taken at once: only a wait needs the interruptible machinery.
        if not self.halted and not (store is None and window.open and self.limiter.try_acquire()):
            await self._interruptible(self._turn(store))
        if self.halted:
            raise NotSent()
        held = not window.open  # _turn took a slot of the opening window: give it back
        counters = self.counters
        counters.requests += 1
        if kind == "check":
            counters.checks += 1
        elif kind == "list":
            counters.lists += 1
        try:
            answer = await self.client.request(method, path, body)
        except BaseException as exc:
            if held:
                window.release(ok=False)
            if isinstance(exc, CertificateError):
                # Every request would fail the same way: stop, as for a wrong key.
                raise RunRefused("tls", None, ApiError("tls_error", str(exc), None)) from None
            raise
        if held:
            window.release(ok=200 <= answer.status < 300)
        counters.statuses[answer.status] = counters.statuses.get(answer.status, 0) + 1
        if answer.status == 429 and not _is_quota(answer):
            counters.throttled += 1
            stores = self.store_limiter
            if store is not None and stores is not None and binds_store(answer, store, stores.rpm):
                # The store's own limit: it slows that store, not the run (store_limits.py).
                stores.on_429(store, answer.retry_after)
                stores.on_response(store, limit=answer.limit, remaining=answer.remaining,
                                   reset=answer.reset)
                return answer
            self.limiter.on_response(limit=answer.limit, remaining=answer.remaining,
                                     reset=answer.reset)
            self.limiter.on_429(answer.retry_after)
            return answer
        self.limiter.on_response(limit=answer.limit, remaining=answer.remaining, reset=answer.reset)
        return answer

    # --- one item -------------------------------------------------------------------------

    def unsettled(self, state: ItemState, status: int | None,
                  error: ApiError) -> Unsettled | _Retry:
        """The write just sent may have been applied: check it after --settle seconds
        (Unsettled). With the item's attempts used up it could not be sent again anyway:
        it ends failed, retryable and uncertain at once (_Retry into the loop's stop), and
        the next run checks it first."""
        state.uncertain = True
        self.counters.uncertain += 1
        if state.counted >= self.max_attempts:
            return _Retry(status, error)
        due = asyncio.get_running_loop().time() + self.settle
        return Unsettled(due, state, status, error)

    async def attach(self, item: Item, *, uncertain: bool,
                     state: ItemState | None = None) -> Outcome:
        """Attach one pair; `uncertain`: the log says it may be attached, so check first.
        `state`: the item's tries so far, when it comes back from the settle wait. Raises
        Unsettled when a write's outcome becomes unknown."""
        if state is None:
            state = ItemState(uncertain=uncertain)
        try:
            return await self._try_once(item, state)
        except _Retry as exc:
            first = exc
        return await self._retry_loop(item, state, first)

    async def _retry_loop(self, item: Item, state: ItemState, first: _Retry) -> Outcome:
        pending: _Retry | None = first
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retry),
            stop=lambda rs: self.halted or state.counted >= self.max_attempts
            or state.throttled >= MAX_THROTTLED,
            wait=self._backoff,
            sleep=self.pause,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if pending is not None:
                        # Replays the fast path's failure so tenacity waits before the next try.
                        exc, pending = pending, None
                        raise exc
                    self.counters.retries += 1
                    return await self._try_once(item, state)
        except _Retry as exc:
            return Outcome("failed", exc.status, state.sent, exc.error, retryable=True,
                           uncertain=state.uncertain)
        raise AssertionError("unreachable: tenacity returns or re-raises")

    async def _try_once(self, item: Item, state: ItemState) -> Outcome:
        if state.uncertain:
            settled = await self._settle(item, state)
            if settled is not None:
                return settled
        target = self.target
        state.sent += 1
        state.counted += 1
        self.counters.attach_requests += 1
        store = item.owner if target.supports_batches else None
        try:
            answer = await self.request("POST", target.attach_path(item.owner),
                                        target.attach_body(item), store=store)
        except NotSent:
            # It never left: not an attempt. The stopped run ends the item retryable.
            state.sent -= 1
            state.counted -= 1
            self.counters.attach_requests -= 1
            raise _Retry(None, NOT_SENT) from None
        except TransportError as exc:
            error = ApiError("connection_error", str(exc), None)
            if exc.sent:
                raise self.unsettled(state, None, error) from None
            raise _Retry(None, error) from None
        judgement = target.judge_attach(answer, wait=self.wait)
        if state.sent == 1 and self.breaker.armed and self.breaker.observe(
            item, judgement.verdict, answer.status, judgement.error
        ):
            self.breaker_tripped = True
        return await self._conclude(item, state, answer, judgement)

    async def _conclude(self, item: Item, state: ItemState, answer: Answer,
                        judgement: Judgement) -> Outcome:
        verdict, status = judgement.verdict, answer.status
        if verdict in (Verdict.ATTACHED, Verdict.IN_PROGRESS, Verdict.FILE_FAILED) and (
                item.options is not None):
            converged = await self.updater.converge(item, state, judgement)
            if converged is not None:
                return converged
        if verdict is Verdict.ATTACHED:
            return in_place(status, state, judgement.file_status)
        if verdict is Verdict.ALREADY_ATTACHED:
            if manages_attributes(item) and self.target.supports_batches:
                # "Already in the store" without the object: look, so that its attributes
                # can be compared (and updated) like those of a 200.
                return await self._after_check(item, state)
            return Outcome("already_attached", status, state.sent, judgement.error)
        if verdict is Verdict.IN_PROGRESS:
            return await self._wait_for_file(item, state, status)
        if verdict is Verdict.FILE_FAILED:
            return file_failed(judgement, status, state.sent)
        if verdict is Verdict.RUN_REFUSED:
            raise RunRefused(refusal_kind(status, judgement.error), status, judgement.error)
        if verdict is Verdict.RETRY:
            assert judgement.error is not None
            if status == 429:
                # The limiter already paused every worker; this item waits its turn there.
                state.counted -= 1
                state.throttled += 1
                raise _Retry(status, judgement.error, wait=0.0)
            if status in UNCERTAIN_STATUSES:
                raise self.unsettled(state, status, judgement.error)
            wait = min(answer.retry_after, MAX_RETRY_AFTER) if answer.retry_after else None
            raise _Retry(status, judgement.error, wait=wait)
        # REFUSED (or ABSENT, which an attach answer never is).
        return Outcome("failed", status, state.sent, judgement.error, retryable=False,
                       uncertain=False)

    def _backoff(self, rs: RetryCallState) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**(n-1))]; a retry-after wins."""
        exc = rs.outcome.exception() if rs.outcome is not None else None
        if isinstance(exc, _Retry) and exc.wait is not None:
            return exc.wait
        n = max(1, rs.attempt_number)
        return random.uniform(0.0, min(self.backoff_max, self.backoff_initial * 2 ** (n - 1)))

    # --- checks -----------------------------------------------------------------------------

    async def _settle(self, item: Item, state: ItemState) -> Outcome | None:
        """Check an uncertain pair. An Outcome when the check settles it (attached, or it
        cannot be answered: then never POST blind); None when it is absent: send it."""
        judgement, status = await self.check(item)
        state.checks_done += 1
        if judgement is None:
            error = ApiError("check_failed", "could not check whether the pair is attached", None)
            return Outcome("failed", status, state.sent, error, retryable=True, uncertain=True)
        state.uncertain = False
        verdict = judgement.verdict
        if verdict is Verdict.ABSENT:
            return None
        if item.options is not None and verdict is not Verdict.RUN_REFUSED:
            converged = await self.updater.converge(item, state, judgement)
            if converged is not None:
                return converged
        if verdict is Verdict.ATTACHED:
            return in_place(200, state, judgement.file_status)
        if verdict is Verdict.IN_PROGRESS:
            return await self._wait_for_file(item, state, 200)
        if verdict is Verdict.FILE_FAILED:
            return file_failed(judgement, 200, state.sent)
        return Outcome("failed", status, state.sent, judgement.error, retryable=False)

    async def _after_check(self, item: Item, state: ItemState) -> Outcome:
        """Settle a pair that is in its store by a GET (and converge its attributes)."""
        settled = await self._settle(item, state)
        if settled is not None:
            return settled
        # Absent after all (removed meanwhile): not ours to re-add blind in this answer.
        error = ApiError("not_found", "the file was not in the store when checked", None)
        return Outcome("failed", 404, state.sent, error, retryable=True)

    async def confirm(self, item: Item) -> Outcome:
        """A pair a batch put in place, whose object we have not seen: GET it and converge."""
        return await self._after_check(item, ItemState(sent=1))

    async def check(self, item: Item) -> tuple[Judgement | None, int | None]:
        """GET the pair, retried like any request. (None, last status) if it cannot be answered."""
        path = self.target.check_path(item.owner, item.file_id)
        try:
            answer = await self.request_retrying("GET", path, kind="check")
        except GaveUp as exc:
            return None, exc.status
        return self.target.judge_check(answer, wait=self.wait), answer.status

    async def request_retrying(self, method: str, path: str, body: bytes | None = None, *,
                               store: str | None = None, kind: str = "request") -> Answer:
        """A request retried on transient failures; the first answer that is not transient is
        returned whatever its status. Raises RunRefused, or GaveUp when tries run out. A POST
        whose outcome became unknown (reset after sending) is not resent: GaveUp(uncertain)."""
        tries = ItemState()
        idempotent = method == "GET"

        async def once() -> Answer:
            tries.counted += 1
            try:
                answer = await self.request(method, path, body, store=store, kind=kind)
            except TransportError as exc:
                if exc.sent and not idempotent:
                    tries.uncertain = True
                    self.counters.uncertain += 1
                    raise GaveUp(None, ApiError("connection_error", str(exc), None),
                                 uncertain=True) from None
                raise _Retry(None, ApiError("connection_error", str(exc), None)) from None
            if 200 <= answer.status < 300:
                return answer
            error = api_error(answer.status, answer.body, answer.text)
            verdict = classify_error(answer.status, error)
            if verdict is Verdict.RUN_REFUSED:
                raise RunRefused(refusal_kind(answer.status, error), answer.status, error)
            if verdict is Verdict.RETRY:
                if answer.status == 429:
                    tries.counted -= 1
                    tries.throttled += 1
                    raise _Retry(429, error, wait=0.0)
                if not idempotent and answer.status in UNCERTAIN_STATUSES:
                    # It may have been applied: never resent blind (see Unsettled).
                    self.counters.uncertain += 1
                    raise GaveUp(answer.status, error, uncertain=True)
                wait = min(answer.retry_after, MAX_RETRY_AFTER) if answer.retry_after else None
                raise _Retry(answer.status, error, wait=wait)
            return answer

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retry),
            stop=lambda rs: self.halted or tries.counted >= self.max_attempts
            or tries.throttled >= MAX_THROTTLED,
            wait=self._backoff,
            sleep=self.pause,
            reraise=True,
        )
        first = True
        try:
            async for attempt in retrying:
                with attempt:
                    if not first:
                        self.counters.retries += 1
                    first = False
                    return await once()
        except _Retry as exc:
            raise GaveUp(exc.status, exc.error, uncertain=False) from None
        raise AssertionError("unreachable: tenacity returns or re-raises")

    # --- --wait -----------------------------------------------------------------------------

    async def _wait_for_file(self, item: Item, state: ItemState, status: int) -> Outcome:
        """Poll a vector store file until it leaves in_progress (1 s doubling to 10 s)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        interval = POLL_FIRST
        path = self.target.check_path(item.owner, item.file_id)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 or self.halted:
                self.counters.still_in_progress += 1
                return in_place(status, state, "in_progress")
            await self.pause(min(interval, remaining))
            if self.halted:
                continue
            interval = min(POLL_MAX, interval * 2)
            self.counters.polls += 1
            try:
                answer = await self.request("GET", path)
            except TransportError:
                continue  # a poll is harmless to repeat
            judgement = self.target.judge_check(answer, wait=True)
            verdict = judgement.verdict
            if verdict is Verdict.IN_PROGRESS or verdict is Verdict.RETRY:
                continue
            if verdict is Verdict.ATTACHED:
                return in_place(status, state, judgement.file_status)
            if verdict is Verdict.FILE_FAILED:
                return file_failed(judgement, answer.status, state.sent)
            if verdict is Verdict.RUN_REFUSED:
                raise RunRefused(refusal_kind(answer.status, judgement.error), answer.status,
                                 judgement.error)
            # 404 while waiting: someone removed it. Report, don't guess.
            return Outcome("failed", answer.status, state.sent, judgement.error, retryable=True)


def _uncancel(task: asyncio.Task[Any]) -> int:
    """Withdraw one cancel request; how many others are still pending (Python 3.11+; 0 on
    3.10, which does not count them)."""
    uncancel = getattr(task, "uncancel", None)
    return int(uncancel()) if uncancel is not None else 0


def _is_quota(answer: Answer) -> bool:
    body: Any = answer.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return "insufficient_quota" in (err.get("code"), err.get("type"))
    return False
