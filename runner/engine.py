"""The run: a stream of work from the manifest (minus what the log says is done), a fixed pool of
workers, the log, and the stop rules (signals, --max-runtime, run-level refusals).

Memory stays flat: items are pulled one at a time from a generator by `concurrency` workers;
nothing holds the manifest (for vector stores, at most STORE_LOOKAHEAD pairs wait aside while
their store is busy: see FreeStoresFirst). Each worker has at most one request in flight, so the
pool's size is the concurrency bound.
"""

from __future__ import annotations

import asyncio
import heapq
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from runner.attempt import Attempter, Outcome, RunRefused, Unsettled
from runner.attributes import digest as attributes_digest
from runner.batches import BatchRunner
from runner.errors import LogError
from runner.items import Item
from runner.log import ResultLog
from runner.manifest import Block
from runner.resume import Plan, ResumeIndex
from runner.targets import ApiError, generic_message

SETTLING = ApiError("not_checked", "the run stopped before this uncertain pair could be "
                    "checked (the server may have applied its last write late)", None)
# In-flight requests get this long to finish after a stop (SIGINT/SIGTERM, --max-runtime).
DRAIN_SECONDS = 10.0
# Distinct failure reasons kept for the summary; the rest are counted together.
MAX_REASONS = 200
# The opening units are reordered round-robin by owner across this many (see interleave_owners).
OPENING_LOOKAHEAD = 256
# Vector stores: pairs held back while their store is busy, so others can go (see FreeStoresFirst).
STORE_LOOKAHEAD = 20_000


@dataclass(slots=True)
class Single:
    item: Item
    plan: Plan


@dataclass(order=True, slots=True)
class Parked:
    """An item whose last write may have been applied, waiting for its check (the settle
    rule: see attempt.Unsettled). `unsettled` is None for a pair an earlier run left
    uncertain: its check has not begun, and it has no `sent` line in this run yet."""

    due: float  # loop time
    serial: int  # ties keep arrival order
    item: Item = field(compare=False)
    unsettled: Unsettled | None = field(compare=False, default=None)


@dataclass(slots=True)
class NewBatch:
    store: str
    items: list[Item]


@dataclass(slots=True)
class FollowBatch:
    store: str
    batch_id: str
    items: list[Item]


Work = Single | NewBatch | FollowBatch


@dataclass
class Tally:
    """What this run did, by outcome, plus what it skipped because of the log."""

    pairs: int = 0
    attached: int = 0
    already_attached: int = 0
    updated: int = 0
    failed: int = 0
    done_earlier: int = 0
    refused_earlier: int = 0
    duplicates: int = 0
    failed_reasons: dict[tuple[int | None, str | None, str], int] = field(default_factory=dict)

    @property
    def handled(self) -> int:
        return (self.attached + self.already_attached + self.updated + self.failed
                + self.done_earlier + self.refused_earlier)

    @property
    def pending(self) -> int:
        return max(0, self.pairs - self.handled)


@dataclass
class RunResult:
    tally: Tally
    stop: str | None  # None | "SIGINT" | "SIGTERM" | "max-runtime" | "refused"
    refusal: RunRefused | None
    elapsed: float
    exit_code: int = 0


def pair_members(owner_column: str, item: Item) -> str:
    """The pair as JSON members of a log line. IDs obey the ID rule (no character JSON must
    escape), so they are JSON strings as they stand."""
    return f'"{owner_column}":"{item.owner}","file_id":"{item.file_id}"'


def op_members(op: str, pair: str) -> str:
    """A pair line's `op` and pair members, in the log's key order."""
    return f'"op":"{op}",{pair}'


def plain_done_members(pair: str, outcome: Outcome, digest: str | None = None) -> str | None:
    """A `done` line's members for the common outcome (no error, no file status) without the
    JSON encoder: the same text `json` would make. None for any other outcome."""
    if outcome.error is not None or outcome.file_status is not None:
        return None
    status = "null" if outcome.status is None else str(outcome.status)
    return (f'"op":"{outcome.op}",{pair},"outcome":"{outcome.outcome}","status":{status},'
            f'"attempts":{outcome.attempts},"error":null,'
            f'"retryable":{"true" if outcome.retryable else "false"},'
            f'"uncertain":{"true" if outcome.uncertain else "false"}'
            + (f',"attributes_digest":"{digest}"' if digest is not None else ""))


