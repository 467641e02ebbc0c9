"""What the sandbox holds: assistants and vector stores, their files, and file batches, as
OpenAI's JSON objects, and OpenAI's list pagination over them.

A vector store file is `in_progress` for `processing_ms` after it was added, then `completed`,
or `failed` / `cancelled` when its ending was decided so at creation (see `decide_failure`,
`decides_cancel`), or `cancelled` at once when its batch is cancelled. Status is computed when
read: no timers. Times: `created_at` is wall-clock Unix seconds (as the API
sends); `ready_at` is `time.monotonic()` seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

# The chunking a store applies when the request names none (or "auto"), as the API reports it.
DEFAULT_CHUNKING: dict[str, Any] = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
}
VS_FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")

SortKey = tuple[int, str]


class AssistantFile:
    __slots__ = ("id", "assistant_id", "created_at", "sort_key")

    def __init__(self, file_id: str, assistant_id: str, created_at: int) -> None:
        self.id = file_id
        self.assistant_id = assistant_id
        self.created_at = created_at
        self.sort_key: SortKey = (created_at, file_id)

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "assistant.file",
            "created_at": self.created_at,
            "assistant_id": self.assistant_id,
        }


class VectorStoreFile:
    __slots__ = (
        "id",
        "vector_store_id",
        "created_at",
        "sort_key",
        "ready_at",
        "error",
        "ends_cancelled",
        "cancelled",
        "batch_id",
        "attributes",
        "chunking_strategy",
    )

    def __init__(
        self,
        file_id: str,
        vector_store_id: str,
        *,
        created_at: int,
        ready_at: float,
        error: dict[str, str] | None,
        ends_cancelled: bool = False,
        batch_id: str | None = None,
        attributes: dict[str, Any] | None = None,
        chunking_strategy: dict[str, Any] | None = None,
    ) -> None:
        self.id = file_id
        self.vector_store_id = vector_store_id
        self.created_at = created_at
        self.sort_key: SortKey = (created_at, file_id)
        self.ready_at = ready_at  # monotonic time processing ends
        self.error = error  # the last_error it ends with; None: it completes (or is cancelled)
        self.ends_cancelled = ends_cancelled  # processing ends `cancelled`, not completed
        self.cancelled = False  # cancelled now (its batch was)
        self.batch_id = batch_id  # the batch that added it, if one did
        self.attributes = attributes or {}
        self.chunking_strategy = chunking_strategy or DEFAULT_CHUNKING

    def status(self, now: float) -> str:
        if self.cancelled:
            return "cancelled"
        if now < self.ready_at:
            return "in_progress"
        if self.error is not None:
            return "failed"
        return "cancelled" if self.ends_cancelled else "completed"

    def state_json(self, now: float) -> dict[str, Any]:
        """What the record shows of it (see record.py)."""
        status = self.status(now)
        return {
            "status": status,
            "attributes": self.attributes,
            "chunking_strategy": self.chunking_strategy,
            "last_error": self.error if status == "failed" else None,
        }

    def to_json(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        return {
            "id": self.id,
            "object": "vector_store.file",
            "usage_bytes": 0,
            "created_at": self.created_at,
            "vector_store_id": self.vector_store_id,
            "status": status,
            "last_error": self.error if status == "failed" else None,
            "chunking_strategy": self.chunking_strategy,
            "attributes": self.attributes,
        }


class FileBatch:
    __slots__ = ("id", "vector_store_id", "created_at", "file_ids", "cancelled")

    def __init__(
        self, batch_id: str, vector_store_id: str, created_at: int, file_ids: tuple[str, ...]
    ) -> None:
        self.id = batch_id
        self.vector_store_id = vector_store_id
        self.created_at = created_at
        self.file_ids = file_ids  # distinct, in request order
        self.cancelled = False


class VectorStore:
    __slots__ = ("id", "created_at", "last_active_at", "files", "batches")

    def __init__(self, store_id: str, created_at: int) -> None:
        self.id = store_id
        self.created_at = created_at
        # The last write applied to it (wall clock, as created_at); the API reports when a
        # store was last used, and a client comparing two retrieves can tell a write landed.
        self.last_active_at = created_at
        self.files: dict[str, VectorStoreFile] = {}
        self.batches: dict[str, FileBatch] = {}

    def to_json(self, now: float) -> dict[str, Any]:
        """The vector_store object. Stores are created implicitly (see docs/sandbox.md): no name,
        no expiry, always `completed`; `file_counts` are of the files in it now."""
        return {
            "id": self.id,
            "object": "vector_store",
            "created_at": self.created_at,
            "name": None,
            "usage_bytes": 0,  # as each of its files reports
            "file_counts": file_counts(self.files.values(), now),
            "status": "completed",
            "expires_after": None,
            "expires_at": None,
            "last_active_at": self.last_active_at,
            "metadata": {},
        }

    def batch_files(self, batch: FileBatch) -> list[VectorStoreFile]:
        """The batch's files still in the store (a file deleted since is left out)."""
        files = self.files
        return [files[file_id] for file_id in batch.file_ids if file_id in files]

    def batch_to_json(self, batch: FileBatch, now: float) -> dict[str, Any]:
        counts = file_counts(self.batch_files(batch), now)
        if batch.cancelled:
            status = "cancelled"
        elif counts["in_progress"]:
            status = "in_progress"
        else:
            # The API reports a batch whose files all left in_progress as completed, failed
            # files included: they are counted in file_counts.failed.
            status = "completed"
        return {
            "id": batch.id,
            "object": "vector_store.files_batch",
            "created_at": batch.created_at,
            "vector_store_id": batch.vector_store_id,
            "status": status,
            "file_counts": counts,
        }


