"""Reading a `POST /files` body: multipart, streamed, hashed as it arrives, and checked as the
Files API checks it. A 400 MB upload never sits in memory: the file part is read in chunks
that are hashed (SHA-256), counted and dropped; the other fields are small and capped.

The messages of the refusals are the live API's where it was seen sending them (see
docs/sandbox.md ("Files")); the rest are the sandbox's own, in OpenAI's envelope.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import NamedTuple

from aiohttp import BodyPartReader, MultipartReader, web

from runner.sandbox import errors
from runner.sandbox.errors import ApiError

# What the live API accepts on upload (openai-python's FilePurpose); the other purposes a file
# object may report (`assistants_output`, `batch_output`, ...) are the API's own outputs.
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
EXPIRES_ANCHOR = "created_at"
MIN_EXPIRES_SECONDS = 3600  # 1 hour, as openai-python documents `expires_after.seconds`
MAX_EXPIRES_SECONDS = 2_592_000  # 30 days
CHUNK_BYTES = 256 * 1024  # one read of the file part: hashed, counted, dropped
MAX_FIELD_BYTES = 1024  # a form field other than the file: purpose, expires_after[...]
FIELDS = frozenset({"purpose", "file", "expires_after[anchor]", "expires_after[seconds]"})
NOT_MULTIPART_MESSAGE = (
    "Invalid request: expected a multipart/form-data body with the fields 'purpose' and 'file'."
)


class Upload(NamedTuple):
    """An upload as received, not yet a file object: the sandbox creates that when it applies
    the request (later, for a write held by a late_apply fault)."""

    filename: str
    purpose: str
    size: int  # bytes of the file's content
    sha256: str  # hex digest of the content
    expires_after: int | None  # seconds after created_at, None: the purpose's default


class Pace(NamedTuple):
    """How an upload's file part is read: at most `bytes_per_s` (None: as fast as it comes),
    and `reading(+1 / -1)` told as its read starts and ends."""

    bytes_per_s: float | None = None
    reading: Callable[[int], None] | None = None


FULL_SPEED = Pace()


async def receive_upload(request: web.Request, max_bytes: int,
                         pace: Pace = FULL_SPEED) -> Upload:
    """Read the whole multipart body and check it; ApiError (400) for what the API refuses.

    The file part is read to its end even when it is too large, so the answer is the 400
    rather than a reset; aiohttp reads nothing it is not asked for, so this is also what
    keeps the connection usable for the next request."""
    if request.content_type == "application/x-www-form-urlencoded":
        # What a client sends for a form without its file: answered as the missing file.
        return _checked(await _read_urlencoded(request), None, max_bytes)
    if request.content_type != "multipart/form-data":
        raise ApiError(400, NOT_MULTIPART_MESSAGE)
    try:
        fields, content = await _read_form(await request.multipart(), max_bytes, pace)
    except (AssertionError, ValueError) as exc:  # aiohttp's word for a malformed body
        raise ApiError(400, NOT_MULTIPART_MESSAGE) from exc
    return _checked(fields, content, max_bytes)


async def _read_form(
    reader: MultipartReader, max_bytes: int, pace: Pace
) -> tuple[dict[str, str], tuple[str, int, str] | None]:
    """The form's fields other than the file, and the file as (filename, bytes, sha256)."""
    fields: dict[str, str] = {}
    content: tuple[str, int, str] | None = None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):  # a nested multipart
            raise ApiError(400, NOT_MULTIPART_MESSAGE)
        name = part.name or ""
        if name not in FIELDS:
            raise errors.unknown_parameter(name)
        if name in fields or (name == "file" and content is not None):
            raise ApiError(400, f"Invalid request: the field '{name}' was given more than once.")
        if name == "file":
            content = await _read_file(part, max_bytes, pace)
        else:
            fields[name] = await _read_field(part, name)
    return fields, content


async def _read_urlencoded(request: web.Request) -> dict[str, str]:
    try:
        form = await request.post()  # small: held to the app's client_max_size
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, "The request body is too large.") from exc
    fields: dict[str, str] = {}
    for name, value in form.items():
        if name not in FIELDS:
            raise errors.unknown_parameter(name)
        if name in fields:
            raise ApiError(400, f"Invalid request: the field '{name}' was given more than once.")
        fields[name] = str(value)
    return fields


async def _read_file(part: BodyPartReader, max_bytes: int,
                     pace: Pace) -> tuple[str, int, str]:
    """The file part, streamed: (filename, bytes, sha256). A part with no filename is a form
    field, not a file: the API needs the file's name (file search cites it)."""
    filename = part.filename
    if not filename:
        raise ApiError(
            400, "Invalid 'file': expected a file upload with a filename.", param="file"
        )
    digest = hashlib.sha256()
    size = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    if pace.reading is not None:
        pace.reading(1)
    try:
        while chunk := await part.read_chunk(CHUNK_BYTES):
            size += len(chunk)
            # Past the limit, count on (to answer with the size) but stop hashing.
            if size <= max_bytes:
                digest.update(chunk)
            if pace.bytes_per_s is not None:  # a slow link: the next read waits its turn
                await asyncio.sleep(max(0.0, started + size / pace.bytes_per_s - loop.time()))
    finally:
        if pace.reading is not None:
            pace.reading(-1)
    return filename, size, digest.hexdigest()


async def _read_field(part: BodyPartReader, name: str) -> str:
    value = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        value += chunk
        if len(value) > MAX_FIELD_BYTES:
            raise ApiError(400, f"Invalid '{name}': the value is too long.", param=name)
    try:
        return value.decode(part.get_charset("utf-8"))
    except (LookupError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Invalid '{name}': the value is not text.", param=name) from exc


def _checked(
    fields: dict[str, str], content: tuple[str, int, str] | None, max_bytes: int
) -> Upload:
    """The upload, once its fields pass the API's checks, in the API's order: the purpose
    (required, one of UPLOAD_PURPOSES), the file (required, not empty, at most `max_bytes`),
    then `expires_after`."""
    purpose = fields.get("purpose")
    if purpose is None:
        raise ApiError(400, "'purpose' is a required property")
    if purpose not in UPLOAD_PURPOSES:
        choices = ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
        raise ApiError(400, f"'{purpose}' is not one of [{choices}] - 'purpose'")
    if content is None:
        raise ApiError(400, "'file' is a required property")
    filename, size, sha256 = content
    if size == 0:
        raise ApiError(400, "File is empty.")
    if size > max_bytes:
        raise ApiError(400, "File is too large.")
    return Upload(filename, purpose, size, sha256, _expires_after(fields))


def _expires_after(fields: dict[str, str]) -> int | None:
    """`expires_after[anchor]` and `expires_after[seconds]` (both or neither): the seconds."""
    anchor, seconds = fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor is None:
        raise errors.missing_parameter("expires_after.anchor")
    if anchor != EXPIRES_ANCHOR:
        raise errors.invalid_value("expires_after.anchor", anchor, (EXPIRES_ANCHOR,))
    if seconds is None:
        raise errors.missing_parameter("expires_after.seconds")
    try:
        value = int(seconds)
    except ValueError as exc:
        raise errors.invalid_type("expires_after.seconds", "an integer", seconds) from exc
    if not MIN_EXPIRES_SECONDS <= value <= MAX_EXPIRES_SECONDS:
        raise ApiError(
            400,
            f"Invalid 'expires_after.seconds': expected a value between {MIN_EXPIRES_SECONDS} "
            f"and {MAX_EXPIRES_SECONDS}, but got {value} instead.",
            param="expires_after.seconds",
            code="invalid_value",
        )
    return value