IN_PLACE = frozenset({"attached", "already_attached", "updated"})


def recorded_digest(item: Item, outcome: Outcome) -> str | None:
    """SPEC: a done line that leaves managed attributes in place records their digest."""
    options = item.options
    if options is None or options.attributes is None or outcome.outcome not in IN_PLACE:
        return None
    return attributes_digest(options.attributes)


def _store_of(unit: Work) -> str:
    """The unit's owner: the assistant or vector store its requests go to."""
    return unit.item.owner if isinstance(unit, Single) else unit.store


def interleave_owners(work: Iterator[Work], lookahead: int) -> Iterator[Work]:
    """The first `lookahead` units, taken round-robin by owner, then the rest in order.

    A run's first answers decide the breaker (SPEC: the first 20 answers must span 3 owners
    before a uniform refusal stops the run). A manifest sorted by owner would otherwise open
    with 20 requests to one owner, and a wrong base URL could then burn the whole manifest."""
    head: dict[str, list[Work]] = {}
    for taken, unit in enumerate(work, 1):
        head.setdefault(_store_of(unit), []).append(unit)
        if taken >= lookahead:
            break
    queues = [q[::-1] for q in head.values()]  # popped from the end: keeps each owner's order
    while queues:
        for queue in queues:
            yield queue.pop()
        queues = [q for q in queues if q]
    yield from work


def _size(unit: Work) -> int:
    return 1 if isinstance(unit, Single) else len(unit.items)


class FreeStoresFirst:
    """The work in manifest order, except that a unit whose vector store is busy (its
    per-store slot is not free yet) waits aside, up to `lookahead` pairs, while units of free
    stores go first. The API allows each store 300 requests a minute: without this, a manifest
    grouped by store (a grouped YAML manifest always is) kept every worker queueing behind one
    store, at one store's rate, while the other stores sat idle.

    Each store's own units keep their order. When every store in sight is busy (or the
    lookahead is full), a worker gets the unit whose store frees first and waits for it there.
    Units still held when the run stops were never sent: they stay pending for the next run."""

    def __init__(self, work: Iterator[Work], ready_in: Callable[[str], float], *,
                 lookahead: int = STORE_LOOKAHEAD) -> None:
        self._work: Iterator[Work] | None = work
        self._ready_in = ready_in
        self._lookahead = lookahead
        self._held: dict[str, deque[Work]] = {}  # busy store -> its units, in manifest order
        self._holding = 0  # pairs in _held

    def __iter__(self) -> FreeStoresFirst:
        return self

    def __next__(self) -> Work:
        ready_in = self._ready_in
        for store in self._held:
            if ready_in(store) <= 0.0:
                return self._release(store)
        while self._work is not None and self._holding < self._lookahead:
            unit = next(self._work, None)
            if unit is None:
                self._work = None
                break
            store = _store_of(unit)
            if store not in self._held and ready_in(store) <= 0.0:
                return unit
            self._held.setdefault(store, deque()).append(unit)
            self._holding += _size(unit)
        if not self._held:
            raise StopIteration
        return self._release(min(self._held, key=ready_in))

    def _release(self, store: str) -> Work:
        queue = self._held[store]
        unit = queue.popleft()
        if not queue:
            del self._held[store]
        self._holding -= _size(unit)
        return unit


def iter_work(parts: Iterable[Block | Item], index: ResumeIndex, tally: Tally, *,
              retry_failed: bool, batch_size: int) -> Iterator[Work]:
    """Manifest items in order, minus what the log settles (counted in `tally`); with
    `batch_size`, new pairs grouped per store into batches, flushed at the end. `parts`:
    items, or the manifest's blocks of pairs (manifest.iter_blocks), which a rerun that has
    them all done skips whole."""
    pending: dict[str, list[Item]] = {}  # store -> items waiting for a full batch
    follow: dict[str, FollowBatch] = {}  # batch id -> its manifest items (followed at the end)
    for item in _items_to_plan(parts, index, tally):
        plan, _ = index.plan(item, retry_failed=retry_failed)
        if plan is Plan.DUPLICATE:
            tally.duplicates += 1
        elif plan is Plan.DONE:
            tally.done_earlier += 1
        elif plan is Plan.SKIP_REFUSED:
            tally.refused_earlier += 1
        elif plan is Plan.FOLLOW and (batch_id := index.batch_for(item)) is not None:
            unit = follow.get(batch_id)
            if unit is None:
                unit = follow[batch_id] = FollowBatch(item.owner, batch_id, [])
            unit.items.append(item)
        elif batch_size > 0 and plan is Plan.SEND:
            group = pending.setdefault(item.owner, [])
            group.append(item)
            if len(group) >= batch_size:
                del pending[item.owner]
                yield NewBatch(item.owner, group)
        else:
            yield Single(item, Plan.CHECK if plan is Plan.FOLLOW else plan)
    yield from follow.values()
    for store, group in pending.items():
        yield NewBatch(store, group)


