"""The sandbox's writes to vector stores: the per-store limit counts every write (and names the
store in its 429, with that store's own headers), and a late_apply fault lands a write seconds
after its client gave up. All over real loopback HTTP."""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from runner.sandbox import SandboxConfig, SandboxThread, add_sandbox_arguments
from runner.sandbox.app import format_base_url
from runner.sandbox.handlers import SandboxApi
from tests.sandbox.test_requests import V2, Http, StartSandbox, call, error_of, pair, store


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def seconds_of(go_duration: str) -> float:
    """A Go duration of the sandbox's forms (`250ms`, `9.5s`, `1m0s`) in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:([\d.]+)s)?|([\d.]+)ms", go_duration)
    assert match, go_duration
    minutes, secs, millis = match.groups()
    if millis is not None:
        return float(millis) / 1000
    return int(minutes or 0) * 60 + float(secs or 0)


# -- the per-store limit -----------------------------------------------------------------------


async def test_store_429_names_the_store_and_carries_its_own_headers(
    sandbox: StartSandbox, http: Http
) -> None:
    """A store's 429 says `vector store vs_1` and carries x-ratelimit-* of the store's bucket
    (limit = store_rpm), not the global one's; a 200 keeps the global headers."""
    sb = sandbox(rps=100, store_rpm=6)
    first = await call(http, "POST", store(sb) + "/files", {"file_id": "f-1"}, headers=V2)
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-requests"] == "6000"
    limited = await call(http, "POST", store(sb) + "/files", {"file_id": "f-2"}, headers=V2)
    assert limited.status == 429
    error = error_of(limited)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "vector store vs_1" in error["message"]
    assert limited.headers["x-ratelimit-limit-requests"] == "6"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    # One token at 0.1 a second: the store's bucket is full again within 10 s.
    assert 9 <= seconds_of(limited.headers["x-ratelimit-reset-requests"]) <= 10
    assert limited.headers["retry-after"] == "10"
    assert 9000 <= int(limited.headers["retry-after-ms"]) <= 10000
    record = sb.record()
    assert record["rate_limited"] == {"requests": 0, "store": 1}
    assert record["rate_limited_by_store"] == {"vs_1": 1}


WRITES = {
    "add": ("POST", "/files", {"file_id": "f-new"}),
    "batch": ("POST", "/file_batches", {"file_ids": ["f-new"]}),
    "update": ("POST", "/files/f-held", {"attributes": {"k": "v"}}),
    "delete": ("DELETE", "/files/f-held", None),
}


@pytest.mark.parametrize("kind", list(WRITES))
async def test_every_write_counts_against_the_store_and_reads_do_not(
    sandbox: StartSandbox, http: Http, kind: str
) -> None:
    """Reads (check, list, batch, batch files) pass however many; each kind of write takes
    the store's one token, so the next write to that store is a 429, and another store's not."""
    sb = sandbox(store_rpm=6, processing_ms=0)
    sb.preload("vector_store", "vs_1", ["f-held"])
    sb.preload("vector_store", "vs_2", ["f-held"])
    url = store(sb)
    for _ in range(5):
        assert (await call(http, "GET", url + "/files/f-held", headers=V2)).status == 200
        assert (await call(http, "GET", url + "/files", headers=V2)).status == 200
    method, path, body = WRITES[kind]
    assert (await call(http, method, url + path, body, headers=V2)).status == 200
    after = await call(http, "POST", url + "/files", {"file_id": "f-2"}, headers=V2)
    assert after.status == 429
    assert "vector store vs_1" in error_of(after)["message"]
    other = await call(http, method, store(sb, "vs_2") + path, body, headers=V2)
    assert other.status == 200
    record = sb.record()
    assert record["rate_limited_by_store"] == {"vs_1": 1}
    assert record["store_attach_peak_per_60s"] == {"vs_1": 2, "vs_2": 1}


async def test_batch_reads_are_not_counted(sandbox: StartSandbox, http: Http) -> None:
    """A batch's retrieve and file list are reads: they pass with the store's token spent."""
    sb = sandbox(store_rpm=6, processing_ms=0)
    url = store(sb)
    batch = await call(http, "POST", url + "/file_batches", {"file_ids": ["f-1"]}, headers=V2)
    assert batch.status == 200
    batch_url = f"{url}/file_batches/{batch.body['id']}"
    for _ in range(3):
        assert (await call(http, "GET", batch_url, headers=V2)).status == 200
        assert (await call(http, "GET", batch_url + "/files", headers=V2)).status == 200
    assert sb.record()["store_attach_peak_per_60s"] == {"vs_1": 1}


