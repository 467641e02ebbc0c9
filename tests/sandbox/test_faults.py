"""The sandbox's seeded faults: 5xx answers, connections dropped before or after the
write, slow answers, latency, late_apply (a write held, then applied after its client
gave up), with the count of writes still held, and error_after (a write applied, then
answered 500). All over real loopback HTTP."""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from runner.sandbox import SandboxConfig, SandboxThread, add_sandbox_arguments
from runner.sandbox.app import format_base_url
from runner.sandbox.errors import server_error
from runner.sandbox.handlers import SandboxApi
from tests.cli import wait_for_held_writes
from tests.sandbox.client import (
    KEY,
    V2,
    Answer,
    Http,
    StartSandbox,
    asst,
    call,
    error_of,
    pair,
    store,
    until,
)

# -- 5xx, resets, slow answers -----------------------------------------------------------------


async def test_server_errors_are_json_and_the_502_is_html(
    sandbox: StartSandbox, http: Http
) -> None:
    """fail_rate answers 500, 502 and 503; 500/503 in OpenAI's envelope, the 502 as HTML."""
    sb = sandbox(fail_rate=1, seed=1)
    answers = [await call(http, "GET", asst(sb)) for _ in range(30)]
    assert {a.status for a in answers} == {500, 502, 503}
    for answer in answers:
        if answer.status == 502:
            assert answer.headers["content-type"].startswith("text/html")
            assert answer.text.startswith("<html>\r\n<head><title>502 Bad Gateway</title>")
        else:
            assert error_of(answer)["type"] == "server_error"
    faults = sb.record()["faults"]
    assert faults["http_500"] + faults["http_502"] + faults["http_503"] == 30
    assert faults["http_502"] == sum(1 for a in answers if a.status == 502)


async def test_reset_before_drops_the_connection_without_attaching(
    sandbox: StartSandbox, http: Http
) -> None:
    """reset_before drops the connection and the pair is not attached."""
    sb = sandbox(reset_before_rate=1)
    with pytest.raises(aiohttp.ClientError):
        await call(http, "POST", asst(sb), {"file_id": "file-1"})
    sb.update(reset_before_rate=0)
    assert (await call(http, "GET", asst(sb) + "/file-1")).status == 404
    record = sb.record()
    assert record["faults"]["reset_before"] == 1
    assert "asst_1/file-1" not in record["pairs"]
    assert record["by_status"] == {"404": 1}
    assert record["requests"] == 2
    assert record["in_flight"] == 0


async def test_reset_after_attaches_then_drops_the_connection(
    sandbox: StartSandbox, http: Http
) -> None:
    """reset_after applies the attach, then drops the connection unanswered."""
    sb = sandbox(reset_after_rate=1)
    with pytest.raises(aiohttp.ClientError):
        await call(http, "POST", asst(sb), {"file_id": "file-1"})
    sb.update(reset_after_rate=0)
    assert (await call(http, "GET", asst(sb) + "/file-1")).status == 200
    again = await call(http, "POST", asst(sb), {"file_id": "file-1"})
    assert "already attached" in error_of(again)["message"]
    record = sb.record()
    assert record["faults"]["reset_after"] == 1
    assert record["pairs"]["asst_1/file-1"] == pair(attached=1, posts_after_attached=1)


async def test_slow_answer_outlives_the_client_timeout_but_applies(
    sandbox: StartSandbox, http: Http
) -> None:
    """slow_rate applies the attach and answers after slow_ms: a short client timeout fires."""
    sb = sandbox(slow_rate=1, slow_ms=400)
    with pytest.raises(asyncio.TimeoutError):
        await call(http, "POST", asst(sb), {"file_id": "file-1"}, timeout=0.1)
    record = sb.record()
    assert record["faults"]["slow"] == 1
    assert record["pairs"]["asst_1/file-1"]["attached"] == 1


async def test_faults_can_be_limited_to_posts(sandbox: StartSandbox, http: Http) -> None:
    """With fault_methods=("POST",), GETs are never faulted."""
    sb = sandbox(fail_rate=1, fault_methods=("POST",))
    assert all([(await call(http, "GET", asst(sb))).status == 200 for _ in range(5)])
    assert (await call(http, "POST", asst(sb), {"file_id": "file-1"})).status >= 500
    assert sum(sb.record()["faults"].values()) == 1


async def test_latency_delays_every_answer(sandbox: StartSandbox, http: Http) -> None:
    """latency_ms delays each answer without blocking the others."""
    sb = sandbox(latency_ms=150)
    started = time.monotonic()
    answers = await asyncio.gather(*(call(http, "GET", asst(sb)) for _ in range(5)))
    elapsed = time.monotonic() - started
    assert [a.status for a in answers] == [200] * 5
    assert 0.14 <= elapsed < 0.6