def _items_to_plan(parts: Iterable[Block | Item], index: ResumeIndex,
                   tally: Tally) -> Iterator[Item]:
    for part in parts:
        if isinstance(part, Item):
            yield part
        elif index.all_in_place(part.pairs):
            tally.done_earlier += len(part.pairs)
        else:
            yield from part.items()


class Engine:
    def __init__(
        self,
        *,
        parts: Callable[[], Iterator[Block | Item]],
        pairs: int,
        index: ResumeIndex,
        log: ResultLog,
        attempter: Attempter,
        owner_column: str,
        concurrency: int,
        batch_size: int,
        retry_failed: bool,
        max_runtime: float | None,
        on_progress: Callable[[Engine], None] | None = None,
        resume_due_in: float = 0.0,
    ) -> None:
        self._parts = parts
        self.index = index
        self.log = log
        self.attempter = attempter
        self.owner_column = owner_column
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.retry_failed = retry_failed
        self.max_runtime = max_runtime
        self.on_progress = on_progress
        self.tally = Tally(pairs=pairs)
        self.stop_reason: str | None = None
        self.refusal: RunRefused | None = None
        # The log could not be written (a full disk): the run stopped sending at once.
        self.log_error: LogError | None = None
        self._stopping = asyncio.Event()
        self._hard_stop = asyncio.Event()
        self._batches = BatchRunner(attempter, log, owner_column, record=self.record,
                                    park=self.park)
        self.started = 0.0
        # Pairs an earlier run left uncertain are checked no sooner than this many seconds
        # from the start (the log's last line plus --timeout and --settle: see commands).
        self.resume_due_in = resume_due_in
        self._resume_due = 0.0
        self._parked: list[Parked] = []  # a heap, earliest due first
        self._serial = 0
        self._work_left = True
        self._parked_changed = asyncio.Event()

    # --- stopping -----------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Start nothing new. A second stop request (a second signal) stops at once."""
        if self._stopping.is_set():
            if reason.startswith("SIG"):
                self._hard_stop.set()
            return
        self.stop_reason = reason
        self.attempter.halt()
        self._stopping.set()

    def _log_failed(self, error: LogError) -> None:
        """A line could not be written: send nothing more (SPEC: exit 2, `log-write`). What
        is already in the log stays true: a pair whose `done` was lost keeps its `sent`, so
        the next run checks it before sending anything."""
        if self.log_error is None:
            self.log_error = error
        self.stop("log-write")

    def _refuse(self, refusal: RunRefused) -> None:
        if self.refusal is None:
            self.refusal = refusal
        self.stop("refused")

    # --- workers --------------------------------------------------------------------------------

    def park(self, item: Item, unsettled: Unsettled | None, due: float) -> None:
        """Hold an item until its check may go out (the settle rule)."""
        self._serial += 1
        entry = Parked(due, self._serial, item, unsettled)
        heapq.heappush(self._parked, entry)
        if self._parked[0] is entry:
            self._parked_changed.set()  # a waiting worker may have to wake sooner

    @property
    def settling(self) -> tuple[int, float] | None:
        """(items waiting for their check, loop time the first is due), or None."""
        if not self._parked:
            return None
        return len(self._parked), self._parked[0].due

    async def _take(self, work: Iterator[Work]) -> Work | Parked | None:
        """The next thing to do: a parked item whose time has come, else the next unit of
        work; when the work has run out, wait for the next parked item (or a stop)."""
        loop = asyncio.get_running_loop()
        parked = self._parked
        while not self._stopping.is_set():
            if parked and parked[0].due <= loop.time():
                return heapq.heappop(parked)
            if self._work_left:
                unit = next(work, None)
                if unit is not None:
                    return unit
                self._work_left = False
            if not parked:
                return None
            self._parked_changed.clear()
            waits = [asyncio.ensure_future(self._stopping.wait()),
                     asyncio.ensure_future(self._parked_changed.wait())]
            try:
                await asyncio.wait(waits, timeout=max(0.0, parked[0].due - loop.time()),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
        return None

    async def _worker(self, work: Iterator[Work]) -> None:
        stopping = self._stopping
        while not stopping.is_set():
            unit = await self._take(work)
            if unit is None:
                return
            try:
                if isinstance(unit, Parked):
                    await self._check_parked(unit)
                elif isinstance(unit, Single):
                    await self._one(unit.item, unit.plan)
                elif isinstance(unit, NewBatch):
                    await self._batches.create(unit.store, unit.items)
                else:
                    await self._batches.follow(unit.store, unit.batch_id, unit.items)
            except RunRefused as refusal:
                self._refuse(refusal)
            except LogError as error:
                self._log_failed(error)
            if self.attempter.breaker_tripped and self.refusal is None:
                self._refuse(RunRefused("breaker", None, None))

    async def _one(self, item: Item, plan: Plan) -> None:
        if plan is Plan.CHECK and self._resume_due > asyncio.get_running_loop().time():
            # Left uncertain by a run that may have ended moments ago: the server may not
            # have applied that write yet. Check it when its time comes; go on meanwhile.
            self.park(item, None, self._resume_due)
            return
        # Log "sent" before the first request: a crash after sending must leave the pair
        # uncertain (checked next run), not pending (sent blind).
        pair = pair_members(self.owner_column, item)
        op = "update" if plan is Plan.UPDATE else "attach"
        self.log.append_encoded("sent", op_members(op, pair))
        try:
            if plan is Plan.UPDATE:
                outcome = await self.attempter.update(item)
            else:
                outcome = await self.attempter.attach(item, uncertain=plan is Plan.CHECK)
        except Unsettled as unsettled:
            self.park(item, unsettled, unsettled.due)
            return
        except RunRefused as refusal:
            self.record(item, Outcome("failed", refusal.status, 1, refusal.error, retryable=True,
                                      op=op))
            raise
        self.record(item, outcome, pair)

    async def _check_parked(self, parked: Parked) -> None:
        """A parked item's time has come: check it (GET), and send it only if absent."""
        item, unsettled = parked.item, parked.unsettled
        if unsettled is None:
            self.log.append_encoded("sent", op_members("attach", pair_members(
                self.owner_column, item)))
        state = unsettled.state if unsettled is not None else None
        try:
            outcome = await self.attempter.attach(item, uncertain=True, state=state)
        except Unsettled as again:
            self.park(item, again, again.due)
            return
        except RunRefused as refusal:
            self.record(item, Outcome("failed", refusal.status, 1, refusal.error,
                                      retryable=True, uncertain=True))
            raise
        self.record(item, outcome)

    def _unpark_all(self) -> None:
        """The run stopped while items waited for their check: each ends failed, retryable
        and uncertain (SPEC), so the next run checks it first."""
        while self._parked:
            parked = heapq.heappop(self._parked)
            if parked.unsettled is not None:
                self.record(parked.item, parked.unsettled.outcome())
            else:
                self.record(parked.item, Outcome(
                    "failed", None, 0, SETTLING, retryable=True, uncertain=True))

    def record(self, item: Item, outcome: Outcome, pair: str | None = None) -> None:
        """Write the item's `done` line and count it. `pair`: the pair's JSON members, when
        the caller has them (see ResultLog.append_encoded)."""
        if outcome.outcome == "failed" and self.refusal is not None and not outcome.retryable:
            # After a run-level stop, a refusal may be the run's fault, not the item's.
            outcome.retryable = True
        try:
            self._write_done(item, outcome, pair)
        except LogError as error:
            self._log_failed(error)
        self._count(outcome)

    def _write_done(self, item: Item, outcome: Outcome, pair: str | None) -> None:
        if self.log_error is not None:
            return  # the log is failing: the pair keeps its `sent`, and is checked next run
        digest = recorded_digest(item, outcome)
        members = plain_done_members(pair, outcome, digest) if pair is not None else None
        if members is not None:
            self.log.append_encoded("done", members)
        else:
            fields: dict[str, Any] = {
                "op": outcome.op,
                self.owner_column: item.owner,
                "file_id": item.file_id,
                "outcome": outcome.outcome,
                "status": outcome.status,
                "attempts": outcome.attempts,
                "error": outcome.error.as_log() if outcome.error else None,
                "retryable": outcome.retryable,
                "uncertain": outcome.uncertain,
            }
            if outcome.file_status is not None:
                fields["file_status"] = outcome.file_status
            if digest is not None:
                fields["attributes_digest"] = digest
            self.log.append("done", **fields)

    def _count(self, outcome: Outcome) -> None:
        tally = self.tally
        if outcome.outcome == "attached":
            tally.attached += 1
        elif outcome.outcome == "already_attached":
            tally.already_attached += 1
        elif outcome.outcome == "updated":
            tally.updated += 1
        else:
            tally.failed += 1
            err = outcome.error
            reasons = tally.failed_reasons
            reason = (outcome.status, err.code if err else None,
                      generic_message(err.message) if err else "")
            if reason not in reasons and len(reasons) >= MAX_REASONS:
                # Memory stays bounded even when every message is different.
                reason = (None, None, "other reasons (see attach-runner status)")
            reasons[reason] = reasons.get(reason, 0) + 1

    # --- the run --------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        self.started = loop.time()
        self._resume_due = self.started + self.resume_due_in
        handlers = self._install_signals(loop)
        timer = (loop.call_later(self.max_runtime, self.stop, "max-runtime")
                 if self.max_runtime else None)
        ticker = asyncio.create_task(self._tick()) if self.on_progress else None
        work = interleave_owners(
            iter_work(self._parts(), self.index, self.tally, retry_failed=self.retry_failed,
                      batch_size=self.batch_size if self.attempter.target.supports_batches
                      else 0),
            OPENING_LOOKAHEAD)
        store_limiter = self.attempter.store_limiter
        if store_limiter is not None:
            work = FreeStoresFirst(work, store_limiter.ready_in)
        workers = [asyncio.create_task(self._worker(work)) for _ in range(self.concurrency)]
        try:
            await self._until_done_or_stopped(workers)
        finally:
            if timer is not None:
                timer.cancel()
            if ticker is not None:
                ticker.cancel()
            for sig in handlers:
                loop.remove_signal_handler(sig)
        self._unpark_all()
        if self.refusal is not None and self.log_error is None:
            try:
                self._release_breaker_items()
            except LogError as error:
                self._log_failed(error)
        return RunResult(self.tally, self.stop_reason, self.refusal, loop.time() - self.started)

    async def _until_done_or_stopped(self, workers: list[asyncio.Task[None]]) -> None:
        async def all_done() -> None:
            await asyncio.gather(*workers, return_exceptions=True)

        everything = asyncio.create_task(all_done())
        stop_wait = asyncio.create_task(self._stopping.wait())
        hard = asyncio.create_task(self._hard_stop.wait())
        try:
            await asyncio.wait({everything, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not everything.done():
                # Stopping: let in-flight requests finish, within the drain bound.
                await asyncio.wait({everything, hard}, timeout=DRAIN_SECONDS,
                                   return_when=asyncio.FIRST_COMPLETED)
                # Whatever is still in flight stays uncertain: its "sent" has no "done".
                for task in workers:
                    task.cancel()
            await everything
            for task in workers:
                if not task.cancelled() and (error := task.exception()) is not None:
                    raise error
        finally:
            stop_wait.cancel()
            hard.cancel()

    def _release_breaker_items(self) -> None:
        """Items refused in the breaker's window end retryable (written last, so it stands)."""
        breaker = self.attempter.breaker
        if self.refusal is None or self.refusal.kind != "breaker":
            return
        for item in breaker.items:
            self.log.append("done", **{
                "op": "attach", self.owner_column: item.owner, "file_id": item.file_id,
                "outcome": "failed",
                "status": breaker.signature[0] if breaker.signature else None, "attempts": 1,
                "error": {"type": "run_refused",
                          "message": "stopped: the first answers were all the same refusal",
                          "code": breaker.signature[1] if breaker.signature else None},
                "retryable": True, "uncertain": False,
            })

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed: list[int] = []
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
            try:
                loop.add_signal_handler(sig, self.stop, name)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix
                continue
            installed.append(sig)
        return installed

    async def _tick(self) -> None:
        assert self.on_progress is not None
        while True:
            await asyncio.sleep(0.5)
            self.on_progress(self)
