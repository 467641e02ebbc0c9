"""The sandbox's rate limits: the requests bucket (`rps`, `burst`) with its 429 and
x-ratelimit-* headers, the per-store write limit (`store_rpm`), which counts every
write and names the store in its 429, with that store's own headers, and the uploads' own
limit (`upload_rpm`), which only uploads take from. All over real loopback HTTP."""

from __future__ import annotations

import argparse
import asyncio
import re

import pytest

from runner.sandbox import SandboxConfig, add_sandbox_arguments
from runner.sandbox.limits import format_go_duration
from tests.sandbox.client import V2, Answer, Http, StartSandbox, asst, call, error_of, store
from tests.sandbox.uploading import upload


def seconds_of(go_duration: str) -> float:
    """A Go duration of the sandbox's forms (`250ms`, `9.5s`, `1m0s`) in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:([\d.]+)s)?|([\d.]+)ms", go_duration)
    assert match, go_duration
    minutes, secs, millis = match.groups()
    if millis is not None:
        return float(millis) / 1000
    return int(minutes or 0) * 60 + float(secs or 0)


def assert_empty_bucket_of_six_a_minute(limited: Answer) -> None:
    """A 429 from an empty bucket of 6 a minute (a store's, or the uploads'): its own
    x-ratelimit-* headers, and one token at 0.1 a second: full again within 10 s."""
    assert limited.headers["x-ratelimit-limit-requests"] == "6"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert 9 <= seconds_of(limited.headers["x-ratelimit-reset-requests"]) <= 10
    assert limited.headers["retry-after"] == "10"
    assert 9000 <= int(limited.headers["retry-after-ms"]) <= 10000


# -- the requests bucket -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.02, "20ms"), (0.25, "250ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"),
     (61.25, "1m1.25s"), (3600, "1h0m0s")],
)  # fmt: skip
def test_go_duration_format(seconds: float, text: str) -> None:
    """Durations read as Go prints them, as OpenAI's x-ratelimit-reset-requests does."""
    assert format_go_duration(seconds) == text


async def test_ratelimit_headers_on_a_200(sandbox: StartSandbox, http: Http) -> None:
    """With rps set, every answer carries x-ratelimit-limit/remaining/reset-requests."""
    sb = sandbox(rps=10)
    answer = await call(http, "GET", asst(sb))
    assert answer.status == 200
    assert answer.headers["x-ratelimit-limit-requests"] == "600"
    assert answer.headers["x-ratelimit-remaining-requests"] == "9"
    assert re.fullmatch(r"\d+ms", answer.headers["x-ratelimit-reset-requests"])
    assert int(answer.headers["x-ratelimit-reset-requests"][:-2]) <= 100


