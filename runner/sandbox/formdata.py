"""A streaming reader of `multipart/form-data` bodies (RFC 7578) for uploads: each part's
name and filename (from its Content-Disposition, `filename*` included), then its content in
pieces as they arrive; the body is never whole in memory, only what one read of the
connection brings plus a boundary's length.

Not aiohttp's own reader: its `BodyPartReader.read_chunk` calls the deprecated
`StreamReader.unread_data` when a read ends just short of a boundary (aiohttp 3.14), and the
DeprecationWarning it raises there, turned into an error under a test suite's warning
filters, failed an upload at random.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import NamedTuple, Protocol

MAX_HEADER_BYTES = 16 * 1024  # a part's header block; a real one is a few hundred bytes
CRLF = b"\r\n"


class FormError(ValueError):
    """The body is not a well-formed multipart/form-data body."""


class Source(Protocol):
    """What the body is read from: aiohttp's `request.content`."""

    async def readany(self) -> bytes: ...


class FormPart(NamedTuple):
    name: str | None  # the form field's name
    filename: str | None  # None: a plain field, not a file


class FormReader:
    """`async for`-free on purpose: `next_part()`, then `read_chunk()` until b"", in turn.

    The buffer holds what was read and not yet handed out; the delimiter that ends a part is
    `CRLF--boundary`, so a part's content is handed out up to the last `len(delimiter) - 1`
    bytes, which may still turn out to begin the delimiter."""

    __slots__ = ("_source", "_delimiter", "_buffer", "_started", "_in_part", "_done")

    def __init__(self, source: Source, boundary: str) -> None:
        if not 1 <= len(boundary) <= 70:
            raise FormError(f"a boundary has 1 to 70 characters, not {len(boundary)}")
        self._source = source
        self._delimiter = CRLF + b"--" + boundary.encode("latin-1")
        # The body opens with `--boundary` (after an optional preamble): a CRLF in front
        # lets the first delimiter be found as every other one is.
        self._buffer = bytearray(CRLF)
        self._started = False
        self._in_part = False
        self._done = False

    async def next_part(self) -> FormPart | None:
        """The next part's name and filename, None after the closing delimiter."""
        while self._in_part:  # the rest of a part the caller did not read
            await self.read_chunk()
        if self._done:
            return None
        if not self._started:
            await self._skip_preamble()
            self._started = True
        # After a delimiter: `--` closes the body, CRLF opens a part's headers.
        await self._fill_to(2)
        if self._buffer[:2] == b"--":
            self._done = True
            return None
        headers = await self._headers()
        self._in_part = True
        return _part_of(headers)

    async def read_chunk(self) -> bytes:
        """The next piece of the current part's content; b"" at its end."""
        delimiter, buffer = self._delimiter, self._buffer
        while self._in_part:
            at = buffer.find(delimiter)
            if at >= 0:
                piece = bytes(buffer[:at])
                del buffer[: at + len(delimiter)]
                self._in_part = False
                return piece
            safe = len(buffer) - len(delimiter) + 1
            if safe > 0:
                piece = bytes(buffer[:safe])
                del buffer[:safe]
                return piece
            await self._fill("the body ended inside a part")
        return b""

    async def _skip_preamble(self) -> None:
        delimiter, buffer = self._delimiter, self._buffer
        while (at := buffer.find(delimiter)) < 0:
            # Keep only what may begin the delimiter: a preamble costs no memory either.
            del buffer[: max(0, len(buffer) - len(delimiter) + 1)]
            await self._fill("the body holds no boundary")
        del buffer[: at + len(delimiter)]

    async def _headers(self) -> list[tuple[str, str]]:
        """The part's headers; the buffer is left at its content. It starts at the CRLF that
        ends the delimiter's line, so an empty header block is CRLF CRLF at 0."""
        buffer = self._buffer
        while (end := buffer.find(CRLF + CRLF)) < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                raise FormError("a part's headers are too long")
            await self._fill("the body ended inside a part's headers")
        if buffer[:2] != CRLF:
            raise FormError("a boundary is followed by more than a line break")
        block = bytes(buffer[2:end]).decode("utf-8", errors="replace")
        del buffer[: end + 4]
        headers = []
        for line in block.split("\r\n") if block else ():
            name, colon, value = line.partition(":")
            if not colon:
                raise FormError(f"a part's header line has no colon: {line[:40]!r}")
            headers.append((name.strip().lower(), value.strip()))
        return headers

    async def _fill_to(self, size: int) -> None:
        while len(self._buffer) < size:
            await self._fill("the body ended after a boundary")

    async def _fill(self, at_eof: str) -> None:
        data = await self._source.readany()
        if not data:
            raise FormError(at_eof)
        self._buffer += data


def _part_of(headers: list[tuple[str, str]]) -> FormPart:
    disposition = next((value for name, value in headers if name == "content-disposition"), "")
    kind, _, rest = disposition.partition(";")
    if kind.strip().lower() != "form-data":
        raise FormError("a part without Content-Disposition: form-data")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        key, value = match.group(1).lower(), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
        if key.endswith("*"):  # RFC 5987: charset'language'percent-encoded
            charset, _, encoded = value.partition("'")
            encoded = encoded.partition("'")[2]
            try:
                value = urllib.parse.unquote(encoded, charset or "utf-8", errors="replace")
            except LookupError as exc:
                raise FormError(f"a part's {key} names an unknown charset") from exc
        params[key] = value
    # The extended form wins: a client sends it beside a plain one for old readers.
    return FormPart(params.get("name*", params.get("name")),
                    params.get("filename*", params.get("filename")))  # fmt: skip


# `; key=value` with the value a token or a quoted string (a `;` inside quotes is kept).
_PARAM = re.compile(r'\s*;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_QUOTED_PAIR = re.compile(r"\\([\\\"])")