# -- applied, then answered 500 ----------------------------------------------------------------


async def test_error_after_attaches_once_and_answers_the_500_of_fail_rate(
    sandbox: StartSandbox, http: Http
) -> None:
    """An attach drawn error_after is applied, then answered the very 500 fail_rate sends: the
    pair is in the store once, and a check finds it there."""
    sb = sandbox(error_after_rate=1, processing_ms=0)
    assert "error_after" not in sb.record()["faults"]  # listed once one happened
    answer = await call(http, "POST", store(sb) + "/files", {"file_id": "f-1"}, headers=V2)
    assert answer.status == 500
    assert answer.body == server_error(500).body()
    sb.update(error_after_rate=0)
    assert (await call(http, "GET", store(sb) + "/files/f-1", headers=V2)).status == 200
    record = sb.record()
    assert record["pairs"] == {"vs_1/f-1": pair(attached=1)}
    assert list(record["vector_store_files"]["vs_1"]) == ["f-1"]
    assert (record["faults"]["error_after"], record["faults"]["http_500"]) == (1, 0)
    assert record["by_status"] == {"200": 1, "500": 1}


ERROR_AFTER_WRITES = {
    "add": ("POST", "/files", {"file_id": "f-new"}, "vs_1/f-new", pair(attached=1)),
    "batch": ("POST", "/file_batches", {"file_ids": ["f-new"]}, "vs_1/f-new", pair(attached=1)),
    "update": ("POST", "/files/f-held", {"attributes": {"k": "v"}}, "vs_1/f-held",
               pair(preloaded=True, updated=1)),
    "delete": ("DELETE", "/files/f-held", None, "vs_1/f-held", pair(preloaded=True, detached=1)),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(ERROR_AFTER_WRITES))
async def test_error_after_applies_every_kind_of_write(
    sandbox: StartSandbox, http: Http, kind: str
) -> None:
    """Adds, batches, attribute updates and detaches drawn error_after are applied once each,
    and answered 500."""
    sb = sandbox(error_after_rate=1, processing_ms=0)
    sb.preload("vector_store", "vs_1", ["f-held"])
    method, path, body, key, expected = ERROR_AFTER_WRITES[kind]
    answer = await call(http, method, store(sb) + path, body, headers=V2)
    assert (answer.status, error_of(answer)["type"]) == (500, "server_error")
    record = sb.record()
    assert record["pairs"][key] == expected
    assert record["faults"]["error_after"] == 1


async def test_error_after_never_hits_a_read(sandbox: StartSandbox, http: Http) -> None:
    """Reads whose roll lands on error_after get no fault; the next write does, and the other
    kinds of fault still hit reads as before (one roll a request, in one sequence)."""
    sb = sandbox(error_after_rate=1, processing_ms=0)
    sb.preload("vector_store", "vs_1", ["f-held"])
    reads = [
        await call(http, "GET", url, headers=V2)
        for url in (store(sb), store(sb) + "/files", store(sb) + "/files/f-held")
        for _ in range(4)
    ]
    assert {a.status for a in reads} == {200}
    assert "error_after" not in sb.record()["faults"]
    assert (await call(http, "DELETE", store(sb) + "/files/f-held", headers=V2)).status == 500
    sb.update(error_after_rate=0.5, fail_rate=0.5, seed=4)
    mixed = [(await call(http, "GET", store(sb), headers=V2)).status for _ in range(40)]
    assert set(mixed) == {200, 500, 502, 503}  # a read landing on error_after: no fault
    faults = sb.record()["faults"]
    assert faults["error_after"] == 1
    assert faults["http_500"] + faults["http_502"] + faults["http_503"] == 40 - mixed.count(200)


async def test_error_after_is_set_live_and_shown_by_the_admin_route(
    sandbox: StartSandbox, http: Http
) -> None:
    """error_after_rate is read, changed and checked through the admin config route."""
    sb = sandbox()
    admin = sb.base_url.removesuffix("/v1") + "/__sandbox/config"
    assert (await call(http, "GET", admin, headers={})).body["error_after_rate"] == 0
    turned = await call(http, "POST", admin, {"error_after_rate": 1}, headers={})
    assert turned.body["error_after_rate"] == 1
    add = await call(http, "POST", store(sb) + "/files", {"file_id": "f-1"}, headers=V2)
    assert add.status == 500
    bad = await call(http, "POST", admin, {"error_after_rate": 0.5, "fail_rate": 0.6}, headers={})
    assert bad.status == 400
    assert "error_after_rate must not exceed 1" in error_of(bad)["message"]
    assert sb.record()["pairs"]["vs_1/f-1"] == pair(attached=1)


