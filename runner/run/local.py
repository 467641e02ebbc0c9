"""Path pairs in a run (SPEC "Local files"): each file's content hashed, reused or uploaded
(operations/upload.py), then the pair it now names planned and attached like any other.

Uploaded files are attached in file batches, one store at a time (`--batch-size`, or
UPLOAD_BATCH_SIZE when it is 0): a store takes 300 writes a minute, so 2,000 documents attached
one request each would wait minutes for their store after their uploads were done, where a
batch is one write (the SDK's upload_and_poll batches too). A store's group is created once it
is full, and the rest once no upload is left to add to them (nothing hashing or uploading,
nothing parked for a check, and the manifest read to its end). Paths of one content in one
store are one pair: the second waits for the first's end and is recorded already attached,
with no request of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from runner.items import Item, pair_key
from runner.log.lines import IN_PLACE
from runner.log.resume import ResumeIndex
from runner.log.states import Plan
from runner.operations.upload import Uploads, UploadUnsettled
from runner.requests.outcomes import NOT_SENT, Outcome, RunRefused, Unsettled
from runner.requests.targets import ApiError
from runner.run.tally import Tally
from runner.run.work import count_duplicate

UPLOAD_BATCH_SIZE = 500
# A store's group goes out once it has waited this long for its first pair, full or not: its
# pairs (and, under sync, the replaces of their old versions, which start once the new version
# is in place) need not wait for the last upload of a long run. One more store write a few
# seconds; a store takes 300 a minute.
GROUP_SECONDS = 5.0


@dataclasses.dataclass
class PairActions:
    """What the engine does for a path pair once its content is known."""

    record: Callable[[Item, Outcome], None]  # write its `done` and count it
    record_in_place: Callable[[Item], None]  # in place per the log: a `done` for the path
    attach: Callable[[Item, Plan], Awaitable[None]]  # one pair, the usual way
    park: Callable[[Item, Unsettled, float], None]  # wait for a check (settle rule)
    create_batch: Callable[[str, list[Item]], Awaitable[None]] | None  # None: no batches


class LocalPairs:
    def __init__(self, uploads: Uploads, index: ResumeIndex, tally: Tally,
                 actions: PairActions, *, batch_size: int, retry_failed: bool) -> None:
        self.uploads = uploads
        self.index = index
        self.tally = tally
        self.actions = actions
        self.batch_size = batch_size or UPLOAD_BATCH_SIZE
        self.retry_failed = retry_failed
        # Pairs being attached this run, by pair key: a second path of the same content in
        # the same store waits for the first's end.
        self._attaching: dict[int, tuple[Item, asyncio.Future[Outcome]]] = {}
        self._groups: dict[str, list[Item]] = {}  # store -> uploaded pairs for its next batch
        self._group_since: dict[str, float] = {}  # store -> when its group's first pair came
        self._active = 0  # pairs hashing or uploading now
        self._parked = 0  # pairs waiting for the check of an uncertain upload
        self._manifest_read = False

    # --- one pair -------------------------------------------------------------------------

    async def start(self, item: Item, unsettled: Unsettled | None) -> None:
        """A path pair whose content is not known uploaded (or is back from its check)."""
        if unsettled is not None:
            self._parked -= 1
        self._active += 1
        try:
            found, failure = await self.uploads.content(item, unsettled)
        except UploadUnsettled as again:
            self._parked += 1
            self.actions.park(again.item, again.unsettled, again.unsettled.due)
            return
        except RunRefused as refusal:
            self.actions.record(item, Outcome("failed", refusal.status, 1, refusal.error,
                                              retryable=True, op="upload"))
            raise
        finally:
            self._active -= 1
        if failure is not None:
            self.actions.record(found, failure)  # its line records the content read, if it was
        else:
            await self._attach(found)
        await self._flush_when_idle()

    async def _attach(self, found: Item) -> None:
        key = pair_key(found.owner, found.file_id)
        attaching = self._attaching.get(key)
        if attaching is not None:  # the same content at another path, in the same store
            first, end_of_first = attaching
            if _settings(first) != _settings(found):
                # One file object in a store has one set of attributes: two paths of one
                # content that want two would trade places at every run.
                # Recorded by its path (file_id ""), not on the pair the first one holds.
                self.actions.record(found._replace(file_id=""), Outcome("failed", None, 0, ApiError(
                    "same_content_other_options",
                    f"holds the same content as {first.local.path if first.local else '?'} "
                    f"(line {first.line}), which the store keeps once, with other attributes "
                    "or chunking; give both the same, or leave one out", None)))
                return
            await self._flush_when_idle()  # a batch it waits for may be this worker's to send
            end = await asyncio.shield(end_of_first)
            self.actions.record(found, Outcome("already_attached", None, 0)
                                if end.outcome in IN_PLACE
                                else dataclasses.replace(end, attempts=0))
            return
        plan, raw = self.index.plan(found, retry_failed=self.retry_failed)
        if plan is Plan.DONE:
            # In place per the log (a file read again: racy, or touched but not changed):
            # its line records the path's content as read now, so the next run trusts it.
            self.actions.record_in_place(found)
            self.tally.done_earlier += 1
            return
        if plan is Plan.DUPLICATE:
            # No line: its `done` would record this row's options on the pair the other
            # row's line holds.
            count_duplicate(self.index, self.tally, found, raw)
            return
        if plan is Plan.SKIP_REFUSED:
            self.tally.refused_earlier += 1
            return
        self._attaching[key] = (found, asyncio.get_running_loop().create_future())
        if plan is Plan.SEND and self.actions.create_batch is not None:
            now = asyncio.get_running_loop().time()
            group = self._groups.setdefault(found.owner, [])
            if not group:
                self._group_since[found.owner] = now
            group.append(found)
            if (len(group) >= self.batch_size
                    or now - self._group_since[found.owner] >= GROUP_SECONDS):
                del self._groups[found.owner]
                await self.actions.create_batch(found.owner, group)
            return
        await self.actions.attach(found, Plan.CHECK if plan is Plan.FOLLOW else plan)

    def ended(self, item: Item, outcome: Outcome) -> None:
        """A pair's `done` was written: pairs waiting for it go on."""
        if self._attaching:
            attaching = self._attaching.get(pair_key(item.owner, item.file_id))
            if attaching is not None and not attaching[1].done():
                attaching[1].set_result(outcome)

    # --- the batches' ends ------------------------------------------------------------------

    async def manifest_read(self) -> None:
        """The manifest has no more pairs: the groups wait only for the uploads under way."""
        self._manifest_read = True
        await self._flush_when_idle()

    async def _flush_when_idle(self) -> None:
        """Send the groups once nothing can add to them any more."""
        create_batch = self.actions.create_batch
        while (self._groups and self._manifest_read and not self._active
               and not self._parked and create_batch is not None):
            # All at once: each waits for its own store's turn (300 writes a minute), not
            # behind another store's queue.
            groups, self._groups = self._groups, {}
            ends = await asyncio.gather(*(create_batch(store, group)
                                          for store, group in groups.items()),
                                        return_exceptions=True)
            for end in ends:
                if isinstance(end, BaseException):
                    raise end

    def release(self) -> None:
        """The run stops: pairs waiting for another's upload or attach stop waiting (they
        end failed and retryable; the next run picks them up)."""
        self.uploads.abandon()
        for _, future in self._attaching.values():
            if not future.done():
                future.set_result(Outcome("failed", None, 0, NOT_SENT, retryable=True))

    def drop_groups(self) -> None:
        """The run stopped: grouped pairs never sent end failed and retryable."""
        groups, self._groups = self._groups, {}
        for group in groups.values():
            for item in group:
                self.actions.record(item, Outcome("failed", None, 0, NOT_SENT, retryable=True))


def _settings(item: Item) -> tuple[int | None, object]:
    """What a pair asks of its file in the store: its managed attributes (their digest) and
    its chunking strategy."""
    options = item.options
    if options is None:
        return None, None
    return options.digest_value(), options.chunking_strategy
