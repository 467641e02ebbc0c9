"""The client's upload (requests/client.ApiClient.upload with multipart.UploadBody), against
the sandbox's Files API and against servers that stall: the body arrives whole and as the
file holds it, its filename as file search will cite it, and a stall is cut at --timeout
whether the server stops reading (nothing can have been made) or stops answering after the
last byte (uncertain)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from runner.requests.client import ApiClient, TransportError
from runner.requests.multipart import FileChanged, UploadBody, upload_filename
from runner.sandbox import SandboxThread
from tests.cli import SANDBOX_KEY


def client_for(base_url: str, timeout: float = 30) -> ApiClient:
    return ApiClient(base_url, api_key=SANDBOX_KEY, beta_header="assistants=v2", org=None,
                     project=None, concurrency=4, timeout=timeout)


def test_a_file_is_named_by_its_base_name_with_its_extension_lower_cased() -> None:
    assert upload_filename("/data/Reports/Q3 Plan.PDF") == "Q3 Plan.pdf"
    assert upload_filename("/data/README") == "README"
    # What a Content-Disposition header cannot carry as it stands is replaced in the name
    # itself, so the server keeps the very name a listing is searched for.
    assert upload_filename('/d/say "hi"\\x\n.MD') == "say 'hi'_x_.md"


@pytest.mark.parametrize("name", ["notes.md", "say 'hi'.md", "caf\u00e9 \u65e5\u672c.txt"])
async def test_an_upload_arrives_whole_under_its_name(
        tmp_path: Path, sandbox: Callable[..., SandboxThread], name: str) -> None:
    sb = sandbox()
    path = tmp_path / name
    content = bytes(range(256)) * 4000 + b"end"  # ~1 MB: several chunks
    path.write_bytes(content)
    seen: list[int] = []
    body = UploadBody(str(path), len(content), name, on_bytes=seen.append)
    async with client_for(sb.base_url) as client:
        answer = await client.upload("/files", body, stall=10)
    assert answer.status == 200, answer.raw
    assert answer.date is not None  # the server's clock, for the listing's bound
    record = sb.record()["files"][answer.body["id"]]
    assert record["filename"] == name
    assert record["bytes"] == len(content)
    assert record["sha256"] == hashlib.sha256(content).hexdigest()
    assert sum(seen) == len(content)
    assert body.complete


async def test_a_transfer_longer_than_the_stall_bound_that_keeps_moving_is_not_cut(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # SPEC "Upload": --timeout bounds a stall, not the whole transfer. A slow link (the
    # sandbox reads 8 MB a second) takes ~5 s over a 40 MB body with a 2 s stall bound:
    # every chunk it takes re-arms the watchdog, and the upload lands whole, once. (The
    # bound is above the time the sockets' buffers, several MB, take to drain after the
    # last byte is handed over: that wait is "after the last byte" to the client.)
    sb = sandbox(upload_bytes_per_s=8 << 20)
    path = tmp_path / "slow.bin"
    content = b"s" * (40 << 20)
    path.write_bytes(content)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with client_for(sb.base_url) as client:
        answer = await client.upload("/files", UploadBody(str(path), len(content), "slow.bin"),
                                     stall=2.0)
    assert answer.status == 200, answer.raw
    assert loop.time() - started > 4.0  # the link was slow: the bound was passed, not cut
    assert sb.record()["uploads"] == {"applied": 1, "by_status": {"200": 1}}


async def test_a_file_that_shrank_is_found_changed(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    path = tmp_path / "a.md"
    path.write_bytes(b"x" * 1000)
    body = UploadBody(str(path), 5000, "a.md")  # read when it held 5,000 bytes
    async with client_for(sb.base_url) as client:
        with pytest.raises(FileChanged):
            await client.upload("/files", body, stall=10)
    assert sb.record()["files"] == {}


async def _server(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                   AsyncIterator[None] | object]) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


async def test_a_server_that_stops_reading_is_cut_at_the_stall_bound_not_sent(
        tmp_path: Path) -> None:
    hold: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hold.append(writer)  # keep the connection open, read nothing

    server, base = await _server(never_read)
    path = tmp_path / "big.txt"
    path.write_bytes(b"y" * (64 << 20))  # far more than the socket buffers take
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with server, client_for(base) as client:
        with pytest.raises(TransportError) as caught:
            await client.upload("/files", UploadBody(str(path), 64 << 20, "big.txt"), stall=0.5)
    for writer in hold:
        writer.close()
    assert not caught.value.sent  # cut before its last byte: no file object can exist
    assert loop.time() - started < 10


async def test_no_answer_after_the_last_byte_is_uncertain(tmp_path: Path) -> None:
    # ... and the client drops the connection (the server reads to its end, then closes).
    dropped = asyncio.Event()

    async def read_all_answer_nothing(reader: asyncio.StreamReader,
                                      writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()
        await writer.wait_closed()
        dropped.set()

    server, base = await _server(read_all_answer_nothing)
    path = tmp_path / "small.txt"
    path.write_bytes(b"z" * 1000)
    async with server, client_for(base) as client:
        with pytest.raises(TransportError) as caught:
            await client.upload("/files", UploadBody(str(path), 1000, "small.txt"), stall=0.5)
        await asyncio.wait_for(dropped.wait(), 10)
    assert caught.value.sent