async def test_burst_beyond_the_bucket_gets_429_with_retry_headers(
    sandbox: StartSandbox, http: Http
) -> None:
    """Requests beyond the burst get 429 rate_limit_exceeded with retry-after(-ms) headers."""
    sb = sandbox(rps=1, burst=2)
    answers = [await call(http, "GET", asst(sb)) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    limited = answers[2]
    error = error_of(limited)
    assert error["code"] == "rate_limit_exceeded"
    assert error["type"] == "requests"
    assert "Please try again in" in error["message"]
    assert limited.headers["retry-after"] == "1"
    assert 0 < int(limited.headers["retry-after-ms"]) <= 1000
    assert limited.headers["x-ratelimit-limit-requests"] == "60"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert re.fullmatch(r"1(\.\d+)?s|2s", limited.headers["x-ratelimit-reset-requests"])
    await asyncio.sleep(int(limited.headers["retry-after-ms"]) / 1000)  # obeyed, as a client does
    assert (await call(http, "GET", asst(sb))).status == 200
    record = sb.record()
    assert record["rate_limited"] == {"requests": 1, "store": 0}
    assert record["by_status"] == {"200": 3, "429": 1}


# -- the per-store limit -----------------------------------------------------------------------


async def test_store_rpm_limits_attach_posts_per_store(sandbox: StartSandbox, http: Http) -> None:
    """store_rpm limits attach POSTs (files and batches) per store; checks and other stores pass."""
    sb = sandbox(store_rpm=6)
    one = store(sb, "vs_1")
    assert (await call(http, "POST", one + "/files", {"file_id": "f-1"}, headers=V2)).status == 200
    limited = await call(http, "POST", one + "/files", {"file_id": "f-2"}, headers=V2)
    assert limited.status == 429
    assert error_of(limited)["code"] == "rate_limit_exceeded"
    assert 9000 <= int(limited.headers["retry-after-ms"]) <= 10000
    assert limited.headers["retry-after"] == "10"
    batch = await call(http, "POST", one + "/file_batches", {"file_ids": ["f-3"]}, headers=V2)
    assert batch.status == 429
    assert (await call(http, "GET", one + "/files/f-1", headers=V2)).status == 200
    two = store(sb, "vs_2")
    assert (await call(http, "POST", two + "/files", {"file_id": "f-1"}, headers=V2)).status == 200
    record = sb.record()
    assert record["rate_limited"] == {"requests": 0, "store": 2}
    assert record["store_attach_peak_per_60s"] == {"vs_1": 3, "vs_2": 1}
    assert record["max_store_attach_per_60s"] == 3
    assert "vs_1/f-2" not in record["pairs"]


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
    assert_empty_bucket_of_six_a_minute(limited)
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


# -- the uploads' own limit --------------------------------------------------------------------


async def test_upload_429s_leave_attaches_alone(sandbox: StartSandbox, http: Http) -> None:
    """With upload_rpm 6 (one token, refilled every 10 s), a burst of uploads gets one 200 and
    429s carrying the upload bucket's own headers, while attaches sent in the same moment all
    succeed with the global bucket's."""
    sb = sandbox(rps=100, upload_rpm=6, processing_ms=0)
    uploads = [upload(http, sb, f"upload {i}".encode()) for i in range(5)]
    adds = [call(http, "POST", store(sb) + "/files", {"file_id": f"f-{i}"}, headers=V2)
            for i in range(5)]  # fmt: skip
    answers = await asyncio.gather(*uploads, *adds)
    sent, attached = answers[:5], answers[5:]
    assert sorted(a.status for a in sent) == [200, 429, 429, 429, 429]
    assert [a.status for a in attached] == [200] * 5
    assert {a.headers["x-ratelimit-limit-requests"] for a in attached} == {"6000"}
    for limited in (a for a in sent if a.status == 429):
        error = error_of(limited)
        assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
        assert error["message"].startswith(
            "Rate limit reached for files in organization org-sandbox on requests per min "
            "(RPM): Limit 6, Used 6, Requested 1. Please try again in "
        )
        assert_empty_bucket_of_six_a_minute(limited)
    record = sb.record()
    assert record["rate_limited"] == {"requests": 0, "store": 0, "uploads": 4}
    assert record["uploads"]["by_status"] == {"200": 1, "429": 4}
    assert record["by_route"]["POST upload"] == 5
    assert record["by_status"] == {"200": 6, "429": 4}
    assert len(record["files"]) == 1
    assert record["attached_total"] == 5


async def test_uploads_within_the_upload_limit_all_pass(sandbox: StartSandbox, http: Http) -> None:
    """upload_rpm 240 holds 4 tokens (one second's worth), refilled at 4 a second: 4 uploads at
    once all pass, and so do uploads spaced at the rate; a burst beyond gets 429s whose
    numbers are the bucket's (the next token within 0.25 s, full within 1 s), and an upload
    sent after waiting retry-after-ms passes."""
    sb = sandbox(upload_rpm=240)
    answers = await asyncio.gather(*(upload(http, sb, b"x" * (i + 1)) for i in range(4)))
    assert [a.status for a in answers] == [200] * 4
    burst = await asyncio.gather(*(upload(http, sb, b"one too many") for _ in range(4)))
    limited = [a for a in burst if a.status == 429]
    assert len(limited) >= 3  # one token may have come back meanwhile, never more under load
    for answer in limited:
        assert answer.headers["x-ratelimit-limit-requests"] == "240"
        assert answer.headers["x-ratelimit-remaining-requests"] == "0"
        assert 0 < int(answer.headers["retry-after-ms"]) <= 250
        assert answer.headers["retry-after"] == "1"
        assert 0.75 <= seconds_of(answer.headers["x-ratelimit-reset-requests"]) <= 1
    wait = int(limited[-1].headers["retry-after-ms"]) / 1000
    await asyncio.sleep(wait)  # obeyed, as a client does
    paced = []
    for _ in range(4):
        paced.append((await upload(http, sb, b"at the rate")).status)
        await asyncio.sleep(0.25)  # the client's own pacing: one token's worth apart
    assert paced == [200] * 4
    record = sb.record()
    assert record["uploads"]["by_status"] == {"200": 12 - len(limited), "429": len(limited)}
    assert record["rate_limited"]["uploads"] == len(limited)


async def test_upload_rpm_is_set_live_and_reset_refills_it(
    sandbox: StartSandbox, http: Http
) -> None:
    """upload_rpm is off by default (no record key for it either), is set and read through the
    admin config route, checked there, and a reset starts its bucket full."""
    sb = sandbox()
    admin = sb.base_url.removesuffix("/v1") + "/__sandbox/config"
    assert [(await upload(http, sb, b"free")).status for _ in range(3)] == [200] * 3
    assert "uploads" not in sb.record()["rate_limited"]  # listed once one happened
    assert (await call(http, "GET", admin, headers={})).body["upload_rpm"] is None
    turned = await call(http, "POST", admin, {"upload_rpm": 6}, headers={})
    assert turned.body["upload_rpm"] == 6
    assert [(await upload(http, sb, b"paced")).status for _ in range(2)] == [200, 429]
    sb.reset()
    assert (await upload(http, sb, b"after the reset")).status == 200
    bad = await call(http, "POST", admin, {"upload_rpm": 0}, headers={})
    assert bad.status == 400
    assert "upload_rpm must be > 0" in error_of(bad)["message"]


def test_upload_rpm_flag_and_config() -> None:
    """--upload-rpm parses (default: none); the config refuses a rate of 0 or less."""
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    assert parser.parse_args(["--upload-rpm", "30"]).upload_rpm == 30
    assert parser.parse_args([]).upload_rpm is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--upload-rpm", "0"])
    with pytest.raises(ValueError, match="upload_rpm must be > 0"):
        SandboxConfig(upload_rpm=-1)
    assert SandboxConfig(upload_rpm=12).to_dict()["upload_rpm"] == 12
