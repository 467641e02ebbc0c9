"""Uploads: what turns a path pair (a local file) into a (store, file_id) pair the attach
operation can send (SPEC "Local files": Identity, Upload, Exactly once).

A file's content is named by its SHA-256, read in one pass with a stat before and after that
must agree. One file object per distinct content: a content the log already uploaded (or
adopted) is reused, one being uploaded by another worker is waited for. An upload is logged
`upload-sent` before its request and `uploaded` after, and its outcome can be uncertain (the
body went out whole and the answer was lost, a 500/502/504, a killed run's `upload-sent`).
Such an upload is never repeated blind: once the settle rule allows, the files are listed
(newest first, back to the send time less five minutes by the server's clock) and an object
no line of the log claims, with the same filename and byte count, created since then, is
adopted. Where two unsettled uploads share a filename and size, or several objects match, none
is adopted (it cannot be proven ours): the content is uploaded again and the candidates are
reported as possible duplicates, never deleted.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from runner.items import Item, LocalFile
from runner.log.uploads import UploadIndex
from runner.log.writer import ResultLog
from runner.operations.file_delete import DeleteCounts, FileDeleter
from runner.operations.hashing import Hasher
from runner.requests.client import Answer, TransportError
from runner.requests.multipart import FileChanged, UploadBody, upload_filename
from runner.requests.outcomes import (
    NOT_SENT,
    UNCERTAIN_STATUSES,
    GaveUp,
    ItemState,
    NotSent,
    Outcome,
    RunRefused,
    Unsettled,
    refusal_kind,
)
from runner.requests.retry import MAX_RETRY_AFTER, Retry
from runner.requests.sender import Sender
from runner.requests.targets import ApiError, Verdict, api_error, classify_error

# SPEC: the listing pages back to the send time less this much (clocks and queues differ).
LISTING_SLACK_SECONDS = 300
LIST_LIMIT = 10_000
CHANGED = ApiError("changed_while_uploading",
                   "the file changed while it was read or uploaded; it is uploaded again on "
                   "the next run", None)


class UploadUnsettled(Exception):  # noqa: N818 - a state, handed to the engine
    """An upload of the pair's content is uncertain and not yet due for its check: park
    `item` (its content hashed) with `unsettled` until then (see outcomes.Unsettled)."""

    def __init__(self, item: Item, unsettled: Unsettled) -> None:
        super().__init__(str(unsettled))
        self.item = item
        self.unsettled = unsettled


@dataclass
class UploadCounts:
    uploaded: int = 0  # file objects this run made
    reused: int = 0  # contents found uploaded (this run or earlier): no upload
    adopted: int = 0  # uncertain uploads found by listing
    bytes: int = 0  # bytes of the contents uploaded
    seconds: float = 0.0  # time spent in upload requests (the rate's denominator, per worker)
    possible_duplicates: list[str] = field(default_factory=list)
    # Paths whose content changed since the log last read them (path -> the old file
    # object): the new content replaces the old version in its stores (run/leftovers.py).
    changed: dict[str, str] = field(default_factory=dict)
    replaced: int = 0  # old versions taken out of their stores (detach-version)
    deletes: DeleteCounts = field(default_factory=DeleteCounts)  # file objects of ours


@dataclass
class _Uncertain:
    """An upload of this run whose outcome is not known."""

    filename: str
    size: int
    sent_at: float  # epoch seconds, this machine's clock


class Uploads:
    def __init__(self, sender: Sender, index: UploadIndex, log: ResultLog, *,
                 timeout: float, deleter: FileDeleter) -> None:
        self.sender = sender
        self.index = index
        self.log = log
        self.deleter = deleter  # an upload of a file that changed meanwhile is deleted
        self.timeout = timeout
        self.counts = UploadCounts(deletes=deleter.counts)
        self._making: dict[str, asyncio.Future[str | None]] = {}  # sha256 -> its upload's id
        self._uncertain: dict[str, _Uncertain] = {}  # sha256 -> this run's uncertain upload
        self._contested: set[tuple[str, int]] = set()  # (filename, bytes) met as rivals
        self._clock_offset = 0.0  # the server's Date less this machine's clock, last seen
        self._date_seen: str | None = None  # the Date header that offset was read from
        # (bytes sent, bytes in all) of the uploads in flight: the progress bar shows them.
        self.sending = (0, 0)
        self._hasher = Hasher()

    def _sent_bytes(self, count: int) -> None:
        self.sending = (self.sending[0] + count, self.sending[1])

    def abandon(self) -> None:
        """The run stopped: pairs waiting for another's upload of their content stop waiting
        (they end failed, retryable; the next run picks them up)."""
        for future in self._making.values():
            if not future.done():
                future.set_result(None)
        self._making.clear()

    # --- the content of a path pair ------------------------------------------------------

    async def content(self, item: Item,
                      unsettled: Unsettled | None = None) -> tuple[Item, Outcome | None]:
        """The item, its content hashed, naming its content's file object (reused, adopted
        or uploaded); or with the failure that stopped it (the item as far as it got).
        Raises UploadUnsettled (park the item: an upload of its content is uncertain and
        not yet due for its check) or RunRefused."""
        local = item.local
        assert local is not None
        if not local.sha256:
            try:
                local = await self._hash(local)
            except FileChanged:
                return item, Outcome("failed", None, 0, CHANGED, retryable=True, op="upload")
            except OSError as exc:
                return item, Outcome("failed", None, 0, ApiError(
                    "unreadable", f"{local.path}: cannot be read ({exc.strerror})", None),
                    retryable=True, op="upload")
            item = item._replace(local=local)
            self._note_change(local)
        sha = local.sha256
        # A parked pair coming back to its check owns the content's making already.
        future = self._making.get(sha) if unsettled is not None else None
        while future is None:
            file_id = self.index.uploaded(sha)
            if file_id is not None:
                self.counts.reused += 1
                return item._replace(file_id=file_id), None
            making = self._making.get(sha)
            if making is None:
                future = self._making[sha] = asyncio.get_running_loop().create_future()
            elif await asyncio.shield(making) is None:
                return item, Outcome("failed", None, 0, ApiError(
                    "upload_failed", "the upload of the same content failed", None),
                    retryable=True, op="upload")
        try:
            made = await self._make(item, local, unsettled)
        except Unsettled as unknown:
            # Still being made (the pairs that wait for it go on waiting): the engine parks
            # the pair as hashed, so its check does not read the file again.
            raise UploadUnsettled(item, unknown) from None
        except BaseException:
            self._making.pop(sha, None)
            if not future.done():  # abandon() may have ended it
                future.set_result(None)
            raise
        self._making.pop(sha, None)
        if not future.done():
            future.set_result(None if isinstance(made, Outcome) else made)
        if isinstance(made, Outcome):
            return item, made
        return item._replace(file_id=made), None

    async def _hash(self, local: LocalFile) -> LocalFile:
        return await self._hasher.hash(local)

    def _note_change(self, local: LocalFile) -> None:
        """A path the log recorded with other content, uploaded by this log: changed."""
        old = self.index.changed_from(local)
        if old is not None:
            self.counts.changed.setdefault(local.path, old)

    async def _make(self, item: Item, local: LocalFile,
                    unsettled: Unsettled | None) -> str | Outcome:
        """The content's file object: adopted if an uncertain upload of it landed, else
        uploaded now."""
        sha = local.sha256
        filename = upload_filename(local.path)
        sent_at = self._uncertain_since(sha)
        if sent_at is not None:
            loop = asyncio.get_running_loop()
            due = loop.time() + (sent_at + self.timeout + self.sender.settle - time.time())
            if unsettled is None and due > loop.time():
                raise Unsettled(due, ItemState(uncertain=True), None, ApiError(
                    "upload_uncertain", "the upload's outcome is not known yet", None),
                    op="upload")
            found = await self._adopt(local, filename, sent_at)
            if isinstance(found, Outcome):
                return found
            if found is not None:
                return found
        # An upload sent again after its settle goes on counting the same tries: a server
        # that applies and then fails every upload cannot keep the pair going for ever.
        tries = unsettled.state if unsettled is not None else ItemState()
        tries.uncertain = False
        return await self._upload(item, local, filename, tries)

    def _uncertain_since(self, sha: str) -> float | None:
        mine = self._uncertain.get(sha)
        if mine is not None:
            return mine.sent_at
        logged = self.index.unsettled.get(sha)
        return None if logged is None else logged.sent_at

    # --- uploading -----------------------------------------------------------------------

    async def _upload(self, item: Item, local: LocalFile, filename: str,
                      tries: ItemState) -> str | Outcome:
        sender = self.sender
        retrying = sender.retrying(tries)
        try:
            async for attempt in retrying:
                with attempt:
                    if tries.sent:
                        sender.counters.retries += 1
                    return await self._upload_once(item, local, filename, tries)
        except Retry as exc:
            if not tries.uncertain:  # else its upload-sent stays open: the next run settles it
                self.log.append_upload_failed(local)
            return Outcome("failed", exc.status, tries.sent, exc.error, retryable=True,
                           uncertain=tries.uncertain, op="upload")
        raise AssertionError("unreachable: tenacity returns or re-raises")

    async def _upload_once(self, item: Item, local: LocalFile, filename: str,
                           tries: ItemState) -> str | Outcome:
        sender = self.sender
        tries.sent += 1
        tries.counted += 1
        body = UploadBody(local.path, local.size, filename, on_bytes=self._sent_bytes)
        started, sent_at = asyncio.get_running_loop().time(), time.time()
        self.sending = (self.sending[0], self.sending[1] + local.size)

        def sending() -> None:
            # `upload-sent` once the request's turn has come, each try: a wait for the rate
            # (a 429's pause, say) must not make the line older than the send, or the next
            # run's check of a killed upload (due at the line's time + --timeout + --settle)
            # could come before the late upload lands, and upload it twice.
            nonlocal sent_at
            self.log.append_upload_sent(local, filename)
            sent_at = time.time()

        try:
            answer = await sender.upload(body, before_send=sending)
        except NotSent:
            tries.sent -= 1
            tries.counted -= 1
            raise Retry(None, NOT_SENT) from None
        except FileChanged:
            self.log.append_upload_failed(local)
            return Outcome("failed", None, tries.sent, CHANGED, retryable=True, op="upload")
        except TransportError as exc:
            error = ApiError("connection_error", str(exc), None)
            if exc.sent:
                raise self._uncertain_now(local, filename, sent_at, tries, None, error) from None
            raise Retry(None, error) from None
        finally:
            self.counts.seconds += asyncio.get_running_loop().time() - started
            done, total = self.sending
            self.sending = (done - body.sent, total - local.size)
        self._note_clock(answer)
        refusal = None if 200 <= answer.status < 300 else api_error(
            answer.status, answer.body, answer.text)
        if tries.sent == 1 and sender.breaker.armed:
            # An upload's first answer counts toward the breaker as an attach's does (SPEC):
            # a wrong base URL refuses every upload the same way.
            verdict = (Verdict.ATTACHED if refusal is None
                       else classify_error(answer.status, refusal))
            if sender.breaker.observe(item, verdict, answer.status, refusal):
                sender.breaker_tripped = True
        if refusal is None:
            file_id = answer.body.get("id") if isinstance(answer.body, dict) else None
            if not isinstance(file_id, str) or not file_id:
                error = ApiError("bad_answer", "the upload's answer named no file id", None)
                raise self._uncertain_now(local, filename, sent_at, tries, answer.status, error)
            return await self._made(local, file_id)
        error = refusal
        verdict = classify_error(answer.status, error)
        if verdict is Verdict.RUN_REFUSED:
            raise RunRefused(refusal_kind(answer.status, error), answer.status, error)
        if verdict is Verdict.RETRY:
            if answer.status == 429:
                tries.counted -= 1
                tries.throttled += 1
                raise Retry(429, error, wait=0.0)
            if answer.status in UNCERTAIN_STATUSES:
                raise self._uncertain_now(local, filename, sent_at, tries, answer.status, error)
            wait = min(answer.retry_after, MAX_RETRY_AFTER) if answer.retry_after else None
            raise Retry(answer.status, error, wait=wait)
        self.log.append_upload_failed(local)
        return Outcome("failed", answer.status, tries.sent, error, retryable=False, op="upload")

    async def _made(self, local: LocalFile, file_id: str, *,
                    adopted: bool = False) -> str | Outcome:
        """A file object now holds the content. A file that changed since it was read is not
        attached: the object is deleted (it is ours) and the pair fails, retryable."""
        self.index.claimed.add(file_id)
        try:
            info = os.stat(local.path)
            changed = (info.st_size, info.st_mtime_ns) != (local.size, local.mtime_ns)
        except OSError:
            changed = True
        if changed and not adopted:
            self.log.append_uploaded(local, file_id)
            await self.deleter.delete(file_id)
            return Outcome("failed", None, 1, CHANGED, retryable=True, op="upload")
        self.log.append_uploaded(local, file_id, adopted=adopted)
        self.index.file_of[local.sha256] = file_id
        self.index.unsettled.pop(local.sha256, None)
        self._uncertain.pop(local.sha256, None)
        if adopted:
            self.counts.adopted += 1
        else:
            self.counts.uploaded += 1
            self.counts.bytes += local.size
        return file_id

    def _uncertain_now(self, local: LocalFile, filename: str, sent_at: float, tries: ItemState,
                       status: int | None, error: ApiError) -> Unsettled | Retry:
        """The upload may have made a file object: check it by listing after --settle."""
        self._uncertain[local.sha256] = _Uncertain(filename, local.size, sent_at)
        found = self.sender.unsettled(tries, status, error)
        if isinstance(found, Unsettled):
            found.op = "upload"
        return found

    # --- settling an uncertain upload ------------------------------------------------------

    async def _adopt(self, local: LocalFile, filename: str,
                     sent_at: float) -> str | Outcome | None:
        """Settle an uncertain upload of this content: the object it made (adopted), None
        when it made none (or none can be proven ours: upload again), or the failure to
        list (the upload stays uncertain for the next run)."""
        since = sent_at + self._clock_offset - LISTING_SLACK_SECONDS
        try:
            listed = await self._list_since(since)
        except GaveUp as exc:
            return Outcome("failed", exc.status, 0, ApiError(
                "check_failed", "could not list the files to settle an uncertain upload",
                None), retryable=True, uncertain=True, op="upload")
        claimed = self.index.claimed
        matches = [obj["id"] for obj in listed
                   if obj.get("filename") == filename and obj.get("bytes") == local.size
                   and isinstance(obj.get("created_at"), (int, float))
                   and obj["created_at"] >= since and obj["id"] not in claimed
                   and obj["id"] not in self.index.unadoptable]
        group = (filename, local.size)
        if self._has_rival(local.sha256, group):
            self._contested.add(group)
        if len(matches) == 1 and group not in self._contested:
            return await self._made(local, matches[0], adopted=True)
        if matches:
            self._contested.add(group)
            self.counts.possible_duplicates.extend(matches)
            self.index.unadoptable.update(matches)
            self.log.append("possible-duplicates", path=local.path, sha256=local.sha256,
                            file_ids=matches)
        # Settled: the content is uploaded again (a new upload-sent line follows).
        self.index.unsettled.pop(local.sha256, None)
        self._uncertain.pop(local.sha256, None)
        return None

    def _has_rival(self, sha: str, group: tuple[str, int]) -> bool:
        """Whether another unsettled upload (this run's or the log's) has the same filename
        and size but another content: either could be the object found."""
        rivals = [(u.filename, u.size) for s, u in self._uncertain.items() if s != sha]
        rivals += [(u.filename, u.size) for s, u in self.index.unsettled.items() if s != sha]
        return group in rivals

    async def _list_since(self, since: float) -> list[dict[str, Any]]:
        """The file objects created since `since` (server clock), newest first."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            query = {"purpose": "assistants", "order": "desc", "limit": LIST_LIMIT}
            if after is not None:
                query["after"] = after
            answer = await self.sender.request_retrying("GET", "/files?" + urlencode(query),
                                                        kind="list")
            if not 200 <= answer.status < 300 or not isinstance(answer.body, dict):
                error = api_error(answer.status, answer.body, answer.text)
                raise GaveUp(answer.status, error, uncertain=False)
            self._note_clock(answer)
            page = [obj for obj in answer.body.get("data") or [] if isinstance(obj, dict)
                    and isinstance(obj.get("id"), str)]
            found.extend(page)
            oldest = page[-1].get("created_at") if page else None
            if (not page or not answer.body.get("has_more")
                    or (isinstance(oldest, (int, float)) and oldest < since)):
                return found
            after = page[-1]["id"]

    def _note_clock(self, answer: Answer) -> None:
        """The server's clock, from an answer's Date header: the listing's bound is on it."""
        if answer.date is None or answer.date == self._date_seen:
            return  # one second's resolution: parsed once a second at most
        self._date_seen = answer.date
        try:
            server = email.utils.parsedate_to_datetime(answer.date).timestamp()
        except (TypeError, ValueError):
            return
        self._clock_offset = server - time.time()
