"""A run's end for local files (SPEC "Local files": Replace, Clean-up), once every pair of the
manifest is done and the run was not stopped:

1. Replace: each old version of a path whose new version was attached after it (this run or a
   run that was killed before it could finish) is taken out of its store, `op:
   detach-version`, unless a pair of the manifest still wants it there (two paths that held
   the same content). Attach first, then detach: the store is never without the document (a
   short overlap with both versions is the price). Through the run's engine: rate, per-store
   limit, retries, settle rule, signals, --max-runtime.
2. Clean-up (not with --keep-files): each file object of ours (uploaded or adopted) that the
   log now shows in no store, and no pair of this run names, is deleted (`DELETE /files/{id}`
   takes a file out of every store, so nothing else ever is: not a `file_id` row's file, not a
   file found in a store, not a possible duplicate).

A run killed anywhere in here leaves lines the next run finishes from: a superseded version
still in place is detached then, a `file-delete-sent` without its settled `file-deleted` is
checked (GET) before it is sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from runner.config import Settings
from runner.errors import LogError
from runner.items import Item, pair_key
from runner.log.resume import ResumeIndex
from runner.log.versions import OldVersion
from runner.log.writer import ResultLog
from runner.operations.detach import DetachVersion
from runner.operations.upload import Uploads
from runner.requests.outcomes import Outcome, RunRefused
from runner.requests.sender import Sender
from runner.run.engine import Engine
from runner.run.signals import stopping_on_signals
from runner.run.tally import RunResult, Tally


class Leftovers:
    """The end of one run (or sync) that met local files."""

    def __init__(self, settings: Settings, uploads: Uploads, *, index: ResumeIndex,
                 log: ResultLog, sender: Sender, owner_column: str, started: float,
                 due_in: float) -> None:
        self.settings = settings
        self.index = index
        self.log = log
        self.sender = sender
        self.owner_column = owner_column
        self.started = started  # the loop's clock at the run's start (for --max-runtime)
        self.due_in = due_in
        self.counts = uploads.counts  # replaced, deletes: the summary's local-file facts
        self.deleter = uploads.deleter
        self.tally = Tally()  # the detach-versions' failures (added to the run's)
        self.stop: str | None = None
        self.refusal: RunRefused | None = None
        # The log could not be written: stop at once (the run's exit 2, `log-write`).
        self.log_error: LogError | None = None
        self.engine: Engine | None = None
        self._deletes: _Deletes | None = None
        self._stores: list[str] = []
        self._keeps: Callable[[str, str], bool] | None = None
        self._failed_before = 0
        # The detach-versions' engine while it runs (`start_replacing`), its task, and what
        # the manifest keeps; the pair keys of the versions fed to it.
        self._replacer: Engine | None = None
        self._replacing_task: asyncio.Task[RunResult] | None = None
        self._wanted: Callable[[str, str], bool] | None = None
        self._fed: set[int] = set()

    def _left(self) -> float | None:
        runtime = self.settings.max_runtime
        if runtime is None:
            return None
        return max(0.001, runtime - (asyncio.get_running_loop().time() - self.started))

    async def finish(self, wanted: Callable[[str, str], bool] | None = None,
                     stores: Iterable[str] = ()) -> None:
        """Replace, deleting each file object of ours as soon as nothing holds it.
        `wanted(store, file_id)`: a pair the manifest keeps (by default, one this run
        named); `stores`: the manifest's stores."""
        self.start_deleting(stores, wanted)
        await self.replace(wanted)
        await self.finish_deleting()

    async def replace(self, wanted: Callable[[str, str], bool] | None = None) -> None:
        """Take out the old versions (DetachVersion through an engine of its own); each one
        detached whose file object is then in no store is deleted at once, beside the
        detaches still going (a store takes 300 writes a minute: the deletes, which are not
        store writes, use the rest of the rate meanwhile)."""
        if not self.index.stale_versions(wanted):
            return  # a converged rerun starts no engine
        self.start_replacing(wanted)
        self.replace_the_rest()
        await self.finish_replacing()

    def start_replacing(self, wanted: Callable[[str, str], bool] | None = None) -> None:
        """Start the engine of detach-versions, fed as old versions become stale. sync starts
        it before its adds, and each old version goes as soon as its new version is in place
        (`superseded`): a store's writes (300 a minute) then start with its first batch, not
        after the last upload. That needs every pair the manifest keeps known before the first
        write (`wanted`: sync's; by default, `kept_by_default`)."""
        index = self.index
        self._wanted = wanted or index.kept_by_default

        def count(item: Item, outcome: Outcome) -> None:
            index.note_done(item.owner, item.file_id, outcome.outcome,
                            retryable=outcome.retryable, uncertain=outcome.uncertain,
                            op=outcome.op)
            if outcome.outcome in ("detached", "already_detached"):
                self.counts.replaced += 1
                self.freed(item.file_id)

        settings = self.settings
        engine = Engine(
            parts=lambda: iter(()), pairs=0, index=index, log=self.log,
            sender=self.sender, owner_column=self.owner_column,
            concurrency=settings.concurrency, batch_size=0, retry_failed=True,
            max_runtime=self._left(), operation=DetachVersion(self.sender),
            resume_due_in=max(0.0, self.due_in), on_outcome=count,
            signals=False)  # the adds' engine takes them meanwhile; finish_replacing after
        engine.tally = self.tally
        engine.open_feed()
        self.engine = self._replacer = engine
        self._replacing_task = asyncio.create_task(engine.run())

    def superseded(self, old: OldVersion) -> None:
        """A path pair's new version is in place, and `old` was its version there."""
        if self._wanted is not None and self.index.is_stale(old, self._wanted):
            self._feed(old)

    def replace_the_rest(self) -> None:
        """The adds are done: the old versions they did not supersede (an earlier run's, left
        by a stop between attach and detach) join the detaches under way."""
        if self._wanted is not None:
            for old in self.index.stale_versions(self._wanted):
                self._feed(old)

    def _feed(self, old: OldVersion) -> None:
        key = pair_key(old.store, old.file_id)
        if self._replacer is not None and key not in self._fed:  # fed once, stale till done
            self._fed.add(key)
            self._replacer.feed(Item(old.store, old.file_id))

    def stop_replacing(self, reason: str) -> None:
        """The run stops: the detaches fed and not sent wait for the next run."""
        if self._replacer is not None:
            self._replacer.stop(reason)

    async def finish_replacing(self) -> None:
        """No more to feed: the detaches fed finish."""
        engine, task = self._replacer, self._replacing_task
        self._replacer = self._replacing_task = self._wanted = None
        if engine is None or task is None:
            return
        engine.close_feed()
        # The other phases are over: the signals (and their second, hard stop) are its own.
        with stopping_on_signals(engine.stop):
            result = await task
        self.stop = self.stop or result.stop
        self.refusal = self.refusal or result.refusal
        self.log_error = self.log_error or engine.log_error

    # --- clean-up ---------------------------------------------------------------------------

    def start_deleting(self, stores: Iterable[str] = (),
                       keeps: Callable[[str, str], bool] | None = None) -> None:
        """Start the deletes (not with --keep-files): first the file objects of ours that
        nothing holds already; then each one `freed` finds unused. `keeps(store, file_id)`:
        a pair of the manifest (by default, one this run named)."""
        self._stores, self._keeps = list(stores), keeps
        self._failed_before = len(self.deleter.counts.failed)
        if self.settings.keep_files:
            return
        self._deletes = _Deletes(self, self.settings.concurrency)
        for file_id in self.index.unused_uploads(self._stores, keeps):
            self._deletes.add(file_id)

    def freed(self, file_id: str) -> None:
        """A detach of this run took the file out of a store: delete it if nothing else
        holds it and it is ours."""
        if self._deletes is not None and self.index.is_unused(file_id, self._stores,
                                                              self._keeps):
            self._deletes.add(file_id)

    async def finish_deleting(self) -> None:
        """Delete the rest that nothing holds (unless the run stopped), and wait for the
        deletes under way; a signal or --max-runtime stops them (the next run finishes)."""
        deletes, self._deletes = self._deletes, None
        if deletes is None:
            return
        if self.stop is None:
            for file_id in self.index.unused_uploads(self._stores, self._keeps):
                deletes.add(file_id)
        with stopping_on_signals(self.halt, max_runtime=self._left()):
            await deletes.close()
        for _, status, error in self.deleter.counts.failed[self._failed_before:]:
            self.tally.fail(status, error)

    def halt(self, reason: str) -> None:
        if self.stop is None:
            self.stop = reason
        self.sender.halt()

    def add_failures(self, tally: Tally) -> None:
        """Count this end's failures (detach-versions, deletes) into the run's `tally`."""
        for reason, count in self.tally.failed_reasons.items():
            tally.failed_reasons[reason] = tally.failed_reasons.get(reason, 0) + count
        tally.failed += self.tally.failed

    def merged(self, result: RunResult) -> RunResult:
        """The run's result with this end's stop, refusal and failures added."""
        tally = result.tally
        self.add_failures(tally)
        return RunResult(tally, result.stop or self.stop, result.refusal or self.refusal,
                         result.elapsed)


