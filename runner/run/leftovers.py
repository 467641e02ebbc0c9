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
import signal
import time
from collections.abc import Callable, Iterable

from runner.config import Settings
from runner.errors import LogError
from runner.items import Item
from runner.log.resume import ResumeIndex
from runner.log.writer import ResultLog
from runner.operations.detach import DetachVersion
from runner.operations.upload import Uploads
from runner.requests.outcomes import Outcome, RunRefused
from runner.requests.sender import Sender
from runner.run.engine import Engine
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

    def _left(self) -> float | None:
        runtime = self.settings.max_runtime
        if runtime is None:
            return None
        return max(0.001, runtime - (asyncio.get_running_loop().time() - self.started))

    async def finish(self, wanted: Callable[[str, str], bool] | None = None,
                     stores: Iterable[str] = ()) -> None:
        """Replace, then clean up. `wanted(store, file_id)`: a pair the manifest keeps (by
        default, one this run named); `stores`: the manifest's stores."""
        await self.replace(wanted)
        if self.stop is None and not self.settings.keep_files:
            await self.clean_up(stores, wanted)

    async def replace(self, wanted: Callable[[str, str], bool] | None = None) -> None:
        stale = self.index.stale_versions(wanted)
        if not stale:
            return
        items = [Item(old.store, old.file_id) for old in stale]
        index = self.index

        def count(item: Item, outcome: Outcome) -> None:
            index.note_done(item.owner, item.file_id, outcome.outcome,
                            retryable=outcome.retryable, uncertain=outcome.uncertain,
                            op=outcome.op)
            if outcome.outcome in ("detached", "already_detached"):
                self.counts.replaced += 1

        settings = self.settings
        engine = Engine(
            parts=lambda: iter(items), pairs=len(items), index=index, log=self.log,
            sender=self.sender, owner_column=self.owner_column,
            concurrency=settings.concurrency, batch_size=0, retry_failed=True,
            max_runtime=self._left(), operation=DetachVersion(self.sender),
            resume_due_in=max(0.0, self.due_in), on_outcome=count)
        engine.tally = self.tally
        self.engine = engine
        result = await engine.run()
        self.stop, self.refusal, self.log_error = result.stop, result.refusal, engine.log_error

    async def clean_up(self, stores: Iterable[str] = (),
                       wanted: Callable[[str, str], bool] | None = None) -> None:
        unused = self.index.unused_uploads(stores, wanted)
        if not unused:
            return
        deleter = self.deleter
        failed_before = len(deleter.counts.failed)
        unsettled = self.index.versions.deletes_unsettled
        settle_after = self.settings.timeout + self.settings.settle
        queue = iter(unused)
        loop = asyncio.get_running_loop()

        def stop(reason: str) -> None:
            if self.stop is None:
                self.stop = reason
            self.sender.halt()

        async def worker() -> None:
            for file_id in queue:
                if self.stop is not None:
                    return
                sent_at = unsettled.get(file_id)
                if sent_at:  # an earlier run's delete, unsettled: its time must have come
                    await self.sender.pause(sent_at + settle_after - time.time())
                try:
                    await deleter.delete(file_id, check_first=sent_at is not None)
                except RunRefused as refusal:
                    self.refusal = self.refusal or refusal
                    stop("refused")
                except LogError as error:  # what the log says stays true: checked next run
                    self.log_error = self.log_error or error
                    stop("log-write")

        installed = []
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
            loop.add_signal_handler(sig, stop, name)
            installed.append(sig)
        left = self._left()
        timer = loop.call_later(left, stop, "max-runtime") if left is not None else None
        try:
            workers = min(self.settings.concurrency, len(unused))
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            if timer is not None:
                timer.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
        for _, status, error in deleter.counts.failed[failed_before:]:
            self.tally.fail(status, error)

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
