"""The attach operation, one pair start to finish: check first when the log says it may be
attached, POST it with retries, converge its attributes (runner/operations/update.py), wait for its
processing when asked (--wait). Every request goes through the run's Sender (the request
layer: limiters, 429 pauses, the breaker's counters).

Retries use tenacity: exponential backoff with full jitter, `--max-attempts` counted over attach
requests that were not throttled (a 429 other than quota waits out the shared pause and does not use
an attempt). The first try runs outside tenacity: most items succeed at once, and building a
retry loop for each of a million items costs more than the request's own bookkeeping.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from runner.items import Item
from runner.log.resume import ResumeIndex
from runner.log.states import Plan
from runner.operations.base import Operation
from runner.operations.update import Updater, manages_attributes
from runner.requests.client import Answer, TransportError
from runner.requests.outcomes import (
    NOT_SENT,
    UNCERTAIN_STATUSES,
    GaveUp,
    ItemState,
    NotSent,
    Outcome,
    RunRefused,
    file_failed,
    in_place,
    refusal_kind,
)
from runner.requests.retry import MAX_RETRY_AFTER, Retry
from runner.requests.targets import ApiError, Judgement, Verdict

if TYPE_CHECKING:
    from runner.requests.sender import Sender

# --wait polling: 1 s doubling to 10 s.
POLL_FIRST, POLL_MAX = 1.0, 10.0


class Adder:
    """Adds pairs for one run's sender (its limiters, retries, counters and settle rule):
    check first when uncertain, POST with retries, converge attributes, --wait. Not an
    Operation: the `Attach` operation below (and file batches) use it."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.updater = Updater(sender, readd=lambda item: self.attach(item, uncertain=False))

    async def attach(self, item: Item, *, uncertain: bool,
                     state: ItemState | None = None) -> Outcome:
        """Attach one pair; `uncertain`: the log says it may be attached, so check first.
        `state`: the item's tries so far, when it comes back from the settle wait. Raises
        Unsettled when a write's outcome becomes unknown."""
        if state is None:
            state = ItemState(uncertain=uncertain)
        sender = self.sender

        async def attempt(retry: bool) -> Outcome:
            if retry:
                sender.counters.retries += 1
            return await self._try_once(item, state)

        try:
            return await sender.tried(state, attempt)
        except Retry as exc:
            return Outcome("failed", exc.status, state.sent, exc.error, retryable=True,
                           uncertain=state.uncertain)

    async def _try_once(self, item: Item, state: ItemState) -> Outcome:
        if state.uncertain:
            settled = await self._settle(item, state)
            if settled is not None:
                return settled
        target = self.sender.target
        state.sent += 1
        state.counted += 1
        self.sender.counters.attach_requests += 1
        store = item.owner if target.supports_batches else None
        try:
            answer = await self.sender.request("POST", target.attach_path(item.owner),
                                        target.attach_body(item), store=store)
        except NotSent:
            # It never left: not an attempt. The stopped run ends the item retryable.
            state.sent -= 1
            state.counted -= 1
            self.sender.counters.attach_requests -= 1
            raise Retry(None, NOT_SENT) from None
        except TransportError as exc:
            error = ApiError("connection_error", str(exc), None)
            if exc.sent:
                raise self.sender.unsettled(state, None, error) from None
            raise Retry(None, error) from None
        judgement = target.judge_attach(answer, wait=self.sender.wait)
        if state.sent == 1 and self.sender.breaker.armed and self.sender.breaker.observe(
            item, judgement.verdict, answer.status, judgement.error
        ):
            self.sender.breaker_tripped = True
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
            if manages_attributes(item) and self.sender.target.supports_batches:
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
                raise Retry(status, judgement.error, wait=0.0)
            if status in UNCERTAIN_STATUSES:
                raise self.sender.unsettled(state, status, judgement.error)
            wait = min(answer.retry_after, MAX_RETRY_AFTER) if answer.retry_after else None
            raise Retry(status, judgement.error, wait=wait)
        # REFUSED (or ABSENT, which an attach answer never is).
        return Outcome("failed", status, state.sent, judgement.error, retryable=False,
                       uncertain=False)

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
        path = self.sender.target.check_path(item.owner, item.file_id)
        try:
            answer = await self.sender.request_retrying("GET", path, kind="check")
        except GaveUp as exc:
            return None, exc.status
        return self.sender.target.judge_check(answer, wait=self.sender.wait), answer.status

    # --- --wait -----------------------------------------------------------------------------

    async def _wait_for_file(self, item: Item, state: ItemState, status: int) -> Outcome:
        """Poll a vector store file until it leaves in_progress (1 s doubling to 10 s)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.sender.wait_timeout
        interval = POLL_FIRST
        path = self.sender.target.check_path(item.owner, item.file_id)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 or self.sender.halted:
                self.sender.counters.still_in_progress += 1
                return in_place(status, state, "in_progress")
            await self.sender.pause(min(interval, remaining))
            if self.sender.halted:
                continue
            interval = min(POLL_MAX, interval * 2)
            self.sender.counters.polls += 1
            try:
                answer = await self.sender.request("GET", path)
            except TransportError:
                continue  # a poll is harmless to repeat
            judgement = self.sender.target.judge_check(answer, wait=True)
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


class Attach(Operation):
    """`run`: attach each pair, update attributes that differ (SPEC: attributes converge)."""

    name = "attach"
    batches = True
    skips_blocks = True

    def __init__(self, sender: Sender) -> None:
        super().__init__(sender)
        self.adder = Adder(sender)

    @staticmethod
    def plan(index: ResumeIndex, item: Item, *, retry_failed: bool,
             ) -> tuple[Plan, int | None]:
        return index.plan(item, retry_failed=retry_failed)

    def op_of(self, plan: Plan) -> str:
        return "update" if plan is Plan.UPDATE else "attach"

    async def start(self, item: Item, plan: Plan) -> Outcome:
        if plan is Plan.UPDATE:
            return await self.adder.updater.update(item)
        return await self.adder.attach(item, uncertain=plan is Plan.CHECK)

    async def settle(self, item: Item, state: ItemState | None) -> Outcome:
        return await self.adder.attach(item, uncertain=True, state=state)