def file_counts(files: Iterable[VectorStoreFile], now: float) -> dict[str, int]:
    """`file_counts` as stores and batches report them: files by status now, and the total."""
    counts = dict.fromkeys(VS_FILE_STATUSES, 0)
    for file in files:
        counts[file.status(now)] += 1
    counts["total"] = sum(counts.values())
    return counts


def assistant_json(
    assistant_id: str, created_at: int, files: Iterable[AssistantFile]
) -> dict[str, Any]:
    """The (v1) assistant object. Assistants are created implicitly (see docs/sandbox.md), so all
    but the id, the creation time and the files are the defaults of one made with a model
    alone; `file_ids` are in the order they were attached."""
    return {
        "id": assistant_id,
        "object": "assistant",
        "created_at": created_at,
        "name": None,
        "model": "gpt-4",
        "instructions": None,
        "tools": [],
        "file_ids": [file.id for file in files],
        "metadata": {},
    }


def decide_failure(
    seed: int, store_id: str, file_id: str, fail_rate: float
) -> dict[str, str] | None:
    """The `last_error` a newly added file will end with, None if it completes.

    Rule: a file id containing `fail` always fails; otherwise a fraction `fail_rate` of pairs
    fails, picked by a hash of (seed, store, file): the same pair fails on every run, in any
    order of requests.
    """
    if "fail" in file_id:
        return {
            "code": "invalid_file",
            "message": f"The file {file_id} could not be parsed: it has no text content.",
        }
    if fail_rate > 0:
        digest = hashlib.blake2b(f"{seed}/{store_id}/{file_id}".encode(), digest_size=8).digest()
        if int.from_bytes(digest, "big") / 2**64 < fail_rate:
            return {
                "code": "invalid_file",
                "message": f"The file {file_id} could not be processed.",
            }
    return None


def decides_cancel(file_id: str) -> bool:
    """Whether a newly added file will end `cancelled` (as if the API cancelled its processing):
    a file id containing `cancel` does, unless `decide_failure` fails it first."""
    return "cancel" in file_id


@dataclasses.dataclass(frozen=True)
class Page:
    """A list request's paging: `limit` 1..100 (the Files API's: 1..10,000), `order` asc|desc,
    cursors are object ids."""

    limit: int = 20
    order: str = "desc"
    after: str | None = None
    before: str | None = None


class _Sortable(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def sort_key(self) -> SortKey: ...


ItemT = TypeVar("ItemT", bound=_Sortable)


class CursorNotFound(Exception):
    """An `after`/`before` cursor that names no object of the collection."""

    def __init__(self, param: str, cursor: str) -> None:
        super().__init__(cursor)
        self.param = param
        self.cursor = cursor


def paginate(
    items: Iterable[ItemT], page: Page, collection: Mapping[str, ItemT]
) -> tuple[list[ItemT], bool]:
    """One page of `items` ordered by (created_at, id) and whether more follow, as OpenAI does:
    `after` gives the `limit` items following the cursor in the list's order, `before` the
    `limit` items preceding it (nearest the cursor); `has_more` says the list goes on beyond
    the page in the direction of travel. Cursors are looked up in `collection` (the whole
    store, not the filtered list), so a cursor whose status changed still works."""
    descending = page.order == "desc"
    ordered: Sequence[ItemT] = sorted(items, key=_sort_key, reverse=descending)
    if page.after is not None:
        mark = _cursor_key(collection, "after", page.after)
        ordered = [i for i in ordered if (i.sort_key < mark if descending else i.sort_key > mark)]
    if page.before is not None:
        mark = _cursor_key(collection, "before", page.before)
        ordered = [i for i in ordered if (i.sort_key > mark if descending else i.sort_key < mark)]
    has_more = len(ordered) > page.limit
    if page.before is not None and page.after is None:
        return list(ordered[-page.limit :]), has_more
    return list(ordered[: page.limit]), has_more


def _sort_key(item: _Sortable) -> SortKey:
    return item.sort_key


def _cursor_key(collection: Mapping[str, _Sortable], param: str, cursor: str) -> SortKey:
    item = collection.get(cursor)
    if item is None:
        raise CursorNotFound(param, cursor)
    return item.sort_key


def list_json(page_items: Sequence[Any], has_more: bool, now: float) -> dict[str, Any]:
    """OpenAI's list envelope around objects that have `to_json(now)`."""
    return {
        "object": "list",
        "data": [item.to_json(now) for item in page_items],
        "first_id": page_items[0].id if page_items else None,
        "last_id": page_items[-1].id if page_items else None,
        "has_more": has_more,
    }