def test_error_after_flag_and_config() -> None:
    """--error-after-rate parses (default 0) and counts in the faults' sum."""
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    assert parser.parse_args(["--error-after-rate", "0.2"]).error_after_rate == 0.2
    assert parser.parse_args([]).error_after_rate == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--error-after-rate", "1.5"])
    with pytest.raises(ValueError, match="error_after_rate must be between 0 and 1"):
        SandboxConfig(error_after_rate=-0.1)
    with pytest.raises(ValueError, match="must not exceed 1"):
        SandboxConfig(error_after_rate=0.6, reset_after_rate=0.5)
    assert SandboxConfig(error_after_rate=0.25).to_dict()["error_after_rate"] == 0.25


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
    assert record["held_writes"] == 1
    assert "vs_1/f-1" not in record["pairs"]
    while "vs_1/f-1" not in sb.record()["pairs"]:
        assert time.monotonic() - sent < 5, "the held write never landed"
        await asyncio.sleep(0.05)
    landed = time.monotonic() - sent
    assert 2.9 <= landed < 4
    assert wait_for_held_writes(sb, timeout=1)["pairs"]["vs_1/f-1"] == pair(attached=1)
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
        await until(lambda: api.snapshot()["in_flight"] == 0)  # the handler was cancelled
        record = api.snapshot()
        assert record["by_status"] == {}  # unanswered
        assert record["held_writes"] == 1
        assert "vs_1/f-1" not in record["pairs"]
        await until(lambda: api.snapshot()["held_writes"] == 0)
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
        assert sb.record()["held_writes"] == 1
    record = sb.record()
    assert record["held_writes"] == 0  # dropped
    assert "vs_1/f-1" not in record["pairs"]


def test_held_writes_counts_each_write_until_it_lands(sandbox: StartSandbox) -> None:
    """The record's held_writes counts the writes a late_apply fault holds now: each from the
    draw, on after its client gave up and after a reset, back to 0 once it has landed, by which
    time the record shows what it did. Reads are never held."""
    sb = sandbox(late_apply_rate=1, late_apply_ms=2000, processing_ms=0)
    assert sb.record()["held_writes"] == 0

    async def give_up() -> list[Answer | BaseException]:
        async with aiohttp.ClientSession() as session:
            adds = [call(session, "POST", store(sb) + "/files", {"file_id": f"f-{i}"},
                         headers=V2, timeout=0.3) for i in range(3)]
            answers = await asyncio.gather(*adds, return_exceptions=True)
            read = await call(session, "GET", store(sb) + "/files", headers=V2)
            assert read.status == 200
            return answers

    answers = asyncio.run(give_up())
    assert all(isinstance(answer, asyncio.TimeoutError) for answer in answers), answers
    record = sb.record()
    assert (record["held_writes"], record["faults"]["late_apply"]) == (3, 3)
    assert record["pairs"] == {}
    sb.reset()  # a held write still lands after a reset, so it stays counted
    assert sb.record()["held_writes"] == 3
    landed = wait_for_held_writes(sb)
    assert landed["held_writes"] == 0
    assert [landed["pairs"][f"vs_1/f-{i}"] for i in range(3)] == [pair(attached=1)] * 3


def test_waiting_for_a_write_held_too_long_fails_the_test_saying_so(
    sandbox: StartSandbox,
) -> None:
    """wait_for_held_writes fails the test, with the count and late_apply_ms, at its timeout."""
    sb = sandbox(late_apply_rate=1, late_apply_ms=60_000, processing_ms=0)

    async def give_up() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(asyncio.TimeoutError):
                await call(session, "POST", store(sb) + "/files", {"file_id": "f-1"},
                           headers=V2, timeout=0.2)

    asyncio.run(give_up())
    with pytest.raises(pytest.fail.Exception) as failed:
        wait_for_held_writes(sb, timeout=0.2)
    assert str(failed.value) == (
        "the sandbox still holds 1 write(s) after 0.2 s (late_apply_ms: 60000)")


async def test_a_held_write_whose_client_leaves_before_its_body_is_dropped(
    sandbox: StartSandbox,
) -> None:
    """A write drawn late_apply is counted from the draw; if its client leaves before the body
    arrives, it is dropped (held_writes back to 0) and never applied."""
    sb = sandbox(late_apply_rate=1, late_apply_ms=100, processing_ms=0)
    port = int(sb.base_url.rsplit(":", 1)[1].split("/")[0])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/vector_stores/vs_1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Authorization: Bearer " + KEY.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                 b'{"file_id": ')
    await writer.drain()
    await until(lambda: sb.record()["held_writes"] == 1)
    writer.close()
    await writer.wait_closed()
    await until(lambda: sb.record()["held_writes"] == 0)
    record = sb.record()
    assert record["faults"]["late_apply"] == 1
    assert record["pairs"] == {}
    assert record["vector_store_files"] == {}
