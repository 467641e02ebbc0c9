"""Uploading to the sandbox's Files API from its tests: a multipart upload as a client sends it
(aiohttp's FormData), and a body streamed from a generator (for sizes no test should hold)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import aiohttp

from runner.sandbox import SandboxThread
from tests.sandbox.client import NO_BETA, Answer, Http, call

BOUNDARY = "sandbox-test-boundary-7d1e"


def files_url(sb: SandboxThread) -> str:
    return f"{sb.base_url}/files"


async def upload(
    http: Http,
    sb: SandboxThread,
    content: bytes | None,
    *,
    filename: str | None = "notes.md",
    purpose: str | None = "assistants",
    extra: Iterable[tuple[str, str]] = (),
    file_first: bool = False,
    timeout: float = 10,
) -> Answer:
    """POST /files as a client does: `purpose`, `extra` fields, then `file` (or the file
    first); None leaves a field out."""
    form = aiohttp.FormData(default_to_multipart=True)

    def add_file() -> None:
        if content is None:
            return
        if filename is None:  # a plain form field named `file`
            form.add_field("file", content.decode())
        else:
            form.add_field("file", content, filename=filename, content_type="text/markdown")

    if file_first:
        add_file()
    if purpose is not None:
        form.add_field("purpose", purpose)
    for name, value in extra:
        form.add_field(name, value)
    if not file_first:
        add_file()
    return await call(http, "POST", files_url(sb), data=form, headers=NO_BETA, timeout=timeout)


async def streamed_body(
    chunks: Iterable[bytes], filename: str, purpose: str = "assistants"
) -> AsyncIterator[bytes]:
    """A multipart body yielded piece by piece: the file part is never whole in memory."""
    yield (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    for chunk in chunks:
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def upload_streamed(
    http: Http, sb: SandboxThread, chunks: Iterable[bytes], filename: str, timeout: float = 60
) -> Answer:
    """POST /files with a chunked body from `chunks` (see streamed_body)."""
    headers = {**NO_BETA, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return await call(http, "POST", files_url(sb), data=streamed_body(chunks, filename),
                      headers=headers, timeout=timeout)


async def list_files(http: Http, sb: SandboxThread, query: str = "") -> Answer:
    return await call(http, "GET", files_url(sb) + query, headers=NO_BETA)
