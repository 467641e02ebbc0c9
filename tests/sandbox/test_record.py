"""The sandbox's own record: request counts and peaks, the OpenAI-Organization and
OpenAI-Project headers seen, writes per store, `confirm_attached_once`, and the admin
routes that read it and steer the server. All over real loopback HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from runner.sandbox import confirm_attached_once
from tests.sandbox.client import KEY, V1, V2, Http, StartSandbox, asst, call, error_of, pair, store

# -- counts and peaks --------------------------------------------------------------------------


async def test_record_counts_peak_in_flight_and_windows(sandbox: StartSandbox, http: Http) -> None:
    """Concurrent slow requests show in peak_in_flight and the 1 s / 60 s peaks."""
    sb = sandbox(latency_ms=200)
    await asyncio.gather(*(call(http, "GET", asst(sb)) for _ in range(8)))
    record = sb.record()
    assert record["peak_in_flight"] == 8
    assert record["in_flight"] == 0
    assert record["peak_per_1s"] == 8
    assert record["peak_per_60s"] == 8
    assert record["requests"] == 8


async def test_record_counts_org_and_project_headers(sandbox: StartSandbox, http: Http) -> None:
    """Every /v1 request (refused and unknown ones too) is counted under the OpenAI-Organization
    and OpenAI-Project values it carried, in the order first seen; absent is null, empty is "";
    admin routes are not counted, and a reset forgets them."""
    sb = sandbox()
    both = {**V1, "OpenAI-Organization": "org-1", "OpenAI-Project": "proj_1"}
    await call(http, "POST", asst(sb), {"file_id": "file-1"}, headers=both)
    await call(http, "GET", asst(sb) + "/file-1", headers=both)
    await call(http, "GET", asst(sb), headers=V1)
    await call(http, "GET", asst(sb), headers={**both, "Authorization": "Bearer sk-wrong"})
    await call(http, "GET", sb.base_url + "/nowhere", headers={"OpenAI-Project": "proj_1"})
    await call(http, "GET", asst(sb), headers={**V1, "OpenAI-Organization": ""})
    await call(http, "GET", sb.base_url.removesuffix("/v1") + "/__sandbox/record", headers=both)
    record = sb.record()
    assert record["org_project"] == [
        {"organization": "org-1", "project": "proj_1", "requests": 3},
        {"organization": None, "project": None, "requests": 1},
        {"organization": None, "project": "proj_1", "requests": 1},
        {"organization": "", "project": None, "requests": 1},
    ]
    assert sum(entry["requests"] for entry in record["org_project"]) == record["requests"] == 6
    sb.reset()
    assert sb.record()["org_project"] == []


def test_confirm_attached_once_names_each_problem() -> None:
    """confirm_attached_once accepts one attach or a preload and names every other count."""
    record = {
        "pairs": {
            "a/1": pair(attached=1, posts_after_attached=3),
            "a/2": pair(posts_after_attached=1, preloaded=True),
            "a/3": pair(attached=2),
            "a/4": pair(attached=1, preloaded=True),
        }
    }
    pairs = [("a", "1"), ("a", "2"), ("a", "3"), ("a", "4"), ("a", "5")]
    assert confirm_attached_once(record, pairs) == [
        "a/3: in place 2 times, expected once",
        "a/4: in place 2 times, expected once",
        "a/5: in place 0 times, expected once",
    ]


# -- writes_by_store ---------------------------------------------------------------------------


async def test_writes_by_store_counts_every_write_on_arrival(
    sandbox: StartSandbox, http: Http
) -> None:
    """Each add, batch, update and delete sent to a store counts, refused and faulted ones too
    (401, 400, 404, 400 full, 429, 5xx); reads and batch cancels do not; a store only read is
    absent; a reset empties the count."""
    sb = sandbox(processing_ms=60_000, store_max_files=2)
    vs1 = store(sb)
    writes: list[tuple[str, str, Any, dict[str, str], int]] = [
        ("POST", "/files", {"file_id": "f-1"}, V2, 200),
        ("POST", "/file_batches", {"file_ids": ["f-2"]}, V2, 200),
        ("POST", "/files/f-1", {"attributes": {"k": "v"}}, V2, 200),
        ("POST", "/files", {"file_id": "f-3"}, V2, 400),  # full
        ("DELETE", "/files/f-9", None, V2, 404),
        ("POST", "/files", {"file_id": "f-1"}, {"Authorization": "Bearer sk-wrong"}, 401),
        ("POST", "/files", {"file_id": "f-1", "bad": 1}, V2, 400),
        ("POST", "/files", {"file_id": "f-1"}, V1, 400),  # invalid_beta
    ]
    for method, path, body, headers, status in writes:
        answer = await call(http, method, vs1 + path, body, headers=headers)
        assert answer.status == status, (method, path, answer.text)
    batch = await call(http, "POST", vs1 + "/file_batches", {"file_ids": ["f-1"]}, headers=V2)
    cancel = await call(http, "POST", f"{vs1}/file_batches/{batch.body['id']}/cancel",
                        headers=V2)  # fmt: skip
    assert cancel.status == 200
    assert (await call(http, "GET", vs1 + "/files/f-2", headers=V2)).status == 200
    for path, status in (("", 200), ("/files", 200), ("/files/f-1", 404)):
        assert (await call(http, "GET", store(sb, "vs_read") + path, headers=V2)).status == status
    missing = await call(http, "DELETE", store(sb, "vs_missing") + "/files/f-1", headers=V2)
    assert missing.status == 404

    sb.update(store_rpm=6)
    assert (await call(http, "DELETE", vs1 + "/files/f-1", headers=V2)).status == 200
    assert (await call(http, "DELETE", vs1 + "/files/f-2", headers=V2)).status == 429
    sb.update(store_rpm=None, fail_rate=1)
    faulted = await call(http, "POST", vs1 + "/files", {"file_id": "f-5"}, headers=V2)
    assert faulted.status in (500, 502, 503)

    record = sb.record()
    # 8 listed, the batch then cancelled, 2 deletes under store_rpm, 1 faulted add.
    assert record["writes_by_store"] == {"vs_1": 12, "vs_missing": 1}
    assert "vs_read" not in record["writes_by_store"]
    assert record["by_route"]["POST batch_cancel"] == 1
    sb.reset()
    assert sb.record()["writes_by_store"] == {}


async def test_writes_by_store_counts_dropped_and_retried_writes(
    sandbox: StartSandbox, http: Http
) -> None:
    """A write whose connection is dropped before it applies still counts, and so does its
    retry: the count is of requests, not of changes."""
    sb = sandbox(reset_before_rate=1, processing_ms=0)
    with pytest.raises(aiohttp.ClientError):
        await call(http, "POST", store(sb) + "/files", {"file_id": "f-1"}, headers=V2)
    sb.update(reset_before_rate=0)
    retried = await call(http, "POST", store(sb) + "/files", {"file_id": "f-1"}, headers=V2)
    assert retried.status == 200
    record = sb.record()
    assert record["writes_by_store"] == {"vs_1": 2}
    assert record["pairs"]["vs_1/f-1"] == pair(attached=1)
    assert record["faults"]["reset_before"] == 1


async def test_writes_by_store_over_the_admin_route(sandbox: StartSandbox, http: Http) -> None:
    """The admin record carries writes_by_store as the in-process one does."""
    sb = sandbox(processing_ms=0)
    headers = {"Authorization": f"Bearer {KEY}"}
    for file_id in ("f-1", "f-2"):
        await call(http, "POST", store(sb, "vs_a") + "/files", {"file_id": file_id},
                   headers=headers)  # fmt: skip
    admin = sb.base_url.removesuffix("/v1") + "/__sandbox/record"
    record = (await call(http, "GET", admin, headers={})).body
    assert record["writes_by_store"] == {"vs_a": 2}
    assert record == sb.record()


# -- the admin routes --------------------------------------------------------------------------


async def test_admin_routes(sandbox: StartSandbox, http: Http) -> None:
    """/__sandbox/ record, config, preload and reset work without a key and are not counted."""
    sb = sandbox()
    admin = sb.base_url.removesuffix("/v1") + "/__sandbox"
    preloaded = await call(
        http,
        "POST",
        admin + "/preload",
        {"owner_kind": "assistant", "owner": "asst_1", "file_ids": ["file-1", "file-2"]},
        headers={},
    )
    assert preloaded.body == {"preloaded": 2}
    again = await call(http, "POST", asst(sb), {"file_id": "file-1"})
    assert "already attached" in error_of(again)["message"]
    record = (await call(http, "GET", admin + "/record", headers={})).body
    assert record == sb.record()
    assert record["requests"] == 1
    assert record["pairs"]["asst_1/file-1"] == pair(posts_after_attached=1, preloaded=True)
    assert record["pairs"]["asst_1/file-2"]["preloaded"] is True

    config = await call(http, "POST", admin + "/config", {"quota_exhausted": True}, headers={})
    assert config.body["quota_exhausted"] is True
    assert config.body["api_key"] == "***"
    assert (await call(http, "GET", asst(sb))).status == 429
    typo = await call(http, "POST", admin + "/config", {"fail_rat": 0.5}, headers={})
    assert typo.status == 400
    assert error_of(typo)["message"] == (
        "unknown sandbox setting 'fail_rat'; did you mean 'fail_rate'?"
    )
    bad = await call(http, "POST", admin + "/config", {"fail_rate": 2}, headers={})
    assert bad.status == 400

    assert (await call(http, "POST", admin + "/reset", headers={})).body == {"reset": True}
    cleared = sb.record()
    assert cleared["requests"] == 0
    assert cleared["pairs"] == {}
    assert sb.config.quota_exhausted is True  # reset keeps the config
