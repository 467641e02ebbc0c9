"""Vector store file batches: one `file_batches` POST for up to 2,000 files, then each file still
gets its own `done` line.

Log order makes a crash safe at any instant:
    batch-sent     before the POST: a crash now leaves each file uncertain (checked next run)
    batch-created  after the answer, with the batch id: a crash now is resumed by following
                   this batch, never by creating it again
    done x N       one per file

With --wait the batch is polled (GET the batch, 1 s doubling to 10 s) until it leaves
`in_progress`; its `file_counts` say whether any file ended `failed` or `cancelled`, and only
then are those listed (`GET .../files?filter=failed`, 100 a page) to name them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType
from typing import Any

from runner.items import Item
from runner.log.writer import ResultLog
from runner.operations.attach import POLL_FIRST, POLL_MAX, Adder
from runner.requests.outcomes import NOT_SENT, GaveUp, ItemState, Outcome, RunRefused, Unsettled
from runner.requests.targets import Judgement, VectorStoreFiles, judge_vector_store_file

LIST_PAGE = 100  # the API's largest page
ENDED_BADLY = ("failed", "cancelled")  # file statuses that make a file's outcome `failed`


# A listed file that holds what its pair's options want (see BatchRunner._listed).
AS_WANTED: Mapping[str, Any] = MappingProxyType({})


class BatchRunner:
    def __init__(self, adder: Adder, log: ResultLog, owner_column: str,
                 record: Callable[[Item, Outcome], None],
                 park: Callable[[Item, Unsettled, float], None]) -> None:
        self.adder = adder
        self.sender = adder.sender
        self.log = log
        self.owner_column = owner_column
        self.record = record
        self.park = park

    @property
    def target(self) -> VectorStoreFiles:
        target = self.sender.target
        assert isinstance(target, VectorStoreFiles), "batches exist only for vector stores"
        return target

    async def create(self, store: str, items: list[Item]) -> None:
        """Create a batch for `items` (one store) and see it through."""
        target = self.target
        file_ids = [i.file_id for i in items]
        self.log.append_batch_sent(self.owner_column, store, file_ids)
        self.sender.counters.attach_requests += 1
        try:
            answer = await self.sender.request_retrying(
                "POST", target.batch_path(store), target.batch_body(items), store=store)
        except GaveUp as exc:
            if exc.uncertain:
                # The batch may exist, or come to exist seconds from now: settle each file
                # by a check once --settle has passed, never by a blind resend.
                due = asyncio.get_running_loop().time() + self.sender.settle
                for item in items:
                    state = ItemState(sent=1, counted=1, uncertain=True)
                    self.park(item, Unsettled(due, state, exc.status, exc.error), due)
            else:
                for item in items:
                    self.record(item, Outcome("failed", exc.status, 1, exc.error, retryable=True))
            return
        except RunRefused as refusal:
            for item in items:
                self.record(item, Outcome("failed", refusal.status, 1, refusal.error,
                                          retryable=True))
            raise
        body: Any = answer.body
        batch_id = body.get("id") if isinstance(body, dict) else None
        if not 200 <= answer.status < 300:
            # Refused as a whole (one missing file sinks a batch): nothing was applied, so
            # send the files one by one; the good ones attach, the bad one is named.
            await self._singles(items, uncertain=False)
            return
        if not isinstance(batch_id, str):
            # Applied, but the answer does not say as what: settle each file by a check.
            await self._singles(items, uncertain=True)
            return
        self.log.append_batch_created(self.owner_column, store, batch_id, file_ids)
        await self._finish(store, batch_id, items, answer.status, body)

    async def follow(self, store: str, batch_id: str, items: list[Item]) -> None:
        """Resume a batch an earlier run created but did not see through."""
        await self._finish(store, batch_id, items, 200, None)

    async def _singles(self, items: list[Item], *, uncertain: bool) -> None:
        """One attach (after a check, when `uncertain`) per file, until the run stops."""
        sender = self.sender
        for n, item in enumerate(items):
            if sender.halted or sender.breaker_tripped:
                self._not_sent(items[n:], uncertain=uncertain)
                return
            try:
                outcome = await self.adder.attach(item, uncertain=uncertain)
            except Unsettled as unsettled:
                self.park(item, unsettled, unsettled.due)
                continue
            except RunRefused as refusal:
                self.record(item, Outcome("failed", refusal.status, 1, refusal.error,
                                          retryable=True, uncertain=uncertain))
                self._not_sent(items[n + 1:], uncertain=uncertain)
                raise
            self.record(item, outcome)

    def _not_sent(self, items: list[Item], *, uncertain: bool) -> None:
        # Retryable, so the next run sends them; uncertain when the batch may have been applied.
        for item in items:
            self.record(item, Outcome("failed", None, 0, NOT_SENT, retryable=True,
                                      uncertain=uncertain))

    async def _finish(self, store: str, batch_id: str, items: list[Item], status: int,
                      body: Any) -> None:
        """Without --wait a created batch is attached; with it, poll until it leaves
        in_progress and fail the files that ended failed or cancelled."""
        if not self.sender.wait:
            file_status = body.get("status") if isinstance(body, dict) else None
            await self._record_in_place(
                store, batch_id, items,
                lambda item: Outcome("attached", status, 1, file_status=file_status))
            return
        batch: Mapping[str, Any] | None = body if isinstance(body, dict) else None
        if batch is None or batch.get("status") == "in_progress":
            batch = await self._poll(store, batch_id, batch)
        ends = await self._endings(store, batch_id, batch)
        if ends is None:
            # The batch cannot be read (gone, or no answer): each file is settled by a check.
            await self._singles(items, uncertain=True)
            return
        in_place: list[Item] = []
        for item in items:
            judgement = ends.get(item.file_id)
            if judgement is None or judgement.file_status == "in_progress":
                in_place.append(item)
            else:
                # SPEC: a file that ends `failed` is not retryable; one `cancelled` is.
                self.record(item, Outcome("failed", status, 1, judgement.error,
                                          retryable=judgement.file_status == "cancelled",
                                          file_status=judgement.file_status))

        def ending(item: Item) -> Outcome:
            judgement = ends.get(item.file_id)
            if judgement is None:
                return Outcome("attached", status, 1, file_status="completed")
            self.sender.counters.still_in_progress += 1
            return Outcome("attached", status, 1, file_status="in_progress")

        await self._record_in_place(store, batch_id, in_place, ending)

    async def _record_in_place(self, store: str, batch_id: str, items: list[Item],
                               ending: Callable[[Item], Outcome]) -> None:
        """Record the files a batch put in place. Files with per-file options are compared
        first with what the batch's file list shows (SPEC: a file the store already held
        keeps its old attributes): those that differ get one update each."""
        managed = {item.file_id: item for item in items if item.options is not None}
        shown = await self._listed(store, batch_id, managed) if managed else {}
        for item in items:
            if item.options is None:
                self.record(item, ending(item))
                continue
            obj = shown.get(item.file_id) if shown is not None else None
            if obj is AS_WANTED:
                self.record(item, ending(item))
                continue
            try:
                if obj is None:
                    # Not in the list (or the list cannot be read): look at the file itself.
                    outcome = await self.adder.confirm(item)
                else:
                    outcome = await self.adder.updater.converge_listed(item, obj, ending(item))
            except Unsettled as unsettled:  # an update whose outcome is unknown
                self.park(item, unsettled, unsettled.due)
                continue
            self.record(item, outcome)

    async def _listed(self, store: str, batch_id: str, managed: Mapping[str, Item],
                      ) -> dict[str, Mapping[str, Any]] | None:
        """The file objects of a batch's pairs with options, by file id: AS_WANTED for each
        that already holds what the manifest gives (only the others are kept whole, so a
        batch's read-back costs its pages, not 500 objects held), None if a page cannot be
        read."""
        found: dict[str, Mapping[str, Any]] = {}
        async for page in self._pages(store, batch_id, None):
            if page is None:
                return None
            self._compare(page, managed, found)
            del page  # not held while the next page is awaited (see _pages)
        return found

    def _compare(self, page: list[Mapping[str, Any]], managed: Mapping[str, Item],
                 found: dict[str, Mapping[str, Any]]) -> None:
        """One page of a batch's file list compared with its pairs, into `found` (nothing of
        the page outlives the call but the objects that differ)."""
        objs = [obj for obj in page if obj["id"] in managed]
        items = [managed[obj["id"]] for obj in objs]
        wanted = self.adder.updater.as_wanted(items, objs)
        for item, obj, alike in zip(items, objs, wanted, strict=True):
            found[item.file_id] = AS_WANTED if alike else obj

    async def _poll(self, store: str, batch_id: str, last: Mapping[str, Any] | None,
                    ) -> Mapping[str, Any] | None:
        """GET the batch (1 s doubling to 10 s; at once when `last` is None) until it leaves
        in_progress or --wait-timeout runs out; the last batch object seen, None when the
        batch cannot be read (not found, say)."""
        sender = self.sender
        loop = asyncio.get_running_loop()
        deadline = loop.time() + sender.wait_timeout
        interval = POLL_FIRST
        path = f"{self.target.batch_path(store)}/{batch_id}"
        sleep_first = last is not None
        while True:
            if sleep_first:
                remaining = deadline - loop.time()
                if remaining <= 0 or sender.halted:
                    return last
                await asyncio.sleep(min(interval, remaining))
                interval = min(POLL_MAX, interval * 2)
            sleep_first = True
            sender.counters.polls += 1
            try:
                answer = await sender.request_retrying("GET", path, kind="poll")
            except GaveUp:
                continue  # a poll is harmless to repeat
            body: Any = answer.body
            if answer.status != 200 or not isinstance(body, dict):
                return None
            last = body
            if body.get("status") != "in_progress":
                return last

    async def _endings(self, store: str, batch_id: str, batch: Mapping[str, Any] | None,
                       ) -> dict[str, Judgement] | None:
        """The batch's files that did not (yet) complete: id -> judgement (failed, cancelled,
        and in_progress when the wait ran out). Only the statuses `file_counts` reports are
        listed. None when a list cannot be read."""
        if batch is None:
            return None
        counts = batch.get("file_counts")
        statuses = list(ENDED_BADLY)
        if batch.get("status") == "in_progress":
            statuses.append("in_progress")
        if isinstance(counts, Mapping):
            statuses = [s for s in statuses if counts.get(s) != 0]
        ends: dict[str, Judgement] = {}
        for file_status in statuses:
            listed = await self._files_with(store, batch_id, file_status)
            if listed is None:
                return None
            ends.update(listed)
        return ends

    async def _files_with(self, store: str, batch_id: str, file_status: str,
                          ) -> dict[str, Judgement] | None:
        """The batch's files in one status, page by page (None if a page cannot be read)."""
        found: dict[str, Judgement] = {}
        async for page in self._pages(store, batch_id, file_status):
            if page is None:
                return None
            for obj in page:
                found[obj["id"]] = judge_vector_store_file(obj, wait=True)
        return found

    async def _pages(self, store: str, batch_id: str, file_status: str | None,
                     ) -> AsyncIterator[list[Mapping[str, Any]] | None]:
        """The batch's file objects (in one status, or all), a page at a time; a final None
        when a page cannot be read."""
        base = f"{self.target.batch_path(store)}/{batch_id}/files"
        after: str | None = None
        while True:
            query = f"?filter={file_status}&" if file_status is not None else "?"
            query += f"limit={LIST_PAGE}&order=asc"
            if after:
                query += f"&after={after}"
            self.sender.counters.polls += 1
            try:
                answer = await self.sender.request_retrying("GET", base + query, kind="poll")
            except GaveUp:
                yield None
                return
            body: Any = answer.body
            data = body.get("data") if isinstance(body, dict) else None
            if answer.status != 200 or not isinstance(data, list):
                yield None
                return
            yield [obj for obj in data if isinstance(obj, dict) and isinstance(obj.get("id"), str)]
            # The SDK's cursor: the last object's id, while the list says it has more.
            last = data[-1].get("id") if data and isinstance(data[-1], dict) else None
            if not body.get("has_more") or not isinstance(last, str):
                return
            after = last
            # Not held while the next page is awaited: 64 batches reading back at once held
            # a parsed page each (~200 KB of objects), a fifth of the run's peak memory.
            del answer, body, data
