"""Uploads to the sandbox under load and trouble, over real loopback HTTP: a 64 MB body is
streamed through without being held, and the seeded faults hit uploads as they hit other
writes (dropped before or after the file object is made, 5xx, applied after the client gave
up, made and then answered 500), with the record telling what landed."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tracemalloc

import aiohttp
import pytest

from runner.sandbox.errors import server_error
from tests.sandbox.client import KEY, NO_BETA, Http, StartSandbox, call, until
from tests.sandbox.uploading import list_files, upload, upload_streamed

MB = 1024**2


async def test_a_64_mb_upload_is_hashed_as_it_streams_never_held(
    sandbox: StartSandbox, http: Http
) -> None:
    """A 64 MB upload from a generator is answered with its size, the record has its SHA-256,
    and the process's traced memory peaks far below 64 MB meanwhile: no one holds the body
    (a handler reading the part whole peaks above 64 MB and fails this)."""
    sb = sandbox()
    block = bytes(range(256)) * 4096  # 1 MiB, made before tracing starts
    expected = hashlib.sha256()

    def chunks() -> object:
        for _ in range(64):
            expected.update(block)
            yield block

    tracemalloc.start()
    try:
        answer = await upload_streamed(http, sb, chunks(), "big.bin")  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status == 200, answer.text
    assert answer.body["bytes"] == 64 * MB
    entry = sb.record()["files"][answer.body["id"]]
    assert (entry["bytes"], entry["sha256"]) == (64 * MB, expected.hexdigest())
    assert peak < 16 * MB, f"traced peak {peak / MB:.1f} MB during a 64 MB upload"


async def test_reset_after_makes_the_file_once_and_drops_the_answer(
    sandbox: StartSandbox, http: Http
) -> None:
    """An upload drawn reset_after is read whole and applied, then its connection is dropped:
    the client gets no answer, the record holds the file object exactly once."""
    sb = sandbox(reset_after_rate=1)
    content = b"uploaded, then the line went dead"
    with pytest.raises(aiohttp.ClientError):
        await upload(http, sb, content)
    sb.update(reset_after_rate=0)
    record = sb.record()
    assert [f["sha256"] for f in record["files"].values()] == [hashlib.sha256(content).hexdigest()]
    assert record["uploads"] == {"applied": 1, "by_status": {"dropped": 1}}
    assert record["faults"]["reset_after"] == 1
    listed = await list_files(http, sb)
    assert [item["id"] for item in listed.body["data"]] == list(record["files"])


async def test_error_after_makes_the_file_once_and_answers_500(
    sandbox: StartSandbox, http: Http
) -> None:
    """An upload drawn error_after is read whole and applied, then answered the 500 of
    fail_rate: the record holds exactly one file object, right in name, size and digest, and
    listing finds it (what a client settling the 500 does); a delete drawn it is applied too."""
    sb = sandbox(error_after_rate=1)
    content = b"made, and answered 500 all the same"
    answer = await upload(http, sb, content, filename="Guide.md")
    assert (answer.status, answer.body) == (500, server_error(500).body())
    sb.update(error_after_rate=0)
    record = sb.record()
    [(file_id, entry)] = record["files"].items()
    assert (entry["filename"], entry["bytes"], entry["sha256"], entry["deleted"]) == (
        "Guide.md", len(content), hashlib.sha256(content).hexdigest(), False
    )
    assert record["uploads"] == {"applied": 1, "by_status": {"500": 1}}
    assert record["faults"]["error_after"] == 1
    listed = await list_files(http, sb)
    assert [(item["id"], item["bytes"]) for item in listed.body["data"]] == [
        (file_id, len(content))
    ]
    sb.update(error_after_rate=1)
    deleted = await call(http, "DELETE", f"{sb.base_url}/files/{file_id}", headers=NO_BETA)
    assert deleted.status == 500
    record = sb.record()
    assert record["files"][file_id]["deleted"] is True
    assert record["file_deletes"] == {"applied": 1, "not_found": 0}


async def test_reset_before_and_server_errors_make_no_file(
    sandbox: StartSandbox, http: Http
) -> None:
    """An upload dropped before it is applied, or answered 500/502/503, makes no file object."""
    sb = sandbox(reset_before_rate=1)
    with pytest.raises(aiohttp.ClientError):
        await upload(http, sb, b"never applied")
    sb.update(reset_before_rate=0, fail_rate=1, seed=3)
    statuses = {(await upload(http, sb, b"never either")).status for _ in range(12)}
    assert statuses == {500, 502, 503}
    record = sb.record()
    assert (record["files"], record["uploads"]["applied"]) == ({}, 0)
    assert record["uploads"]["by_status"]["dropped"] == 1


async def test_late_apply_makes_the_file_after_the_client_gave_up(
    sandbox: StartSandbox, http: Http
) -> None:
    """An upload drawn late_apply has its body read at once, is held late_apply_ms and then
    makes its file object, although its client timed out long before."""
    sb = sandbox(late_apply_rate=1, late_apply_ms=1500)
    content = b"landed late"
    with pytest.raises(asyncio.TimeoutError):
        await upload(http, sb, content, timeout=0.3)
    record = sb.record()
    assert (record["files"], record["held_writes"]) == ({}, 1)
    await until(lambda: sb.record()["held_writes"] == 0)
    record = sb.record()
    assert [f["sha256"] for f in record["files"].values()] == [hashlib.sha256(content).hexdigest()]
    assert record["uploads"]["applied"] == 1
    assert record["faults"]["late_apply"] == 1


async def test_late_apply_answers_a_patient_client_and_holds_refusals_too(
    sandbox: StartSandbox, http: Http
) -> None:
    """A client that waits gets the file object after the hold; a refused upload (empty) is
    held as well and answered its 400, as a JSON write's refusal is."""
    sb = sandbox(late_apply_rate=1, late_apply_ms=200)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await upload(http, sb, b"patient")
    assert answer.status == 200, answer.text
    assert loop.time() - started >= 0.2
    refused = await upload(http, sb, b"")
    assert (refused.status, refused.body["error"]["message"]) == (400, "File is empty.")
    assert sb.record()["uploads"] == {"applied": 1, "by_status": {"200": 1, "400": 1}}


async def raw_upload_cut_short(port: int) -> None:
    """Send an upload's headers and half its body, then close the connection."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=BB\r\nContent-Length: 100000\r\n\r\n"
        b'--BB\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--BB\r\nContent-Disposition: form-data; name="file"; filename="cut.txt"\r\n\r\n'
        + b"x" * 40_000
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("late", [False, True])
async def test_an_upload_cut_off_mid_body_makes_nothing_quietly(
    sandbox: StartSandbox, caplog: pytest.LogCaptureFixture, late: bool
) -> None:
    """A client that leaves halfway through its upload (held by late_apply or not) makes no
    file object, holds nothing, and the server logs no error: it is a dropped upload."""
    sb = sandbox(late_apply_rate=1 if late else 0, late_apply_ms=100)
    port = int(sb.base_url.rsplit(":", 1)[1].split("/")[0])
    with caplog.at_level(logging.ERROR):
        await raw_upload_cut_short(port)
        await until(lambda: sb.record()["in_flight"] == 0)
    record = sb.record()
    assert (record["files"], record["held_writes"]) == ({}, 0)
    assert record["uploads"] == {"applied": 0, "by_status": {"dropped": 1}}
    assert [r.getMessage() for r in caplog.records if r.name.startswith("aiohttp")] == []