class _Deletes:
    """File objects to delete, taken by a few workers as they come (never one twice)."""

    def __init__(self, leftovers: Leftovers, workers: int) -> None:
        self.leftovers = leftovers
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.seen: set[str] = set()
        self.most = max(1, workers)
        self.workers: list[asyncio.Task[None]] = []  # one more a delete, up to `most`

    def add(self, file_id: str) -> None:
        if file_id not in self.seen:
            self.seen.add(file_id)
            self.queue.put_nowait(file_id)
            if len(self.workers) < self.most:
                self.workers.append(asyncio.create_task(self._work()))

    async def close(self) -> None:
        for _ in self.workers:
            self.queue.put_nowait(None)
        await asyncio.gather(*self.workers)

    async def _work(self) -> None:
        leftovers = self.leftovers
        sender = leftovers.sender
        unsettled = leftovers.index.versions.deletes_unsettled
        settings = leftovers.settings
        while (file_id := await self.queue.get()) is not None:
            if leftovers.stop is not None:
                continue  # left for the next run, which finds it unused again
            sent_at = unsettled.get(file_id)
            if sent_at:  # an earlier run's delete, unsettled: its time must have come
                await sender.pause(sent_at + settings.timeout + settings.settle - time.time())
            try:
                await leftovers.deleter.delete(file_id, check_first=sent_at is not None)
            except RunRefused as refusal:
                leftovers.refusal = leftovers.refusal or refusal
                leftovers.halt("refused")
            except LogError as error:  # what the log says stays true: checked next run
                leftovers.log_error = leftovers.log_error or error
                leftovers.halt("log-write")