# -- late apply --------------------------------------------------------------------------------


async def test_late_apply_lands_the_write_after_the_client_gave_up(
    sandbox: StartSandbox, http: Http
) -> None:
    """With late_apply_rate=1 an add is held late_apply_ms: a client with a 1 s timeout gives
    up, and the file lands about 3 s after the request arrived."""
    sb = sandbox(late_apply_rate=1, late_apply_ms=3000, processing_ms=0)
    assert "late_apply" not in sb.record()["faults"]  # listed once one happened
    sent = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await call(http, "POST", store(sb) + "/files", {"file_id": "f-1"}, headers=V2, timeout=1)
    record = sb.record()
    assert record["faults"]["late_apply"] == 1
    assert "vs_1/f-1" not in record["pairs"]
    while "vs_1/f-1" not in sb.record()["pairs"]:
        assert time.monotonic() - sent < 5, "the held write never landed"
        await asyncio.sleep(0.05)
    landed = time.monotonic() - sent
    assert 2.9 <= landed < 4
    assert sb.record()["pairs"]["vs_1/f-1"] == pair(attached=1)
    check = await call(http, "GET", store(sb) + "/files/f-1", headers=V2)
    assert check.body["status"] == "completed"


async def test_late_apply_answers_a_patient_client_and_spares_reads(
    sandbox: StartSandbox, http: Http
) -> None:
    """A client that waits gets the write's answer after late_apply_ms; reads are never held;
    the fault is turned on and off live."""
    sb = sandbox(processing_ms=0)
    sb.update(late_apply_rate=1, late_apply_ms=300)
    started = time.monotonic()
    answer = await call(http, "DELETE", store(sb) + "/files/f-none", headers=V2)
    assert answer.status == 404
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    for _ in range(5):
        assert (await call(http, "GET", store(sb) + "/files", headers=V2)).status == 200
    assert time.monotonic() - started < 0.3
    sb.update(late_apply_rate=0)
    started = time.monotonic()
    add = await call(http, "POST", store(sb) + "/files", {"file_id": "f-1"}, headers=V2)
    assert add.status == 200
    assert time.monotonic() - started < 0.3
    assert sb.record()["faults"]["late_apply"] == 1


async def test_late_apply_survives_the_handler_being_cancelled(http: Http) -> None:
    """Served with aiohttp's handler_cancellation on (the handler is cancelled when its client
    disconnects), the held write is still applied: the request is over long before it lands."""
    api = SandboxApi(SandboxConfig(late_apply_rate=1, late_apply_ms=600, processing_ms=0))
    runner = web.AppRunner(api.app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = format_base_url("127.0.0.1", runner.addresses[0][1])
    try:
        url = f"{base}/vector_stores/vs_1/files"
        with pytest.raises(asyncio.TimeoutError):
            await call(http, "POST", url, {"file_id": "f-1"}, headers=V2, timeout=0.1)
        await asyncio.sleep(0.3)
        record = api.snapshot()
        assert record["in_flight"] == 0  # the handler was cancelled, unanswered
        assert record["by_status"] == {}
        assert "vs_1/f-1" not in record["pairs"]
        await asyncio.sleep(0.6)
        assert api.snapshot()["pairs"]["vs_1/f-1"] == pair(attached=1)
    finally:
        await runner.cleanup()
        await api.close()


def test_late_apply_flags_and_config() -> None:
    """--late-apply-rate and --late-apply-ms parse; the rate counts in the faults' sum."""
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    args = parser.parse_args(["--late-apply-rate", "0.25", "--late-apply-ms", "1500"])
    assert (args.late_apply_rate, args.late_apply_ms) == (0.25, 1500)
    defaults = parser.parse_args([])
    assert (defaults.late_apply_rate, defaults.late_apply_ms) == (0, 3000)
    with pytest.raises(ValueError, match="must not exceed 1"):
        SandboxConfig(late_apply_rate=0.6, fail_rate=0.5)
    with pytest.raises(ValueError, match="late_apply_ms"):
        SandboxConfig(late_apply_ms=-1)


def test_sandbox_thread_stop_drops_held_writes() -> None:
    """Stopping the server with a write still held ends cleanly (the write is never applied)."""
    with SandboxThread(SandboxConfig(late_apply_rate=1, late_apply_ms=60_000)) as sb:
        url = f"{sb.base_url}/vector_stores/vs_1/files"

        async def give_up() -> None:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(asyncio.TimeoutError):
                    await call(session, "POST", url, {"file_id": "f-1"}, headers=V2, timeout=0.2)

        asyncio.run(give_up())
    assert "vs_1/f-1" not in sb.record()["pairs"]
