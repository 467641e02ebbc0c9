"""The detach operation: take each pair's file out of its owner (`DELETE
/vector_stores/{id}/files/{file_id}` or `DELETE /assistants/{id}/files/{file_id}`); the file
object itself is never deleted.

Outcomes: `detached` (the DELETE went through, or a check after an uncertain one found the
pair gone) and `already_detached` (a 404 while the owner exists). SPEC's 404 rule: a 404 is
"not there" only when the owner exists, that is when the answer names the file, or one GET of
the owner answers 200; a missing owner or an "Invalid URL" is a refusal (and counts for the
breaker, so a wrong base URL stops the run as for `run`). An uncertain DELETE (dropped or
timed out after sending, a 500/502/504) follows the settle rule: parked, then checked with a
GET of the pair (404 -> detached; 200 -> DELETE again), never repeated blind.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator

from runner.errors import UsageError
from runner.items import Item
from runner.log.resume import ResumeIndex
from runner.log.states import UNSETTLED_STATES, Plan
from runner.manifest import ManifestSource
from runner.operations.base import Operation
from runner.requests.client import Answer
from runner.requests.outcomes import GaveUp, ItemState, Outcome, RunRefused, Unsettled, refusal_kind
from runner.requests.targets import ApiError, Verdict, api_error, classify_error

OP = "detach"
CHECK_FAILED = ApiError("check_failed", "could not check whether the pair is still attached",
                        None)
NOT_DELETED = ApiError("not_deleted", "the API answered the DELETE without `deleted: true`",
                       None)


class Detach(Operation):
    """Detaches for one run's sender (its limiters, retries, counters and settle rule)."""

    name = OP

    @staticmethod
    def plan(index: ResumeIndex, item: Item, *, retry_failed: bool,
             ) -> tuple[Plan, int | None]:
        if not item.file_id:  # a path whose file the log has in no version in the store
            return Plan.DONE, None
        return index.plan_detach(item, retry_failed=retry_failed)

    @staticmethod
    def resolve(index: ResumeIndex, item: Item) -> Item:
        """SPEC: detach of a path row takes out the version the log recorded for the path
        in the store (the file itself is not read: it may be gone)."""
        local = item.local
        if local is None:
            return item
        return item._replace(file_id=index.versions.version_of(item.owner, local.path) or "")

    async def start(self, item: Item, plan: Plan) -> Outcome:
        return await self.detach(item, uncertain=plan is Plan.CHECK)

    async def settle(self, item: Item, state: ItemState | None) -> Outcome:
        return await self.detach(item, uncertain=True, state=state)

    async def detach(self, item: Item, *, uncertain: bool,
                     state: ItemState | None = None) -> Outcome:
        """Detach one pair; `uncertain`: a write may have landed, so check first. Raises
        Unsettled when the DELETE's outcome becomes unknown, RunRefused for the run."""
        if state is None:
            state = ItemState(uncertain=uncertain)
        sender = self.sender
        target = sender.target
        path = target.detach_path(item.owner, item.file_id)
        if state.uncertain:
            try:
                answer = await sender.request_retrying("GET", path, kind="check")
            except GaveUp as exc:
                return Outcome("failed", exc.status, state.sent, CHECK_FAILED, retryable=True,
                               uncertain=True, op=self.name)
            state.checks_done += 1
            if answer.status == 404:
                return await self._absent(item, state, answer, "detached")
            if not 200 <= answer.status < 300:
                return self._refused(state, answer, uncertain=True)
            state.uncertain = False  # still there: send the DELETE
        state.sent += 1
        state.counted += 1
        store = item.owner if target.supports_batches else None
        try:
            answer = await sender.request_retrying("DELETE", path, store=store, kind="detach")
        except GaveUp as exc:
            if not exc.uncertain:
                return Outcome("failed", exc.status, state.sent, exc.error, retryable=True,
                               op=self.name)
            state.uncertain = True  # counted as uncertain by request_retrying already
            if state.counted >= sender.max_attempts:
                return Outcome("failed", exc.status, state.sent, exc.error, retryable=True,
                               uncertain=True, op=self.name)
            due = asyncio.get_running_loop().time() + sender.settle
            raise Unsettled(due, state, exc.status, exc.error, op=self.name) from None
        if 200 <= answer.status < 300:
            self._observe(item, state, Verdict.ATTACHED, answer.status, None)
            body = answer.body
            if isinstance(body, dict) and body.get("deleted") is False:
                return Outcome("failed", answer.status, state.sent, NOT_DELETED,
                               retryable=True, op=self.name)
            return Outcome("detached", answer.status, state.sent, op=self.name)
        if answer.status == 404:
            return await self._absent(item, state, answer, "already_detached")
        outcome = self._refused(state, answer, uncertain=False)
        self._observe(item, state, Verdict.REFUSED, answer.status, outcome.error)
        return outcome

    async def _absent(self, item: Item, state: ItemState, answer: Answer,
                      gone: str) -> Outcome:
        """A 404 for the pair: `gone` when the owner exists (the answer names the file, or a
        GET of the owner answers 200); a refusal otherwise (SPEC's 404 rule)."""
        error = api_error(answer.status, answer.body, answer.text)
        exists = (not error.message.startswith("Invalid URL")
                  and (item.file_id in error.message or await self._owner_exists(item)))
        if exists:
            self._observe(item, state, Verdict.ALREADY_ATTACHED, answer.status, None)
            return Outcome(gone, answer.status, state.sent, op=self.name)
        self._observe(item, state, Verdict.REFUSED, answer.status, error)
        return Outcome("failed", answer.status, state.sent, error, retryable=False, op=self.name)

    async def _owner_exists(self, item: Item) -> bool:
        sender = self.sender
        try:
            answer = await sender.request_retrying(
                "GET", sender.target.owner_path(item.owner), kind="check")
        except GaveUp:
            return False
        return 200 <= answer.status < 300

    def _refused(self, state: ItemState, answer: Answer, *, uncertain: bool) -> Outcome:
        error = api_error(answer.status, answer.body, answer.text)
        verdict = classify_error(answer.status, error)
        if verdict is Verdict.RUN_REFUSED:
            raise RunRefused(refusal_kind(answer.status, error), answer.status, error)
        return Outcome("failed", answer.status, state.sent, error,
                       retryable=verdict is not Verdict.REFUSED or uncertain,
                       uncertain=uncertain, op=self.name)

    def _observe(self, item: Item, state: ItemState, verdict: Verdict, status: int | None,
                 error: ApiError | None) -> None:
        """The breaker watches the first answer to each pair's first DELETE of the run."""
        sender = self.sender
        if state.sent == 1 and state.checks_done == 0 and sender.breaker.armed and (
                sender.breaker.observe(item, verdict, status, error)):
            sender.breaker_tripped = True


