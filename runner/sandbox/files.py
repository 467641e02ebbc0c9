"""The Files API of the sandbox: uploads (`POST /files`), list, retrieve and delete, the file
objects behind them, and what the record shows of them. The rules they follow are listed in
docs/sandbox.md ("Files").

An upload is received (streamed and hashed: uploads.py) and then applied (the file object is
made); the two are apart so that a write held by a late_apply fault can take its body while
its client is still connected and be applied seconds later (handlers.py). Deleting a file
object takes it out of every vector store that holds it, as the live API does.

`FileRoutes` is mixed into `SandboxApi`, which serves these methods and owns the state they
use (declared below).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from runner.sandbox import errors
from runner.sandbox.config import SandboxConfig
from runner.sandbox.errors import ApiError
from runner.sandbox.jsonio import json_response
from runner.sandbox.limits import TokenBucket, format_go_duration, retry_headers
from runner.sandbox.parsing import page_of, paginate_or_400
from runner.sandbox.record import Record
from runner.sandbox.state import SortKey, VectorStore, list_json
from runner.sandbox.uploads import Pace, Upload, receive_upload

FILES = "files"  # the routes' target (RouteInfo.target): the OpenAI-Beta header is not theirs
MAX_FILE_LIST_LIMIT = 10_000  # and the default, as openai-python documents `limit`
BATCH_EXPIRES_SECONDS = 30 * 24 * 3600  # a `batch` file expires after 30 days by default
# A marker in an upload's filename that is carried into its id, so that the file ends as an id
# holding it does in a vector store (`decide_failure`, `decides_cancel` in state.py).
ENDING_MARKERS = ("fail", "cancel")


class FileObject:
    """One uploaded file. Kept after its delete (the record shows it), never listed again."""

    __slots__ = (
        "id",
        "filename",
        "bytes",
        "sha256",
        "purpose",
        "created_at",
        "expires_at",
        "sort_key",
        "deleted",
        "stores_when_deleted",
    )

    def __init__(self, file_id: str, serial: int, upload: Upload, created_at: int) -> None:
        self.id = file_id
        self.filename = upload.filename
        self.bytes = upload.size
        self.sha256 = upload.sha256
        self.purpose = upload.purpose
        self.created_at = created_at  # wall-clock seconds, the clock of the `Date` header
        expires_after = upload.expires_after
        if expires_after is None and upload.purpose == "batch":
            expires_after = BATCH_EXPIRES_SECONDS
        self.expires_at = None if expires_after is None else created_at + expires_after
        # Creation order breaks ties within a second (ids need not sort as they were made):
        # paging with `after` is exact however many files share a created_at.
        self.sort_key: SortKey = (created_at, f"{serial:016x}")
        self.deleted = False
        self.stores_when_deleted: list[str] = []  # the stores it was taken out of

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": self.expires_at,
            "status_details": None,
        }

    def record_json(self, stores: list[str]) -> dict[str, Any]:
        """What the record shows of it (see record.py); `stores`: the stores holding it now."""
        return {
            "filename": self.filename,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "purpose": self.purpose,
            "created_at": self.created_at,
            "deleted": self.deleted,
            "stores": stores,
            "stores_when_deleted": self.stores_when_deleted,
        }


class FileRoutes:
    """The Files API handlers; SandboxApi supplies the state below."""

    config: SandboxConfig
    record: Record
    stores: dict[str, VectorStore]
    files: dict[str, FileObject]  # file id -> its object, deleted ones included
    _file_serial: int  # not reset: file ids stay unique for the server's life
    _upload_bucket: TokenBucket | None  # the bucket of `upload_rpm`, made on first use

    def take_upload_token(self) -> None:
        """Take a token of the uploads' own bucket (`upload_rpm`), else raise its 429. Called
        where the requests bucket is taken, before the body is read: the live API's limits
        answer before a body is looked at. Only uploads take from it, so an empty bucket
        slows uploads and nothing else."""
        rpm = self.config.upload_rpm
        if rpm is None:
            return
        now = time.monotonic()
        bucket = self._upload_bucket
        if bucket is None:
            # Smooth, as a store's: one second's worth, so uploads must come evenly spaced.
            bucket = self._upload_bucket = TokenBucket(rpm / 60, max(1.0, rpm / 60), now)
        wait = bucket.take(now)
        if wait:
            self.record.limited("uploads")
            limit = max(1, math.floor(rpm))
            headers = {
                **retry_headers(wait),
                "x-ratelimit-limit-requests": str(limit),
                "x-ratelimit-remaining-requests": str(bucket.remaining(now)),
                "x-ratelimit-reset-requests": format_go_duration(bucket.time_to_full(now)),
            }
            # Worded as the requests bucket's 429 (handlers.py), the resource named `files`.
            raise errors.rate_limited(
                "Rate limit reached for files in organization org-sandbox on requests per min "
                f"(RPM): Limit {limit}, Used {limit}, Requested 1. Please try again in "
                f"{format_go_duration(wait)}. Visit https://platform.openai.com/account/"
                "rate-limits to learn more.",
                headers,
            )

    async def take_upload(self, request: web.Request) -> Upload | ApiError:
        """Read the upload's whole body now; a refusal is returned, to be answered when the
        upload is applied (after the hold of a late_apply fault, as a JSON write's would)."""
        try:
            return await receive_upload(request, self.config.file_max_bytes, Pace(
                self.config.upload_bytes_per_s, self.record.upload_reading))
        except ApiError as error:
            return error

    async def received_handler(
        self, request: web.Request
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The upload route's handler with its body already read: what a held upload runs."""
        return functools.partial(self.apply_upload, await self.take_upload(request))

    async def create_file(self, request: web.Request) -> web.Response:
        return await self.apply_upload(await self.take_upload(request), request)

    async def apply_upload(self, upload: Upload | ApiError, request: web.Request) -> web.Response:
        """Make the file object (or answer the refusal) and answer it."""
        if isinstance(upload, ApiError):
            raise upload
        self._file_serial += 1
        serial = self._file_serial
        lowered = upload.filename.lower()
        marker = next((word for word in ENDING_MARKERS if word in lowered), "")
        file = FileObject(f"file-{marker}{serial:024x}", serial, upload, int(time.time()))
        self.files[file.id] = file
        self.record.upload_applied()
        return json_response(file.to_json(time.monotonic()))

    async def list_files(self, request: web.Request) -> web.Response:
        """Newest first by default; `purpose` filters (any value: one no file has lists none);
        `before` is not a parameter of this list (openai-python has none) and is ignored."""
        query = request.query
        page = page_of(query, default_limit=MAX_FILE_LIST_LIMIT, max_limit=MAX_FILE_LIST_LIMIT)
        purpose = query.get("purpose")
        items = [
            file
            for file in self.files.values()
            if not file.deleted and (purpose is None or file.purpose == purpose)
        ]
        # The whole collection for the cursor: an `after` naming a file deleted since still
        # places the page, so a client paging while files go keeps its place.
        found, has_more = paginate_or_400(items, dataclasses.replace(page, before=None), self.files)
        return json_response(list_json(found, has_more, time.monotonic()))

    async def get_file(self, request: web.Request) -> web.Response:
        return json_response(self._file(request).to_json(time.monotonic()))

    async def delete_file(self, request: web.Request) -> web.Response:
        """Delete the file object and take it out of every vector store holding it."""
        file_id = request.match_info["file_id"]
        try:
            file = self._file(request)
        except ApiError:
            self.record.file_delete(applied=False)
            raise
        file.deleted = True
        now = int(time.time())
        for store in self.stores.values():
            if store.files.pop(file_id, None) is not None:
                file.stores_when_deleted.append(store.id)
                # The store's content changed: a client comparing retrieves can tell.
                store.last_active_at = now
        self.record.file_delete(applied=True)
        return json_response({"id": file_id, "object": "file", "deleted": True})

    def _file(self, request: web.Request) -> FileObject:
        file_id = request.match_info["file_id"]
        file = self.files.get(file_id)
        if file is None or file.deleted:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return file

    def check_attachable(self, file_ids: Iterable[str]) -> None:
        """404 for the id of a deleted file object, as for a `missing` one: the attach routes
        take any other id (uploaded here or not), as they did before the Files API."""
        for file_id in file_ids:
            file = self.files.get(file_id)
            if file is not None and file.deleted:
                raise errors.not_found(f"No file found with id '{file_id}'.")

    def files_snapshot(self) -> dict[str, dict[str, Any]]:
        """The record's "files": every file object uploaded, with the stores holding it now."""
        files = self.files
        holders: dict[str, list[str]] = {file_id: [] for file_id in files}
        for store_id, store in self.stores.items():
            for file_id in store.files:
                held = holders.get(file_id)
                if held is not None:
                    held.append(store_id)
        return {file_id: file.record_json(holders[file_id]) for file_id, file in files.items()}
