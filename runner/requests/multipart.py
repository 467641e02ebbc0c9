"""One upload's body (`POST /files`, multipart/form-data): the `purpose` field, then the file
streamed from disk a chunk at a time, so memory does not grow with its size. The body knows
how far it got: a stall (no chunk taken for `--timeout` seconds) is found by the client's
watchdog (client.ApiClient.upload), and only a body sent to its last byte can have made a
file object (SPEC "Exactly once").

A body may also hash the file as it reads it (`on_file_read`): a large file is then read once,
not once to hash and again to send. Its whole file part read, the stat unchanged since the
open, `on_file_read` is told the content (the upload's `upload-sent` line is written there)
before the closing boundary goes: a server cannot make the object without that boundary, so
the line still comes before any object can exist."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple, NoReturn

CHUNK_BYTES = 256 * 1024


class FileChanged(Exception):  # noqa: N818 - a finding, reported as the pair's failure
    """The file was shorter than when it was read: it changed while it was uploading."""


class FileRead(NamedTuple):
    """What a hashing body read: the content's SHA-256 (hex), the size and mtime_ns of the
    file it read (the same at the open and after the last byte), and when it opened it."""

    sha256: str
    size: int
    mtime_ns: int
    hashed_ns: int


# Characters a Content-Disposition filename cannot hold as they are: clients escape them in
# ways servers read differently (httpx sends `"` as %22, which a server may keep as it
# stands), and the name the server keeps must be the one we look for when we settle an
# uncertain upload by listing. So they are replaced, once, in the name itself.
_UNSAFE_IN_NAME = {ord('"'): "'", ord("\\"): "_", **{c: "_" for c in range(32)}, 127: "_"}


def upload_filename(path: str) -> str:
    """The name the file object gets (file search cites it): the file's base name, its
    extension lower-cased (SPEC "Upload"); a `"` becomes `'`, a backslash or a control
    character `_`."""
    stem, extension = os.path.splitext(os.path.basename(path))
    return (stem + extension.lower()).translate(_UNSAFE_IN_NAME)


class UploadBody:
    """The multipart body of one file's upload, with its exact length (sent as Content-Length:
    no chunked encoding) and what it has sent so far."""

    def __init__(self, path: str, size: int, filename: str, purpose: str = "assistants",
                 on_bytes: Callable[[int], None] | None = None,
                 on_file_read: Callable[[FileRead], None] | None = None) -> None:
        self.path = path
        self.size = size
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
            f"{purpose}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.length = len(self._head) + size + len(self._tail)
        self.on_bytes = on_bytes
        self.progressed_at = 0.0  # loop time of the last chunk taken (the stall watchdog's)
        self.complete = False  # the last byte was handed to the connection
        self.sent = 0  # bytes of the file handed to the connection
        self.changed = False
        self.on_file_read = on_file_read
        # An exception of on_file_read (a log that cannot be written): the client raises it
        # as it is, not as the connection error the library makes of it.
        self.failure: BaseException | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        self.progressed_at = loop.time()
        left = self.size
        hashing = self.on_file_read is not None
        # Page-cache reads of 256 KiB take tens of microseconds: not worth a thread.
        with open(self.path, "rb") as stream:  # noqa: ASYNC230
            digest = before = None
            if hashing:
                opened_ns = time.time_ns()
                before = os.fstat(stream.fileno())
                if before.st_size != self.size:
                    self._changed("is not the size it was")
                digest = hashlib.sha256()
            yield self._head
            while left > 0:
                chunk = stream.read(min(CHUNK_BYTES, left))
                if not chunk:
                    self._changed("is shorter than when it was read")
                left -= len(chunk)
                if digest is not None:
                    digest.update(chunk)
                yield chunk
                self.progressed_at = loop.time()
                self.sent += len(chunk)
                if self.on_bytes is not None:
                    self.on_bytes(len(chunk))
            if digest is not None and before is not None and self.on_file_read is not None:
                after = os.fstat(stream.fileno())
                if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                    self._changed("changed while it was read")
                try:
                    self.on_file_read(FileRead(digest.hexdigest(), before.st_size,
                                               before.st_mtime_ns, opened_ns))
                except BaseException as exc:
                    self.failure = exc
                    raise
        yield self._tail
        self.progressed_at = loop.time()
        self.complete = True

    def _changed(self, what: str) -> NoReturn:
        """The file is not as it was: stop before the closing boundary (no object)."""
        self.changed = True
        raise FileChanged(f"{self.path} {what}")
