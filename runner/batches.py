"""Vector store file batches: one `file_batches` POST for up to 2,000 files, then each file still
gets its own `done` line.

Log order makes a crash safe at any instant:
    batch-sent     before the POST: a crash now leaves each file uncertain (checked next run)
    batch-created  after the answer, with the batch id: a crash now is resumed by following
                   this batch, never by creating it again
    done x N       one per file
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from runner.attempt import POLL_FIRST, POLL_MAX, Attempter, GaveUp, Outcome, RunRefused
from runner.client import TransportError
from runner.items import Item
from runner.log import ResultLog
from runner.targets import ApiError, VectorStoreFiles, api_error

LIST_PAGE = 100  # the API's largest page


class BatchRunner:
    def __init__(self, attempter: Attempter, log: ResultLog, owner_column: str,
                 record: Callable[[Item, Outcome], None]) -> None:
        self.attempter = attempter
        self.log = log
        self.owner_column = owner_column
        self.record = record

    @property
    def target(self) -> VectorStoreFiles:
        target = self.attempter.target
        assert isinstance(target, VectorStoreFiles), "batches exist only for vector stores"
        return target

    async def create(self, store: str, items: list[Item]) -> None:
        """Create a batch for `items` (one store) and see it through."""
        target = self.target
        file_ids = [i.file_id for i in items]
        self.log.append("batch-sent", **{self.owner_column: store, "file_ids": file_ids})
        self.attempter.counters.attach_requests += 1
        try:
            answer = await self.attempter.request_retrying(
                "POST", target.batch_path(store), target.batch_body(file_ids), store=store)
        except GaveUp as exc:
            if exc.uncertain:
                # The batch may exist: settle each file by a check, never by a blind resend.
                await self._singles(items, uncertain=True)
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
        if not 200 <= answer.status < 300 or not isinstance(batch_id, str):
            # Refused as a whole (one bad file can sink a batch): find which, one by one.
            await self._singles(items, uncertain=False)
            return
        self.log.append("batch-created", **{self.owner_column: store, "batch_id": batch_id,
                                            "file_ids": file_ids})
        await self._finish(store, batch_id, items, answer.status, body)

    async def follow(self, store: str, batch_id: str, items: list[Item]) -> None:
        """Resume a batch an earlier run created but did not see through."""
        await self._finish(store, batch_id, items, 200, None)

    async def _singles(self, items: list[Item], *, uncertain: bool) -> None:
        for item in items:
            outcome = await self.attempter.attach(item, uncertain=uncertain)
            self.record(item, outcome)

    async def _finish(self, store: str, batch_id: str, items: list[Item], status: int,
                      body: Any) -> None:
        """Without --wait a created batch is attached; with it, poll until it leaves
        in_progress and fail the files the batch reports failed or cancelled."""
        attempter = self.attempter
        if not attempter.wait:
            for item in items:
                self.record(item, Outcome("attached", status, 1, file_status="in_progress"))
            return
        batch_status = body.get("status") if isinstance(body, dict) else None
        if batch_status != "in_progress" or body is None:
            batch_status = await self._poll(store, batch_id, first=body is not None)
        ended: dict[str, tuple[str, ApiError]] = {}
        if batch_status != "in_progress":
            for file_status in ("failed", "cancelled"):
                ended.update(await self._files_with(store, batch_id, file_status))
        else:
            attempter.counters.still_in_progress += len(items)
        for item in items:
            end = ended.get(item.file_id)
            if end is None:
                done_status = "in_progress" if batch_status == "in_progress" else "completed"
                self.record(item, Outcome("attached", status, 1, file_status=done_status))
            else:
                file_status, error = end
                self.record(item, Outcome("failed", status, 1, error,
                                          retryable=file_status == "cancelled",
                                          file_status=file_status))

    async def _poll(self, store: str, batch_id: str, *, first: bool) -> str | None:
        """GET the batch (1 s doubling to 10 s) until it leaves in_progress or time runs out."""
        attempter = self.attempter
        loop = asyncio.get_running_loop()
        deadline = loop.time() + attempter.wait_timeout
        interval = POLL_FIRST
        path = f"{self.target.batch_path(store)}/{batch_id}"
        status: str | None = "in_progress"
        while True:
            if first:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return status
                await asyncio.sleep(min(interval, remaining))
                interval = min(POLL_MAX, interval * 2)
            first = True
            attempter.counters.polls += 1
            try:
                answer = await attempter.request_retrying("GET", path, kind="poll")
            except GaveUp:
                continue
            body: Any = answer.body
            if answer.status == 200 and isinstance(body, dict):
                status = body.get("status") if isinstance(body.get("status"), str) else None
                if status != "in_progress":
                    return status

    async def _files_with(self, store: str, batch_id: str, file_status: str,
                          ) -> dict[str, tuple[str, ApiError]]:
        """The batch's files in one status, page by page: id -> (status, error)."""
        found: dict[str, tuple[str, ApiError]] = {}
        base = f"{self.target.batch_path(store)}/{batch_id}/files"
        after: str | None = None
        while True:
            query = f"?filter={file_status}&limit={LIST_PAGE}&order=asc"
            if after:
                query += f"&after={after}"
            try:
                answer = await self.attempter.request_retrying("GET", base + query, kind="poll")
            except (GaveUp, TransportError):
                return found
            body: Any = answer.body
            if answer.status != 200 or not isinstance(body, dict):
                return found
            data = body.get("data") or []
            for obj in data:
                if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                    found[obj["id"]] = (file_status, _file_error(obj, file_status))
            last = body.get("last_id")
            if not body.get("has_more") or not isinstance(last, str) or not data:
                return found
            after = last


def _file_error(obj: dict[str, Any], file_status: str) -> ApiError:
    last = obj.get("last_error")
    if isinstance(last, dict):
        return ApiError("file_" + file_status, str(last.get("message") or file_status),
                        str(last["code"]) if last.get("code") else None)
    return api_error(200, None, f"the file ended {file_status}")
