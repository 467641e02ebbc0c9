"""Uploads: what turns a path pair (a local file) into a (store, file_id) pair the attach
operation can send (SPEC "Local files": Identity, Upload, Exactly once).

A file's content is named by its SHA-256, read in one pass with a stat before and after that
must agree. One file object per distinct content: a content the log already uploaded (or
adopted) is reused, one being uploaded by another worker is waited for. A large file
(LARGE_CONTENT_BYTES) whose size no content known to the log or to this run shares cannot be
one of them (only a content of its size can be reused), so it is hashed as it uploads, one
read, not two, and its upload starts at once ("streamed": requests/multipart.py); a pair of
the same size that comes meanwhile waits for that upload's end before it looks for reuse.

An upload is logged `upload-sent` before its request (a streamed one: once its file part is
read, before the body's closing boundary) and `uploaded` after, and its outcome can be
uncertain (the body went out whole and the answer was lost, a 500/502/504, a killed run's
`upload-sent`). Such an upload is never repeated blind: it is settled by listing the files
once the settle rule allows (upload_settle.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.items import Item, LocalFile
from runner.log.uploads import LARGE_CONTENT_BYTES, UploadIndex
from runner.log.writer import ResultLog
from runner.operations.file_delete import DeleteCounts, FileDeleter
from runner.operations.hashing import Hasher
from runner.operations.upload_settle import UncertainUploads
from runner.requests.client import TransportError
from runner.requests.multipart import FileChanged, FileRead, UploadBody, upload_filename
from runner.requests.outcomes import (
    NOT_SENT,
    UNCERTAIN_STATUSES,
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
class _Read:
    """The content an upload sends, as far as known: hashed before (sha256 set), or hashed
    as it goes (a streamed upload: set once its body's file part is read)."""

    local: LocalFile
    # A streamed upload's content known, before its upload-sent: claim its making.
    on_known: Callable[[LocalFile], None] | None = None


@dataclass
class _Stream:
    """A streamed upload under way: pairs of its size wait for `ended`."""

    ended: asyncio.Future[None]
    making: asyncio.Future[str | None] | None = None  # its content's, once known


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
        self.uncertain = UncertainUploads(sender, index, log, self.counts.possible_duplicates)
        self._streams: dict[int, _Stream] = {}  # size -> the streamed upload of that size
        self._large: Counter[int] = Counter()  # sizes of the large pairs hashing or uploading
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
        for stream in self._streams.values():
            if not stream.ended.done():
                stream.ended.set_result(None)

    # --- the content of a path pair ------------------------------------------------------

    async def content(self, item: Item,
                      unsettled: Unsettled | None = None) -> tuple[Item, Outcome | None]:
        """The item, its content hashed, naming its content's file object (reused, adopted
        or uploaded); or with the failure that stopped it (the item as far as it got).
        Raises UploadUnsettled (park the item: an upload of its content is uncertain and
        not yet due for its check) or RunRefused."""
        local = item.local
        assert local is not None
        large = local.size >= LARGE_CONTENT_BYTES
        if large and not local.sha256 and unsettled is None and self._may_stream(local.size):
            return await self._streamed(item, local)
        if large:
            self._large[local.size] += 1
        try:
            return await self._content(item, local, unsettled)
        finally:
            if large:
                self._large[local.size] -= 1

    async def _content(self, item: Item, local: LocalFile,
                       unsettled: Unsettled | None) -> tuple[Item, Outcome | None]:
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
        while (stream := self._streams.get(local.size)) is not None:
            await asyncio.shield(stream.ended)  # it may be this content: see it end first
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
            self._made_or_not(sha, future, None)
            raise
        self._made_or_not(sha, future, made)
        return _named(item, made)

    def _made_or_not(self, sha: str, future: asyncio.Future[str | None],
                     made: str | Outcome | None) -> None:
        """The making of a content ended: the pairs that wait for it go on."""
        self._making.pop(sha, None)
        if not future.done():  # abandon() may have ended it
            future.set_result(made if isinstance(made, str) else None)

    def _may_stream(self, size: int) -> bool:
        """A large file may be hashed as it uploads when no content of its size can be known
        before its upload ends: none the log uploaded or sent, none of this run uncertain,
        no other pair of that size hashing or uploading."""
        return (size not in self.index.large_sizes and not self._large[size]
                and size not in self._streams
                and not self.uncertain.has_size(size))

    async def _streamed(self, item: Item, local: LocalFile) -> tuple[Item, Outcome | None]:
        """Upload a large file hashed as it goes (one read). Its content's making is claimed
        once its bytes are read (pairs of the same content wait for it from then on)."""
        loop = asyncio.get_running_loop()
        stream = self._streams[local.size] = _Stream(loop.create_future())

        def known(read: LocalFile) -> None:
            if read.sha256 not in self._making:
                stream.making = self._making[read.sha256] = loop.create_future()

        read = _Read(local, known)
        try:
            made = await self._upload(item, read, upload_filename(local.path), ItemState())
        except Unsettled as unknown:  # only a whole body is uncertain: its content is known
            raise UploadUnsettled(item._replace(local=read.local), unknown) from None
        except BaseException:
            if stream.making is not None:
                self._made_or_not(read.local.sha256, stream.making, None)
            raise
        finally:
            del self._streams[local.size]
            if not stream.ended.done():
                stream.ended.set_result(None)
        item = item._replace(local=read.local)
        if read.local.sha256:
            self._note_change(read.local)
        if stream.making is not None:
            self._made_or_not(read.local.sha256, stream.making, made)
        return _named(item, made)

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
        sent_at = self.uncertain.sent_at(sha)
        if sent_at is not None:
            loop = asyncio.get_running_loop()
            due = loop.time() + (sent_at + self.timeout + self.sender.settle - time.time())
            if unsettled is None and due > loop.time():
                raise Unsettled(due, ItemState(uncertain=True), None, ApiError(
                    "upload_uncertain", "the upload's outcome is not known yet", None),
                    op="upload")
            found = await self.uncertain.find(local, filename, sent_at)
            if isinstance(found, str):
                return await self._made(local, found, adopted=True)
            if found is not None:
                return found
        # An upload sent again after its settle goes on counting the same tries: a server
        # that applies and then fails every upload cannot keep the pair going for ever.
        tries = unsettled.state if unsettled is not None else ItemState()
        tries.uncertain = False
        return await self._upload(item, _Read(local), filename, tries)

    # --- uploading -----------------------------------------------------------------------

    async def _upload(self, item: Item, read: _Read, filename: str,
                      tries: ItemState) -> str | Outcome:
        sender = self.sender

        async def attempt(_: bool) -> str | Outcome:
            if tries.sent:  # a try after one that never left (the run halted) is no retry
                sender.counters.retries += 1
            return await self._upload_once(item, read, filename, tries)

        try:
            return await sender.tried(tries, attempt)
        except Retry as exc:
            # An uncertain one's upload-sent stays open: the next run settles it. A streamed
            # upload cut off before its content was known wrote none.
            if not tries.uncertain and read.local.sha256:
                self.log.append_upload_failed(read.local)
            return Outcome("failed", exc.status, tries.sent, exc.error, retryable=True,
                           uncertain=tries.uncertain, op="upload")

    async def _upload_once(self, item: Item, read: _Read, filename: str,
                           tries: ItemState) -> str | Outcome:
        sender = self.sender
        tries.sent += 1
        tries.counted += 1
        local = read.local
        streamed = not local.sha256  # hashed as it goes (its content known at the end)
        started, sent_at = asyncio.get_running_loop().time(), time.time()
        self.sending = (self.sending[0], self.sending[1] + local.size)

        def sending() -> None:
            # `upload-sent` once the request's turn has come, each try: a wait for the rate
            # (a 429's pause, say) must not make the line older than the send, or the next
            # run's check of a killed upload (due at the line's time + --timeout + --settle)
            # could come before the late upload lands, and upload it twice.
            nonlocal sent_at
            self.log.append_upload_sent(read.local, filename)
            sent_at = time.time()

        def file_read(found: FileRead) -> None:
            # A streamed body read whole, before its closing boundary: no object yet.
            read.local = LocalFile(local.path, found.size, found.mtime_ns, found.sha256,
                                   found.hashed_ns)
            if read.on_known is not None:
                read.on_known(read.local)
            sending()

        body = UploadBody(local.path, local.size, filename, on_bytes=self._sent_bytes,
                          on_file_read=file_read if streamed else None)
        try:
            answer = await sender.upload(body, before_send=None if streamed else sending)
        except NotSent:
            tries.sent -= 1
            tries.counted -= 1
            raise Retry(None, NOT_SENT) from None
        except FileChanged:
            if not streamed:  # a streamed body stops before its content is known: no line
                self.log.append_upload_failed(local)
            return Outcome("failed", None, tries.sent, CHANGED, retryable=True, op="upload")
        except TransportError as exc:
            error = ApiError("connection_error", str(exc), None)
            if exc.sent:  # the body went out whole: a streamed one's content is known
                raise self._uncertain_now(read.local, filename, sent_at, tries, None,
                                          error) from None
            raise Retry(None, error) from None
        finally:
            self.counts.seconds += asyncio.get_running_loop().time() - started
            done, total = self.sending
            self.sending = (done - body.sent, total - local.size)
        local = read.local
        self.uncertain.note_clock(answer)
        refusal = None if 200 <= answer.status < 300 else api_error(
            answer.status, answer.body, answer.text)
        # An answer before a streamed body's end (a server that refuses early): no object,
        # no upload-sent line to close.
        whole = bool(local.sha256)
        if tries.sent == 1 and sender.breaker.armed:
            # An upload's first answer counts toward the breaker as an attach's does (SPEC):
            # a wrong base URL refuses every upload the same way.
            verdict = (Verdict.ATTACHED if refusal is None
                       else classify_error(answer.status, refusal))
            if sender.breaker.observe(item, verdict, answer.status, refusal):
                sender.breaker_tripped = True
        if refusal is None:
            file_id = answer.body.get("id") if isinstance(answer.body, dict) else None
            if not whole:  # a 2xx before the body's end made nothing: send it again
                raise Retry(answer.status, ApiError(
                    "bad_answer", "the upload was answered before its body's end", None))
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
            if answer.status in UNCERTAIN_STATUSES and whole:
                raise self._uncertain_now(local, filename, sent_at, tries, answer.status, error)
            wait = min(answer.retry_after, MAX_RETRY_AFTER) if answer.retry_after else None
            raise Retry(answer.status, error, wait=wait)
        if whole:
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
        self.index.holds(local.sha256, file_id, local.size)
        self.uncertain.settled(local.sha256)
        if adopted:
            self.counts.adopted += 1
        else:
            self.counts.uploaded += 1
            self.counts.bytes += local.size
        return file_id

    def _uncertain_now(self, local: LocalFile, filename: str, sent_at: float, tries: ItemState,
                       status: int | None, error: ApiError) -> Unsettled | Retry:
        """The upload may have made a file object: check it by listing after --settle."""
        self.uncertain.add(local, filename, sent_at)
        found = self.sender.unsettled(tries, status, error)
        if isinstance(found, Unsettled):
            found.op = "upload"
        return found


def _named(item: Item, made: str | Outcome) -> tuple[Item, Outcome | None]:
    """The pair naming the file object its content was made as, or with why it was not."""
    if isinstance(made, Outcome):
        return item, made
    return item._replace(file_id=made), None
