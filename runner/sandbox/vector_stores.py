"""The vector-store routes of the sandbox: the store itself (retrieve), files (add, retrieve,
update, list, delete), file batches, the per-store write limit and file cap, and preloading a
store. The rules they follow are listed in docs/sandbox.md.

`VectorStoreRoutes` is mixed into `SandboxApi`, which serves these methods and owns the state
they use (declared below).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from aiohttp import web

from runner.sandbox import errors
from runner.sandbox.config import SandboxConfig
from runner.sandbox.errors import ApiError
from runner.sandbox.jsonio import json_response
from runner.sandbox.limits import TokenBucket, format_go_duration, retry_headers
from runner.sandbox.parsing import (
    MISSING,
    attributes_of,
    batch_entries_of,
    chunking_of,
    file_id_of,
    page_of,
    paginate_or_400,
    read_json_object,
)
from runner.sandbox.record import Record
from runner.sandbox.state import (
    VS_FILE_STATUSES,
    FileBatch,
    VectorStore,
    VectorStoreFile,
    decide_failure,
    decides_cancel,
    list_json,
)

PRELOAD_FILE_KEYS = frozenset(
    {"file_id", "attributes", "chunking_strategy", "status", "last_error"}
)
LAST_ERROR_CODES = ("server_error", "unsupported_file", "invalid_file")
VS_FILE_KEYS = frozenset({"file_id", "attributes", "chunking_strategy"})
UPDATE_KEYS = frozenset({"attributes"})
BATCH_KEYS = frozenset({"file_ids", "files", "attributes", "chunking_strategy"})
TERSE_NOT_FOUND = "Not found."


class PreloadEntry(NamedTuple):
    """One file to preload: its attributes and chunking as a file reports them; `status`
    None: ends as an added file would (see `decide_failure`), already processed."""

    file_id: str
    attributes: dict[str, Any]
    chunking_strategy: dict[str, Any]
    status: str | None
    last_error: dict[str, str] | None


def preload_entry(item: object, vector_store: bool) -> PreloadEntry:
    """A preload item checked: a file id, or (vector stores only) an object with `file_id`
    and optional `attributes`, `chunking_strategy` (checked as the API checks them),
    `status` (one of VS_FILE_STATUSES) and `last_error` (`{code, message}`, for `failed`
    only; default: code invalid_file). ValueError naming what is wrong."""
    if isinstance(item, str):
        item = {"file_id": item}
    if not isinstance(item, Mapping):
        raise ValueError(f"a preloaded file is a file id or an object, not {item!r}")
    file_id = item.get("file_id")
    if not isinstance(file_id, str) or not file_id:
        raise ValueError(f"file ids must be non-empty strings, not {file_id!r}")
    allowed = PRELOAD_FILE_KEYS if vector_store else frozenset({"file_id"})
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise ValueError(f"{file_id}: unknown preload field(s) {', '.join(unknown)}")
    try:
        attributes, chunking = attributes_of(item), chunking_of(item)
    except ApiError as exc:
        raise ValueError(f"{file_id}: {exc.message}") from exc
    status = item.get("status")
    if status is not None and status not in VS_FILE_STATUSES:
        raise ValueError(f"{file_id}: status must be one of {', '.join(VS_FILE_STATUSES)}")
    return PreloadEntry(file_id, attributes, chunking, status, _last_error(item, status))


def _last_error(item: Mapping[str, Any], status: str | None) -> dict[str, str] | None:
    error = item.get("last_error")
    file_id = item["file_id"]
    if error is None:
        if status != "failed":
            return None
        return {"code": "invalid_file", "message": f"The file {file_id} could not be parsed."}
    if status != "failed":
        raise ValueError(f"{file_id}: last_error needs status 'failed'")
    if (
        not isinstance(error, Mapping)
        or set(error) != {"code", "message"}
        or error["code"] not in LAST_ERROR_CODES
        or not isinstance(error["message"], str)
    ):
        raise ValueError(
            f"{file_id}: last_error must be {{code, message}}, code one of "
            f"{', '.join(LAST_ERROR_CODES)}"
        )
    return dict(error)


class VectorStoreRoutes:
    """The vector-store handlers; SandboxApi supplies the state below."""

    config: SandboxConfig
    record: Record
    stores: dict[str, VectorStore]
    _store_buckets: dict[str, TokenBucket]  # store id -> its bucket of writes (store_rpm)
    _batch_serial: int  # not reset: batch ids stay unique for the server's life
    check_attachable: Callable[[Iterable[str]], None]  # FileRoutes': 404 for a deleted file

    def preload_vs_file(self, store_id: str, entry: PreloadEntry, created_at: int) -> bool:
        """Put one file in the store as `entry` says; False if it was there already."""
        store = self.stores.get(store_id)
        if store is None:
            store = self.stores[store_id] = VectorStore(store_id, created_at)
        if entry.file_id in store.files:
            return False
        config, status = self.config, entry.status
        ready_at = float("-inf")  # processed long ago
        if status in (None, "in_progress"):
            error = decide_failure(config.seed, store_id, entry.file_id, config.vs_fail_rate)
            ends_cancelled = decides_cancel(entry.file_id)
            if status == "in_progress":
                ready_at = time.monotonic() + config.processing_ms / 1000
        else:
            error, ends_cancelled = entry.last_error, status == "cancelled"
        store.files[entry.file_id] = VectorStoreFile(
            entry.file_id,
            store_id,
            created_at=created_at,
            ready_at=ready_at,
            error=error,
            ends_cancelled=ends_cancelled,
            attributes=entry.attributes,
            chunking_strategy=entry.chunking_strategy,
        )
        return True

    def _store(self, request: web.Request, *, pair: bool = False) -> VectorStore:
        """The request's store, created empty on first use; 404 for a `missing` id (terse on
        a `pair` route with `terse_404`: see `pair_not_found`)."""
        store_id = request.match_info["vector_store_id"]
        if MISSING in store_id:
            message = f"No vector store found with id '{store_id}'."
            raise self.pair_not_found(message) if pair else errors.not_found(message)
        store = self.stores.get(store_id)
        if store is None:
            store = self.stores[store_id] = VectorStore(store_id, int(time.time()))
        return store

    def pair_not_found(self, message: str) -> ApiError:
        """The 404 of a pair's retrieve, update or delete. With `terse_404` it says only "Not
        found.", whether the file or its owner is missing, as an API that does not say which
        would: a client must then retrieve the owner to tell a file already gone from a store
        or assistant that is gone."""
        return errors.not_found(TERSE_NOT_FOUND if self.config.terse_404 else message)

    def _check_capacity(self, store: VectorStore, adding: int) -> None:
        """400 when `adding` new files would make the store hold more than `store_max_files`;
        files already in the store are not counted in `adding`, so re-adding one always
        passes. The live API caps files per store; this lets a client's handling of a full
        store be rehearsed at a size a test can reach."""
        limit = self.config.store_max_files
        if limit is not None and adding and len(store.files) + adding > limit:
            raise ApiError(
                400,
                f"Vector store '{store.id}' is full: it holds the maximum of {limit} files. "
                "Remove files before adding more.",
            )

    def _batch(self, request: web.Request) -> tuple[VectorStore, FileBatch]:
        store = self._store(request)
        batch_id = request.match_info["batch_id"]
        batch = store.batches.get(batch_id)
        if batch is None:
            raise errors.not_found(
                f"No file batch found with id '{batch_id}' in vector store '{store.id}'."
            )
        return store, batch

    def _new_vs_file(
        self,
        store: VectorStore,
        file_id: str,
        now: float,
        attributes: dict[str, Any],
        chunking_strategy: dict[str, Any],
        batch_id: str | None = None,
    ) -> VectorStoreFile:
        config = self.config
        file = VectorStoreFile(
            file_id,
            store.id,
            created_at=int(time.time()),
            ready_at=now + config.processing_ms / 1000,
            error=decide_failure(config.seed, store.id, file_id, config.vs_fail_rate),
            ends_cancelled=decides_cancel(file_id),
            batch_id=batch_id,
            attributes=attributes,
            chunking_strategy=chunking_strategy,
        )
        store.files[file_id] = file
        self.record.attached(store.id, file_id)
        return file

    def _take_store_token(self, store_id: str) -> None:
        rpm = self.config.store_rpm
        if rpm is None:
            return
        now = time.monotonic()
        bucket = self._store_buckets.get(store_id)
        if bucket is None:
            # Smooth: holds one second's worth, so requests must come evenly spaced.
            bucket = TokenBucket(rpm / 60, max(1.0, rpm / 60), now)
            self._store_buckets[store_id] = bucket
        wait = bucket.take(now)
        if wait:
            self.record.limited("store", store_id)
            headers = {
                **retry_headers(wait),
                "x-ratelimit-limit-requests": str(max(1, math.floor(rpm))),
                "x-ratelimit-remaining-requests": str(bucket.remaining(now)),
                "x-ratelimit-reset-requests": format_go_duration(bucket.time_to_full(now)),
            }
            raise errors.rate_limited(
                f"Rate limit reached for file attach requests on vector store {store_id}: "
                f"Limit {rpm:g} / min. Please try again in {format_go_duration(wait)}.",
                headers,
            )

    # -- the store --------------------------------------------------------------------------

    async def get_vector_store(self, request: web.Request) -> web.Response:
        store = self._store(request)
        return json_response(store.to_json(time.monotonic()))

    # -- vector store files -----------------------------------------------------------------

    async def attach_vs_file(self, request: web.Request) -> web.Response:
        store = self._store(request)
        self._take_store_token(store.id)
        body = await read_json_object(request, VS_FILE_KEYS)
        file_id = file_id_of(body)
        attributes, chunking = attributes_of(body), chunking_of(body)
        self.check_attachable((file_id,))
        now = time.monotonic()
        file = store.files.get(file_id)
        if file is not None and file.status(now) != "cancelled":
            self.record.posted_after_attached(store.id, file_id)
        else:
            # A cancelled file is replaced in place: it takes no more room.
            self._check_capacity(store, 0 if file is not None else 1)
            file = self._new_vs_file(store, file_id, now, attributes, chunking)
        store.last_active_at = int(time.time())
        return json_response(file.to_json(now))

    async def get_vs_file(self, request: web.Request) -> web.Response:
        store = self._store(request, pair=True)
        file_id = request.match_info["file_id"]
        file = store.files.get(file_id)
        if file is None:
            raise self.pair_not_found(
                f"No file found with id '{file_id}' in vector store '{store.id}'."
            )
        return json_response(file.to_json(time.monotonic()))

    async def list_vs_files(self, request: web.Request) -> web.Response:
        store = self._store(request)
        return self._file_list(store.files.values(), store, request)

    async def update_vs_file(self, request: web.Request) -> web.Response:
        store = self._store(request, pair=True)
        self._take_store_token(store.id)
        body = await read_json_object(request, UPDATE_KEYS)
        if "attributes" not in body:
            raise errors.missing_parameter("attributes")
        attributes = attributes_of(body)
        file_id = request.match_info["file_id"]
        file = store.files.get(file_id)
        self.record.updated(store.id, file_id, present=file is not None)
        if file is None:
            raise self.pair_not_found(
                f"No file found with id '{file_id}' in vector store '{store.id}'."
            )
        file.attributes = attributes  # the whole set is replaced; null clears it
        store.last_active_at = int(time.time())
        return json_response(file.to_json(time.monotonic()))

    async def delete_vs_file(self, request: web.Request) -> web.Response:
        store = self._store(request, pair=True)
        self._take_store_token(store.id)
        file_id = request.match_info["file_id"]
        present = store.files.pop(file_id, None) is not None
        self.record.detached(store.id, file_id, present)
        if not present:
            raise self.pair_not_found(
                f"No file found with id '{file_id}' in vector store '{store.id}'."
            )
        store.last_active_at = int(time.time())
        return json_response(
            {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}
        )

    def _file_list(
        self, files: Iterable[VectorStoreFile], store: VectorStore, request: web.Request
    ) -> web.Response:
        page = page_of(request.query)
        now = time.monotonic()
        wanted = request.query.get("filter")
        if wanted is not None:
            if wanted not in VS_FILE_STATUSES:
                raise errors.invalid_value("filter", wanted, VS_FILE_STATUSES)
            files = [file for file in files if file.status(now) == wanted]
        items, has_more = paginate_or_400(files, page, store.files)
        return json_response(list_json(items, has_more, now))

    # -- file batches -----------------------------------------------------------------------

    async def create_batch(self, request: web.Request) -> web.Response:
        store = self._store(request)
        self._take_store_token(store.id)
        body = await read_json_object(request, BATCH_KEYS)
        entries = batch_entries_of(body)
        # All or nothing, as for a `missing` id: one deleted file refuses the whole batch.
        self.check_attachable(entry.file_id for entry in entries)
        now = time.monotonic()
        file_ids = tuple(dict.fromkeys(entry.file_id for entry in entries))
        # All or nothing, as for a missing id: a batch that does not fit adds none of its files.
        self._check_capacity(store, sum(1 for file_id in file_ids if file_id not in store.files))
        self._batch_serial += 1
        batch = FileBatch(f"vsfb_{self._batch_serial:032x}", store.id, int(time.time()), file_ids)
        seen: set[str] = set()
        for file_id, attributes, chunking in entries:
            file = store.files.get(file_id)
            if file_id in seen or (file is not None and file.status(now) != "cancelled"):
                self.record.posted_after_attached(store.id, file_id)
            else:
                self._new_vs_file(store, file_id, now, attributes, chunking, batch_id=batch.id)
            seen.add(file_id)
        store.batches[batch.id] = batch
        store.last_active_at = int(time.time())
        return json_response(store.batch_to_json(batch, now))

    async def get_batch(self, request: web.Request) -> web.Response:
        store, batch = self._batch(request)
        return json_response(store.batch_to_json(batch, time.monotonic()))

    async def list_batch_files(self, request: web.Request) -> web.Response:
        store, batch = self._batch(request)
        return self._file_list(store.batch_files(batch), store, request)

    async def cancel_batch(self, request: web.Request) -> web.Response:
        store, batch = self._batch(request)
        now = time.monotonic()
        if not batch.cancelled:
            status = store.batch_to_json(batch, now)["status"]
            if status != "in_progress":
                raise ApiError(400, f"Cannot cancel file batch {batch.id}: its status is {status}.")
            for file in store.batch_files(batch):
                if file.batch_id == batch.id and file.status(now) == "in_progress":
                    file.cancelled = True
            batch.cancelled = True
        return json_response(store.batch_to_json(batch, now))
