"""Targets: what the engine sends for an item and what an answer means.

The engine knows nothing of one endpoint. A `Target` names the manifest's owner column, the
attach and check requests, and turns an HTTP answer into a `Verdict`:

    attach answer            check answer (GET the pair)
    200 -> ATTACHED          200 -> ATTACHED (or IN_PROGRESS / FILE_FAILED with --wait)
    "already" 400/409        404 -> ABSENT (send it)
        -> ALREADY_ATTACHED
    408 409 429 5xx -> RETRY (429 insufficient_quota -> RUN_REFUSED)
    401, 400 invalid_beta -> RUN_REFUSED
    other 4xx -> REFUSED (this item only)
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from runner.items import Item

# Retried statuses besides every 5xx (a proxy's 520/524 are as transient as a 502).
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})

# "The file file-x is already attached to assistant asst_y", "... already in the vector store",
# "File already exists in vector store": all mean the pair is in place.
ALREADY_PATTERN = re.compile(r"already (attached|added|in|exists)|already been added", re.I)


# OpenAI object IDs inside error messages ("No file found with id 'file-abc'."): replaced by
# <id> so that one cause is one reason, not one reason per file.
_OBJECT_ID = re.compile(
    r"(?<![A-Za-z0-9_-])(?:file|asst|vs|vsfb|batch|thread|run|msg|org|proj|user)[-_]"
    r"[A-Za-z0-9_-]+")


def generic_message(message: str) -> str:
    return _OBJECT_ID.sub("<id>", message)


class Verdict(enum.Enum):
    ATTACHED = "attached"
    ALREADY_ATTACHED = "already_attached"
    IN_PROGRESS = "in_progress"  # vector store file still processing (only matters with --wait)
    FILE_FAILED = "file_failed"  # vector store file ended failed/cancelled (only with --wait)
    ABSENT = "absent"  # a check found no such pair: send it
    RETRY = "retry"
    REFUSED = "refused"  # the API refused this item; never retried without --retry-failed
    RUN_REFUSED = "run_refused"  # the API refused the whole run: stop


@dataclass(frozen=True, slots=True)
class ApiError:
    type: str | None
    message: str
    code: str | None

    def as_log(self) -> dict[str, str | None]:
        return {"type": self.type, "message": self.message, "code": self.code}


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    error: ApiError | None = None
    file_status: str | None = None  # vector store file status, when the answer carried one
    obj: Mapping[str, Any] | None = None  # the vector store file object the answer carried


class Reply(Protocol):
    """An HTTP answer (client.Answer): the body is parsed only when asked for, so a 2xx that
    needs no body (an assistant file) is judged by its status alone."""

    @property
    def status(self) -> int: ...
    @property
    def body(self) -> Any: ...
    @property
    def text(self) -> str: ...


def api_error(status: int, body: Any, text: str) -> ApiError:
    """OpenAI's error envelope, or a stand-in for a body that is not one (an HTML 502)."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            message = err.get("message")
            etype, code = err.get("type"), err.get("code")
            return ApiError(
                type=etype if isinstance(etype, str) else None,
                message=message if isinstance(message, str) else f"HTTP {status}",
                code=code if isinstance(code, str) else None,
            )
    snippet = " ".join(text.split())[:120]
    return ApiError(type="http_error", message=f"HTTP {status}: {snippet}" if snippet else
                    f"HTTP {status} with an empty body", code=None)


def is_quota(error: ApiError) -> bool:
    """The account's quota is used up (a 429 that no wait cures: the run is refused)."""
    return "insufficient_quota" in (error.code, error.type)


def refuses_for_good(status: int | None) -> bool:
    """Whether a failure with this HTTP status is the API refusing the item for good, so a
    rerun skips it unless --retry-failed: any answer below 500 but the retryable 408, 409 and
    429 (a 2xx here is a file whose processing failed). None (no answer at all) never is."""
    return status is not None and status < 500 and status not in RETRYABLE_STATUSES


def classify_error(status: int, error: ApiError) -> Verdict:
    """Shared rules for a non-2xx answer to any request."""
    if status == 401:
        return Verdict.RUN_REFUSED
    if status == 429 and is_quota(error):
        return Verdict.RUN_REFUSED
    if status == 400 and error.code == "invalid_beta":
        return Verdict.RUN_REFUSED
    return Verdict.REFUSED if refuses_for_good(status) else Verdict.RETRY


_ATTACHED = Judgement(Verdict.ATTACHED)


