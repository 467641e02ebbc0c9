"""The sandbox's admin side, for tests and the demo: its record (with the stores' content, the
file objects and the writes it holds), reset, live config, and preloading pairs (GET
/__sandbox/record, POST /__sandbox/reset, GET/POST /__sandbox/config, POST /__sandbox/preload;
docs/sandbox.md, "Its record, and the admin routes").

`AdminRoutes` is mixed into `SandboxApi`, which serves these methods and owns the state they
use (declared below).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from runner.sandbox.config import SandboxConfig
from runner.sandbox.errors import ApiError
from runner.sandbox.jsonio import json_response
from runner.sandbox.parsing import read_json_object
from runner.sandbox.record import Record
from runner.sandbox.state import AssistantFile, VectorStore
from runner.sandbox.vector_stores import PreloadEntry, preload_entry

ASSISTANT = "assistant"
VECTOR_STORE = "vector_store"
OWNER_KINDS = (ASSISTANT, VECTOR_STORE)
PRELOAD_KEYS = frozenset({"owner_kind", "owner", "file_ids", "files"})


class AdminRoutes:
    """The admin handlers; SandboxApi supplies the state and the steering below."""

    config: SandboxConfig
    record: Record
    stores: dict[str, VectorStore]
    held_writes: int
    update: Callable[[Mapping[str, Any]], None]  # SandboxApi's: change config fields live
    reset: Callable[[], None]  # SandboxApi's: forget every pair, batch and count
    _assistant: Callable[[str, int], dict[str, AssistantFile]]  # AssistantRoutes'
    preload_vs_file: Callable[[str, PreloadEntry, int], bool]  # VectorStoreRoutes'
    files_snapshot: Callable[[], dict[str, dict[str, Any]]]  # FileRoutes': the record's "files"

    def preload(
        self, owner_kind: str, owner: str, files: Sequence[str | Mapping[str, Any]]
    ) -> int:
        """Put pairs in place as if added an hour ago; they are marked `preloaded` in the
        record, not counted in `attached`. Each item is a file id, or for a vector store an
        object (see `preload_entry`: attributes, chunking_strategy, status, last_error); a
        pair already in place is left as it is. Returns how many pairs were new."""
        if owner_kind not in OWNER_KINDS:
            raise ValueError(
                f"owner_kind must be 'assistant' or 'vector_store', not {owner_kind!r}"
            )
        if not isinstance(owner, str) or not owner:
            raise ValueError(f"owner must be a non-empty string, not {owner!r}")
        if not isinstance(files, (list, tuple)):
            raise ValueError(f"file_ids must be a list of file ids, not {files!r}")
        entries = [preload_entry(item, owner_kind == VECTOR_STORE) for item in files]
        created_at = int(time.time()) - 3600
        added = 0
        for entry in entries:
            if owner_kind == ASSISTANT:
                held = self._assistant(owner, created_at)
                if entry.file_id in held:
                    continue
                held[entry.file_id] = AssistantFile(entry.file_id, owner, created_at)
            elif not self.preload_vs_file(owner, entry, created_at):
                continue
            self.record.preloaded(owner, entry.file_id)
            added += 1
        return added

    def snapshot(self) -> dict[str, Any]:
        """The record with the stores' current content (shape: runner.sandbox.record)."""
        now = time.monotonic()
        data = self.record.snapshot()
        data["held_writes"] = self.held_writes
        data["vector_store_files"] = {
            store_id: {file_id: file.state_json(now) for file_id, file in store.files.items()}
            for store_id, store in self.stores.items()
        }
        data["files"] = self.files_snapshot()
        return data

    async def admin_record(self, request: web.Request) -> web.Response:
        return json_response(self.snapshot())

    async def admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"reset": True})

    async def admin_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            changes = await read_json_object(request, None)
            try:
                self.update(changes)
            except (TypeError, ValueError) as exc:
                raise ApiError(400, str(exc)) from exc
        return json_response(self.config.to_dict())

    async def admin_preload(self, request: web.Request) -> web.Response:
        """Body: `owner_kind`, `owner`, and `file_ids` (ids) and/or `files` (objects)."""
        body = await read_json_object(request, PRELOAD_KEYS)
        files = body.get("file_ids", [])
        if "files" in body:
            if not isinstance(files, list) or not isinstance(body["files"], list):
                raise ApiError(400, "file_ids and files must be lists", param="files")
            files = files + body["files"]
        try:
            added = self.preload(body.get("owner_kind", ""), body.get("owner", ""), files)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, str(exc)) from exc
        return json_response({"preloaded": added})
