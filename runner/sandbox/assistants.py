"""The assistant routes of the sandbox (Assistants v1): the assistant itself (retrieve) and its
files (attach, retrieve, list, delete). The rules they follow are listed in docs/sandbox.md,
"Rules it follows".

`AssistantRoutes` is mixed into `SandboxApi`, which serves these methods and owns the state
they use (declared below).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from runner.sandbox import errors
from runner.sandbox.config import SandboxConfig
from runner.sandbox.errors import ApiError
from runner.sandbox.jsonio import json_response
from runner.sandbox.parsing import (
    MISSING,
    file_id_of,
    page_of,
    paginate_or_400,
    read_json_object,
)
from runner.sandbox.record import Record
from runner.sandbox.state import AssistantFile, assistant_json, list_json

ASSISTANT_FILE_KEYS = frozenset({"file_id"})


class AssistantRoutes:
    """The assistant handlers; SandboxApi supplies the state below."""

    config: SandboxConfig
    record: Record
    assistants: dict[str, dict[str, AssistantFile]]  # assistant id -> file id -> its file
    assistant_created_at: dict[str, int]
    pair_not_found: Callable[[str], ApiError]  # VectorStoreRoutes': the terse_404 rule

    def _assistant_files(
        self, request: web.Request, *, pair: bool = False
    ) -> tuple[str, dict[str, AssistantFile]]:
        """The request's assistant and its files, created empty on first use; 404 for a
        `missing` id (terse on a `pair` route with `terse_404`: see `pair_not_found`)."""
        assistant_id = request.match_info["assistant_id"]
        if MISSING in assistant_id:
            message = f"No assistant found with id '{assistant_id}'."
            raise self.pair_not_found(message) if pair else errors.not_found(message)
        return assistant_id, self._assistant(assistant_id, int(time.time()))

    def _assistant(self, assistant_id: str, created_at: int) -> dict[str, AssistantFile]:
        """The assistant's files; a new assistant is created at `created_at`."""
        files = self.assistants.get(assistant_id)
        if files is None:
            files = self.assistants[assistant_id] = {}
            self.assistant_created_at[assistant_id] = created_at
        return files

    # -- assistants -------------------------------------------------------------------------

    async def get_assistant(self, request: web.Request) -> web.Response:
        assistant_id, files = self._assistant_files(request)
        created_at = self.assistant_created_at[assistant_id]
        return json_response(assistant_json(assistant_id, created_at, files.values()))

    # -- assistant files --------------------------------------------------------------------

    async def attach_assistant_file(self, request: web.Request) -> web.Response:
        assistant_id, files = self._assistant_files(request)
        body = await read_json_object(request, ASSISTANT_FILE_KEYS)
        file_id = file_id_of(body)
        if file_id in files:
            self.record.posted_after_attached(assistant_id, file_id)
            raise ApiError(
                400, f"The file {file_id} is already attached to assistant {assistant_id}."
            )
        if len(files) >= self.config.max_assistant_files:
            raise ApiError(
                400,
                f"Assistant {assistant_id} has reached the maximum number of files "
                f"({self.config.max_assistant_files}).",
                param="file_id",
            )
        file = files[file_id] = AssistantFile(file_id, assistant_id, int(time.time()))
        self.record.attached(assistant_id, file_id)
        return json_response(file.to_json(0))

    async def get_assistant_file(self, request: web.Request) -> web.Response:
        assistant_id, files = self._assistant_files(request, pair=True)
        file_id = request.match_info["file_id"]
        file = files.get(file_id)
        if file is None:
            raise self.pair_not_found(
                f"No file found with id '{file_id}' on assistant '{assistant_id}'."
            )
        return json_response(file.to_json(0))

    async def list_assistant_files(self, request: web.Request) -> web.Response:
        _, files = self._assistant_files(request)
        page = page_of(request.query)
        items, has_more = paginate_or_400(files.values(), page, files)
        return json_response(list_json(items, has_more, 0))

    async def delete_assistant_file(self, request: web.Request) -> web.Response:
        assistant_id, files = self._assistant_files(request, pair=True)
        file_id = request.match_info["file_id"]
        present = files.pop(file_id, None) is not None
        self.record.detached(assistant_id, file_id, present)
        if not present:
            raise self.pair_not_found(
                f"No file found with id '{file_id}' on assistant '{assistant_id}'."
            )
        return json_response(
            {"id": file_id, "object": "assistant.file.deleted", "deleted": True}
        )