class Target:
    """One API call family. Subclasses set the names; `path_*` build request paths."""

    name: ClassVar[str]
    owner_column: ClassVar[str]
    group_key: ClassVar[str]  # the grouped YAML manifest's top-level key
    beta_header: ClassVar[str]
    other_target: ClassVar[str]
    supports_batches: ClassVar[bool] = False

    def attach_path(self, owner: str) -> str:
        raise NotImplementedError

    def check_path(self, owner: str, file_id: str) -> str:
        raise NotImplementedError

    def owner_path(self, owner: str) -> str:
        """The owner itself (GET: does it exist?)."""
        raise NotImplementedError

    def detach_path(self, owner: str, file_id: str) -> str:
        """DELETE: takes the file out of its owner (the file object stays)."""
        return self.check_path(owner, file_id)

    def attach_body(self, item: Item) -> bytes:
        # IDs are checked against [A-Za-z0-9_-], so no escaping is ever needed.
        if item.options is None:
            return b'{"file_id":"' + item.file_id.encode("ascii") + b'"}'
        return ('{"file_id":"' + item.file_id + '"' + item.options.members() + "}").encode()

    def judge_attach(self, answer: Reply, *, wait: bool) -> Judgement:
        status = answer.status
        if 200 <= status < 300:
            return self._judge_object(answer, wait=wait)
        error = api_error(status, answer.body, answer.text)
        if status in (400, 409) and ALREADY_PATTERN.search(error.message):
            return Judgement(Verdict.ALREADY_ATTACHED, error)
        return Judgement(classify_error(status, error), error)

    def judge_check(self, answer: Reply, *, wait: bool) -> Judgement:
        status = answer.status
        if 200 <= status < 300:
            return self._judge_object(answer, wait=wait)
        error = api_error(status, answer.body, answer.text)
        if status == 404:
            return Judgement(Verdict.ABSENT, error)
        return Judgement(classify_error(status, error), error)

    def _judge_object(self, answer: Reply, *, wait: bool) -> Judgement:
        return _ATTACHED  # any 2xx: the file is on the assistant; its body is not needed


class AssistantFiles(Target):
    name = "assistant-files"
    owner_column = "assistant_id"
    group_key = "assistants"
    beta_header = "assistants=v1"
    other_target = "vector-store-files"

    def attach_path(self, owner: str) -> str:
        return f"/assistants/{owner}/files"

    def check_path(self, owner: str, file_id: str) -> str:
        return f"/assistants/{owner}/files/{file_id}"

    def owner_path(self, owner: str) -> str:
        return f"/assistants/{owner}"


class VectorStoreFiles(Target):
    name = "vector-store-files"
    owner_column = "vector_store_id"
    group_key = "vector_stores"
    beta_header = "assistants=v2"
    other_target = "assistant-files"
    supports_batches = True

    def attach_path(self, owner: str) -> str:
        return f"/vector_stores/{owner}/files"

    def check_path(self, owner: str, file_id: str) -> str:
        return f"/vector_stores/{owner}/files/{file_id}"

    def owner_path(self, owner: str) -> str:
        return f"/vector_stores/{owner}"

    def batch_path(self, owner: str) -> str:
        return f"/vector_stores/{owner}/file_batches"

    def update_path(self, owner: str, file_id: str) -> str:
        return f"/vector_stores/{owner}/files/{file_id}"

    def update_body(self, item: Item) -> bytes:
        assert item.options is not None
        assert item.options.manages_attributes
        return ('{"attributes":' + item.options.canonical() + "}").encode()

    def batch_body(self, items: list[Item]) -> bytes:
        """`file_ids` for plain files; `files` (each with its own options) when any file of
        the batch has options, so that each keeps its own (the live API's two shapes)."""
        if all(item.options is None for item in items):
            file_ids = [item.file_id for item in items]
            return json.dumps({"file_ids": file_ids}, separators=(",", ":")).encode("ascii")
        files = ",".join('{"file_id":"' + item.file_id + '"'
                         + (item.options.members() if item.options else "") + "}"
                         for item in items)
        return ('{"files":[' + files + "]}").encode()

    def _judge_object(self, answer: Reply, *, wait: bool) -> Judgement:
        return judge_vector_store_file(answer.body, wait=wait)


def judge_vector_store_file(body: Any, *, wait: bool) -> Judgement:
    """A vector_store.file object: in the store in any status is attached, unless we --wait."""
    obj = body if isinstance(body, Mapping) else None
    status = obj.get("status") if obj is not None else None
    status = status if isinstance(status, str) else None
    if not wait or status in (None, "completed"):
        return Judgement(Verdict.ATTACHED, file_status=status, obj=obj)
    if status == "in_progress":
        return Judgement(Verdict.IN_PROGRESS, file_status=status, obj=obj)
    last = body.get("last_error") if isinstance(body, Mapping) else None
    if isinstance(last, Mapping):
        error = ApiError(type="file_" + status, message=str(last.get("message") or status),
                         code=str(last["code"]) if last.get("code") else None)
    else:
        error = ApiError(type="file_" + status, message=f"the file ended {status}", code=None)
    return Judgement(Verdict.FILE_FAILED, error, file_status=status, obj=obj)


TARGETS: dict[str, Target] = {t.name: t for t in (AssistantFiles(), VectorStoreFiles())}


def get_target(name: str) -> Target:
    return TARGETS[name]