class DetachVersion(Detach):
    """A replaced version of a local file taken out of its store (SPEC "Replace"): a detach
    whose lines say `detach-version`, named by store and file id; it never stands for the
    path pair whose new version replaced it. An unsettled one is checked first."""

    name = "detach-version"

    @staticmethod
    def plan(index: ResumeIndex, item: Item, *, retry_failed: bool,
             ) -> tuple[Plan, int | None]:
        state = index.last_state(item.owner, item.file_id)
        return (Plan.CHECK if state is not None and state in UNSETTLED_STATES
                else Plan.SEND), None


def refuse_detach_rows(source: ManifestSource) -> None:
    """SPEC: `run` refuses a manifest whose `op` column says `detach` (as `failed` writes it
    after a detach): exit 2, nothing sent. CSV and JSONL files; other manifests have no `op`."""
    if source.format not in ("csv", "jsonl"):
        return
    if source.format == "jsonl" and not _mentions(source.path, b'"op"'):
        return  # nearly every manifest: one search at C speed, no line read
    try:
        with open(source.path, encoding="utf-8", errors="replace", newline="") as stream:
            if source.format == "csv":
                rows = csv.reader(stream)
                header = [name.strip() for name in next(rows, [])]
                if "op" not in header:
                    return
                at = header.index("op")
                lines: Iterator[tuple[int, str | None]] = (
                    (n, row[at].strip()) for n, row in enumerate(rows, 2) if len(row) > at)
            else:
                lines = ((n, _jsonl_op(line)) for n, line in enumerate(stream, 1)
                         if '"op"' in line)
            for line, op in lines:
                if op == OP:
                    raise UsageError(
                        f"{source.display}:{line}: op is detach: this manifest detaches (as "
                        "`failed` writes it after a detach); run it with `attach-runner "
                        "detach`, not `run`")
    except OSError:
        return  # the manifest's own reading reports it


_SEARCH_CHUNK = 1 << 20


def _mentions(path: str, needle: bytes) -> bool:
    """Whether the file holds `needle` anywhere, read a MiB at a time (a mapping of the
    whole file would count in the run's peak memory); True when it cannot be read: the
    reading that follows reports that."""
    tail = b""
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(_SEARCH_CHUNK):
                if needle in tail + chunk[:len(needle)] or needle in chunk:
                    return True
                tail = chunk[-len(needle) + 1:]
    except OSError:
        return True
    return False


def _jsonl_op(line: str) -> str | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    op = value.get("op") if isinstance(value, dict) else None
    return op if isinstance(op, str) else None
