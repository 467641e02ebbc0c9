"""The request layer of a run, which every operation sends through.

Every request goes through `Sender.request`, which holds the rate limiters, reads the
x-ratelimit headers of every answer, and turns a 429 into a pause for every worker.
`request_retrying` retries one request on transient failures (tenacity: exponential backoff
with full jitter, `backoff`) and never resends blind a write whose outcome became unknown.
`unsettled` parks such a write under the settle rule. What is done to a pair is the
operations' (runner/operations/), each built by its operation over a Sender; nothing here
knows them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from runner.pacing.limiter import RateLimiter
from runner.pacing.spare import UPLOAD_RANK, SpareSlots
from runner.pacing.store_429 import binds_store
from runner.pacing.store_limiter import KeyedLimiter
from runner.requests.breaker import Breaker
from runner.requests.client import (
    Answer,
    ApiClient,
    CertificateError,
    TransportError,
    uncancel,
)
from runner.requests.multipart import UploadBody
from runner.requests.opening import OpeningWindow
from runner.requests.outcomes import (
    UNCERTAIN_STATUSES,
    Counters,
    GaveUp,
    ItemState,
    NotSent,
    Outcome,
    RunRefused,
    Unsettled,
    refusal_kind,
)
from runner.requests.retry import MAX_RETRY_AFTER, MAX_THROTTLED, Retry
from runner.requests.targets import (
    ApiError,
    Target,
    Verdict,
    api_error,
    classify_error,
    is_quota,
)

T = TypeVar("T")
# A body this long takes time of its own to send (at 1 GB/s, a millisecond and more).
LONG_BODY_BYTES = 1 << 20

__all__ = ["Sender", "Breaker", "Counters", "GaveUp", "ItemState", "Outcome", "RunRefused",
           "Unsettled"]


class Sender:
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
        upload_stall: float = 60.0,
    ) -> None:
        self.client = client
        self.target = target
        self.limiter = limiter
        # Uploads and file deletes take the slots of `limiter` the other requests leave.
        self.spare = SpareSlots(limiter)
        self.store_limiter = store_limiter
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.breaker = breaker
        self.settle = settle
        # Uploads are paced by a limiter of their own, learned from their own answers (SPEC:
        # a 429 to an upload pauses uploads, not attaches); `upload_stall` bounds a stall.
        self.upload_limiter = RateLimiter(None, auto=True)
        self.upload_stall = upload_stall
        self.counters = Counters()
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
            if task not in self._cut or uncancel(task):
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
            await self.window.acquire()  # until the first 2xx: see runner/requests/opening.py
        await self.limiter.acquire()
        # Waits since the store's slot (the window, slow start, a 429 pause) may have made it
        # late: late requests leave at the store's rate, not bunched (KeyedLimiter.space).
        if store is not None and stores is not None and await stores.space(store):
            while self.limiter.paused_until is not None:  # a 429 pause began meanwhile
                await self.limiter.acquire()

    # --- requests -------------------------------------------------------------------------

    async def request(self, method: str, path: str, body: bytes | None = None, *,
                      store: str | None = None, kind: str = "request",
                      spare: int | None = None) -> Answer:
        """One HTTP request under the limiters; feeds what the answer says back to them.
        `spare`: a request that can wait (its rank: pacing/spare.py) takes only the slots the
        others leave free. Raises NotSent, never sending, once the run is halted (before or
        while it waits)."""
        window = self.window
        self.client.open()  # before the turn: see ApiClient.open
        if not self.halted:
            if spare is not None and store is None and window.open and not self.limiter.probing:
                await self._interruptible(self.spare.acquire(spare))
            # A slot free now is taken at once: only a wait needs the interruptible machinery.
            elif not (store is None and window.open and self.limiter.try_acquire()):
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
        if answer.status == 429 and not is_quota(api_error(429, answer.body, answer.text)):
            counters.throttled += 1
            stores = self.store_limiter
            if (store is not None and stores is not None
                    and binds_store(answer.limit, answer.raw, store, stores.rpm)):
                # The store's own limit: it slows that store, not the run (pacing/store_429.py).
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

    async def upload(self, body: UploadBody,
                     before_send: Callable[[], None] | None = None) -> Answer:
        """One `POST /files` of a file's body under the uploads' limiter (see `request`);
        `before_send` is called once its turn has come, just before it goes (the log's line).
        Raises NotSent once the run is halted, TransportError (`sent`: the body went out
        whole), FileChanged."""
        limiter, run_limiter = self.upload_limiter, self.limiter
        self.client.open()
        if not self.halted and not limiter.try_acquire():
            await self._interruptible(limiter.acquire())
        # An upload counts against the run's rate too (--rpm counts every request; the API's
        # request limit counts uploads): it takes a slot of the run's limiter the other
        # requests leave free (pacing/spare.py), once that limiter knows its rate (an upload
        # is not its probe). Its answers' headers are the uploads' own.
        if not self.halted and not run_limiter.probing:
            await self._interruptible(self.spare.acquire(UPLOAD_RANK))
        if self.halted:
            raise NotSent()
        if before_send is not None:
            before_send()
        counters = self.counters
        counters.requests += 1
        counters.uploads += 1
        answer = await self.client.upload("/files", body, self.upload_stall)
        counters.statuses[answer.status] = counters.statuses.get(answer.status, 0) + 1
        # The probe's round trip sets the opening rate: for a large upload, from its last
        # byte (a 200 MB body's transfer would open the uploads at one every half second).
        # A small body's last byte is taken before it is sent: from the grant, as any request.
        sent_at = (body.progressed_at if body.complete and body.length >= LONG_BODY_BYTES
                   else None)
        limiter.on_response(limit=answer.limit, remaining=answer.remaining, reset=answer.reset,
                            sent_at=sent_at)
        run_limiter.note_answer()
        if answer.status == 429 and not is_quota(api_error(429, answer.body, answer.text)):
            counters.throttled += 1
            limiter.on_429(answer.retry_after)
        return answer

    # --- one item -------------------------------------------------------------------------

    def unsettled(self, state: ItemState, status: int | None,
                  error: ApiError) -> Unsettled | Retry:
        """The write just sent may have been applied: check it after --settle seconds
        (Unsettled). With the item's attempts used up it could not be sent again anyway:
        it ends failed, retryable and uncertain at once (Retry into the loop's stop), and
        the next run checks it first."""
        state.uncertain = True
        self.counters.uncertain += 1
        if state.counted >= self.max_attempts:
            return Retry(status, error)
        due = asyncio.get_running_loop().time() + self.settle
        return Unsettled(due, state, status, error)

    def retrying(self, tries: ItemState) -> AsyncRetrying:
        """tenacity's loop over one item's (or one request's) tries: Retry is retried after
        `backoff`, until the attempts or the 429-storm limit run out, or the run halts."""
        return AsyncRetrying(
            retry=retry_if_exception_type(Retry),
            stop=lambda rs: self.halted or tries.counted >= self.max_attempts
            or tries.throttled >= MAX_THROTTLED,
            wait=self.backoff,
            sleep=self.pause,
            reraise=True,
        )

    async def tried(self, tries: ItemState, attempt: Callable[[bool], Awaitable[T]]) -> T:
        """`attempt(retry)` until it returns, or raises anything but Retry; a Retry is tried
        again by tenacity's loop (`retrying`), the last one re-raised when the tries run out.
        The first try goes without the loop (its machinery costs ~45 us a call, a fifth of a
        plain attach's time), and its Retry is replayed into it so tenacity waits before the
        next: the same tries, waits and stop as a loop from the start. `retry`: a try after
        the first."""
        try:
            return await attempt(False)
        except Retry as exc:
            pending: Retry | None = exc
        async for state in self.retrying(tries):
            with state:
                if pending is not None:
                    failed, pending = pending, None
                    raise failed
                return await attempt(True)
        raise AssertionError("unreachable: tenacity returns or re-raises")

    def backoff(self, rs: RetryCallState) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**(n-1))]; a retry-after wins."""
        exc = rs.outcome.exception() if rs.outcome is not None else None
        if isinstance(exc, Retry) and exc.wait is not None:
            return exc.wait
        n = max(1, rs.attempt_number)
        return random.uniform(0.0, min(self.backoff_max, self.backoff_initial * 2 ** (n - 1)))

    async def request_retrying(self, method: str, path: str, body: bytes | None = None, *,
                               store: str | None = None, kind: str = "request",
                               spare: int | None = None) -> Answer:
        """A request retried on transient failures; the first answer that is not transient is
        returned whatever its status. Raises RunRefused, or GaveUp when tries run out. A POST
        whose outcome became unknown (reset after sending) is not resent: GaveUp(uncertain)."""
        tries = ItemState()
        idempotent = method == "GET"

        async def once() -> Answer:
            tries.counted += 1
            try:
                answer = await self.request(method, path, body, store=store, kind=kind,
                                            spare=spare)
            except TransportError as exc:
                if exc.sent and not idempotent:
                    tries.uncertain = True
                    self.counters.uncertain += 1
                    raise GaveUp(None, ApiError("connection_error", str(exc), None),
                                 uncertain=True) from None
                raise Retry(None, ApiError("connection_error", str(exc), None)) from None
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
                    raise Retry(429, error, wait=0.0)
                if not idempotent and answer.status in UNCERTAIN_STATUSES:
                    # It may have been applied: never resent blind (see Unsettled).
                    self.counters.uncertain += 1
                    raise GaveUp(answer.status, error, uncertain=True)
                wait = min(answer.retry_after, MAX_RETRY_AFTER) if answer.retry_after else None
                raise Retry(answer.status, error, wait=wait)
            return answer

        async def attempt(retry: bool) -> Answer:
            if retry:
                self.counters.retries += 1
            return await once()

        try:
            return await self.tried(tries, attempt)
        except Retry as exc:
            raise GaveUp(exc.status, exc.error, uncertain=False) from None

