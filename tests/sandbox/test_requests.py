"""The sandbox: OpenAI's shapes and errors, rate limits, seeded faults and its own record, all
over real loopback HTTP."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from runner.errors import UsageError
from runner.sandbox import (
    Sandbox,
    SandboxConfig,
    SandboxThread,
    add_sandbox_arguments,
    confirm_attached_once,
    run_sandbox_command,
)
from runner.sandbox.limits import format_go_duration

KEY = "sk-sandbox"
V1 = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v1"}
V2 = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
NO_BETA = {"Authorization": f"Bearer {KEY}"}

StartSandbox = Callable[..., SandboxThread]
Http = aiohttp.ClientSession


@dataclass
class Answer:
    status: int
    body: Any  # parsed JSON, None for a non-JSON body
    text: str
    headers: CIMultiDictProxy[str]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] = V1,
    data: bytes | None = None,
    timeout: float = 10,
) -> Answer:
    async with http.request(
        method,
        url,
        json=body,
        data=data,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as resp:
        text = await resp.text()
        parsed = json.loads(text) if resp.content_type == "application/json" else None
        return Answer(resp.status, parsed, text, resp.headers)


def error_of(answer: Answer) -> dict[str, Any]:
    assert set(answer.body) == {"error"}
    error: dict[str, Any] = answer.body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def pair(**counts: Any) -> dict[str, Any]:
    """A record "pairs" entry: zeros (not preloaded) but for `counts`."""
    entry: dict[str, Any] = {
        "attached": 0,
        "posts_after_attached": 0,
        "preloaded": False,
        "updated": 0,
        "updates_when_absent": 0,
        "detached": 0,
        "deletes_when_absent": 0,
    }
    unknown = set(counts) - set(entry)
    assert not unknown, unknown
    return {**entry, **counts}


def asst(sb: SandboxThread, assistant_id: str = "asst_1") -> str:
    return f"{sb.base_url}/assistants/{assistant_id}/files"


def store(sb: SandboxThread, store_id: str = "vs_1") -> str:
    return f"{sb.base_url}/vector_stores/{store_id}"


# -- assistant files -------------------------------------------------------------------------


async def test_attach_assistant_file_answers_the_object(sandbox: StartSandbox, http: Http) -> None:
    """POST attaches and answers an assistant.file object; the record counts one attach."""
    sb = sandbox()
    before = int(time.time())
    answer = await call(http, "POST", asst(sb), {"file_id": "file-1"})
    assert answer.status == 200
    assert answer.body == {
        "id": "file-1",
        "object": "assistant.file",
        "created_at": answer.body["created_at"],
        "assistant_id": "asst_1",
    }
    assert before <= answer.body["created_at"] <= time.time()
    record = sb.record()
    assert record["pairs"]["asst_1/file-1"] == pair(attached=1)
    assert record["by_route"] == {"POST attach": 1}
    assert record["by_status"] == {"200": 1}


async def test_assistant_file_check_list_and_delete(sandbox: StartSandbox, http: Http) -> None:
    """GET finds an attached file, the list holds it, DELETE removes it, then GET is 404."""
    sb = sandbox()
    await call(http, "POST", asst(sb), {"file_id": "file-1"})
    check = await call(http, "GET", asst(sb) + "/file-1")
    assert check.status == 200
    assert check.body["id"] == "file-1"
    listed = await call(http, "GET", asst(sb))
    assert [item["id"] for item in listed.body["data"]] == ["file-1"]
    deleted = await call(http, "DELETE", asst(sb) + "/file-1")
    assert deleted.body == {"id": "file-1", "object": "assistant.file.deleted", "deleted": True}
    gone = await call(http, "GET", asst(sb) + "/file-1")
    assert gone.status == 404
    assert error_of(gone)["message"] == "No file found with id 'file-1' on assistant 'asst_1'."
    again = await call(http, "DELETE", asst(sb) + "/file-1")
    assert again.status == 404
    assert sb.record()["by_route"] == {
        "POST attach": 1,
        "GET check": 2,
        "GET list": 1,
        "DELETE file": 2,
    }


async def test_assistant_holds_at_most_20_files(sandbox: StartSandbox, http: Http) -> None:
    """The 21st distinct file is refused with a 400; an already attached one still says so."""
    sb = sandbox()
    for i in range(20):
        assert (await call(http, "POST", asst(sb), {"file_id": f"file-{i}"})).status == 200
    full = await call(http, "POST", asst(sb), {"file_id": "file-20"})
    assert full.status == 400
    assert error_of(full) == {
        "message": "Assistant asst_1 has reached the maximum number of files (20).",
        "type": "invalid_request_error",
        "param": "file_id",
        "code": None,
    }
    again = await call(http, "POST", asst(sb), {"file_id": "file-3"})
    assert "already attached" in error_of(again)["message"]
    assert "asst_1/file-20" not in sb.record()["pairs"]


async def test_already_attached_to_assistant_is_400_and_recorded(
    sandbox: StartSandbox, http: Http
) -> None:
    """A second POST of the same pair gets OpenAI's 400 and counts as a POST after attached."""
    sb = sandbox()
    await call(http, "POST", asst(sb), {"file_id": "file-1"})
    again = await call(http, "POST", asst(sb), {"file_id": "file-1"})
    assert again.status == 400
    assert error_of(again) == {
        "message": "The file file-1 is already attached to assistant asst_1.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert sb.record()["pairs"]["asst_1/file-1"] == pair(attached=1, posts_after_attached=1)


# -- auth, beta header, quota, bodies, URLs ---------------------------------------------------


async def test_wrong_key_is_401_with_the_key_masked(sandbox: StartSandbox, http: Http) -> None:
    """A wrong key gets 401 invalid_api_key naming only its last 4 characters."""
    sb = sandbox()
    wrong = {**V1, "Authorization": "Bearer sk-wrong-key-123456"}
    answer = await call(http, "POST", asst(sb), {"file_id": "file-1"}, headers=wrong)
    assert answer.status == 401
    error = error_of(answer)
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("Incorrect API key provided: " + "*" * 15 + "3456.")
    assert "sk-wrong" not in answer.text
    assert sb.record()["pairs"] == {}


async def test_missing_key_is_401(sandbox: StartSandbox, http: Http) -> None:
    """No Authorization header gets 401 invalid_api_key."""
    sb = sandbox()
    answer = await call(http, "GET", asst(sb), headers={"OpenAI-Beta": "assistants=v1"})
    assert answer.status == 401
    assert error_of(answer)["code"] == "invalid_api_key"
    assert "didn't provide an API key" in error_of(answer)["message"]


@pytest.mark.parametrize("headers", [NO_BETA, V2], ids=["no-beta", "v2"])
async def test_assistant_files_need_beta_v1(
    sandbox: StartSandbox, http: Http, headers: dict[str, str]
) -> None:
    """Assistant-file calls without `OpenAI-Beta: assistants=v1` get 400 invalid_beta."""
    sb = sandbox()
    answer = await call(http, "POST", asst(sb), {"file_id": "file-1"}, headers=headers)
    assert answer.status == 400
    assert error_of(answer)["code"] == "invalid_beta"
    assert "assistants=v1" in error_of(answer)["message"]
    assert sb.record()["pairs"] == {}


async def test_retire_v1_refuses_v1_but_not_vector_stores(
    sandbox: StartSandbox, http: Http
) -> None:
    """With retire_v1, assistants=v1 gets 400 invalid_beta saying it is retired; v2 works."""
    sb = sandbox(retire_v1=True)
    answer = await call(http, "POST", asst(sb), {"file_id": "file-1"})
    assert answer.status == 400
    assert error_of(answer)["code"] == "invalid_beta"
    assert "retired" in error_of(answer)["message"]
    added = await call(http, "POST", store(sb) + "/files", {"file_id": "file-1"}, headers=V2)
    assert added.status == 200


async def test_vector_stores_refuse_v1_and_accept_no_beta(
    sandbox: StartSandbox, http: Http
) -> None:
    """Vector store calls take assistants=v2 or no beta header; assistants=v1 is invalid_beta."""
    sb = sandbox()
    refused = await call(http, "POST", store(sb) + "/files", {"file_id": "file-1"}, headers=V1)
    assert refused.status == 400
    assert error_of(refused)["code"] == "invalid_beta"
    plain = await call(http, "POST", store(sb) + "/files", {"file_id": "file-1"}, headers=NO_BETA)
    assert plain.status == 200
    checked = await call(http, "GET", store(sb) + "/files/file-1", headers=V2)
    assert checked.status == 200


async def test_quota_exhausted_answers_429_until_turned_off(
    sandbox: StartSandbox, http: Http
) -> None:
    """quota_exhausted answers every call 429 insufficient_quota; update() turns it off live."""
    sb = sandbox(quota_exhausted=True)
    answer = await call(http, "GET", asst(sb))
    assert answer.status == 429
    assert error_of(answer) == {
        "message": answer.body["error"]["message"],
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
    assert answer.body["error"]["message"].startswith("You exceeded your current quota")
    assert "retry-after" not in answer.headers
    sb.update(quota_exhausted=False)
    assert (await call(http, "GET", asst(sb))).status == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("POST", "/assistants/asst_missing1/files", {"file_id": "file-1"},
         "No assistant found with id 'asst_missing1'."),
        ("POST", "/assistants/asst_1/files", {"file_id": "file-missing"},
         "No file found with id 'file-missing'."),
        ("GET", "/assistants/asst_missing/files/file-1", None,
         "No assistant found with id 'asst_missing'."),
        ("POST", "/vector_stores/vs_missing/files", {"file_id": "file-1"},
         "No vector store found with id 'vs_missing'."),
        ("POST", "/vector_stores/vs_1/files", {"file_id": "file-missing2"},
         "No file found with id 'file-missing2'."),
        ("POST", "/vector_stores/vs_1/file_batches", {"file_ids": ["file-1", "file-missing"]},
         "No file found with id 'file-missing'."),
        ("GET", "/vector_stores/vs_1/files/file-9", None,
         "No file found with id 'file-9' in vector store 'vs_1'."),
        ("GET", "/vector_stores/vs_1/file_batches/vsfb_nope", None,
         "No file batch found with id 'vsfb_nope' in vector store 'vs_1'."),
    ],
)  # fmt: skip
async def test_missing_ids_are_404(
    sandbox: StartSandbox, http: Http, method: str, path: str, body: Any, message: str
) -> None:
    """Ids holding `missing` (and pairs not in place) are 404 in OpenAI's envelope."""
    sb = sandbox()
    headers = V1 if "/assistants/" in path else V2
    answer = await call(http, method, sb.base_url + path, body, headers=headers)
    assert answer.status == 404
    assert error_of(answer) == {
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert sb.record()["pairs"] == {}


@pytest.mark.parametrize("data", [b"{", b"", b"file_id=file-1"])
async def test_body_that_is_not_json_is_400(sandbox: StartSandbox, http: Http, data: bytes) -> None:
    """A body that does not parse gets OpenAI's "could not parse the JSON body" 400."""
    sb = sandbox()
    headers = {**V1, "Content-Type": "application/json"}
    answer = await call(http, "POST", asst(sb), data=data, headers=headers)
    assert answer.status == 400
    assert error_of(answer)["message"].startswith(
        "We could not parse the JSON body of your request."
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_required_parameter"),
        ({"file_id": 7}, "invalid_type"),
        ({"file_id": ""}, "empty_string"),
        ({"file_id": "file-1", "tools": []}, "unknown_parameter"),
        ([], "invalid_type"),
    ],
)
async def test_bad_attach_body_is_400(
    sandbox: StartSandbox, http: Http, body: Any, code: str | None
) -> None:
    """A body without a usable file_id is a 400 with OpenAI's code, and attaches nothing."""
    sb = sandbox()
    answer = await call(http, "POST", asst(sb), body)
    assert answer.status == 400
    assert error_of(answer)["code"] == code
    assert sb.record()["pairs"] == {}


async def test_unknown_url_is_404_invalid_url(sandbox: StartSandbox, http: Http) -> None:
    """A path or method the API lacks gets 404 "Invalid URL (METHOD /path)"."""
    sb = sandbox()
    answer = await call(http, "GET", sb.base_url + "/assistants")
    assert answer.status == 404
    assert error_of(answer)["message"] == "Invalid URL (GET /v1/assistants)"
    put = await call(http, "PUT", asst(sb) + "/file-1")
    assert error_of(put)["message"] == "Invalid URL (PUT /v1/assistants/asst_1/files/file-1)"
    assert sb.record()["by_route"] == {"GET unknown": 1, "PUT unknown": 1}


# -- pagination -------------------------------------------------------------------------------


async def test_pagination_both_directions(sandbox: StartSandbox, http: Http) -> None:
    """limit/order/after/before page as OpenAI does, with first_id, last_id and has_more."""
    sb = sandbox()
    for i in range(5):
        await call(http, "POST", asst(sb), {"file_id": f"file-{i}"})

    async def page(query: str) -> tuple[list[str], Any, Any, bool]:
        body = (await call(http, "GET", asst(sb) + query)).body
        assert body["object"] == "list"
        ids = [item["id"] for item in body["data"]]
        return ids, body["first_id"], body["last_id"], body["has_more"]

    assert await page("?limit=2") == (["file-4", "file-3"], "file-4", "file-3", True)
    assert await page("?limit=2&after=file-3") == (["file-2", "file-1"], "file-2", "file-1", True)
    assert await page("?limit=2&after=file-1") == (["file-0"], "file-0", "file-0", False)
    assert await page("?limit=2&order=asc") == (["file-0", "file-1"], "file-0", "file-1", True)
    assert await page("?limit=2&order=asc&before=file-3") == (
        ["file-1", "file-2"], "file-1", "file-2", True,
    )  # fmt: skip
    assert await page("?limit=2&order=asc&before=file-1") == (["file-0"], "file-0", "file-0", False)
    assert await page("?limit=2&before=file-1") == (["file-3", "file-2"], "file-3", "file-2", True)
    assert await page("?after=file-0") == ([], None, None, False)
    assert await page("") == ([f"file-{i}" for i in range(4, -1, -1)], "file-4", "file-0", False)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?limit=0", "integer_below_min_value"),
        ("?limit=101", "integer_above_max_value"),
        ("?limit=ten", "invalid_type"),
        ("?order=newest", "invalid_value"),
        ("?after=file-nope", None),
        ("?filter=done", "invalid_value"),
    ],
)
async def test_list_rejects_bad_paging(
    sandbox: StartSandbox, http: Http, query: str, code: str | None
) -> None:
    """A limit outside 1..100, an unknown order or filter, or an unknown cursor is a 400."""
    sb = sandbox()
    answer = await call(http, "GET", store(sb) + "/files" + query, headers=V2)
    assert answer.status == 400
    assert error_of(answer)["code"] == code


# -- vector store files and batches ----------------------------------------------------------


async def test_vector_store_file_goes_from_in_progress_to_completed(
    sandbox: StartSandbox, http: Http
) -> None:
    """A file added is in_progress for processing_ms, then completed; lists filter by status."""
    sb = sandbox(processing_ms=400)
    added = await call(http, "POST", store(sb) + "/files", {"file_id": "file-1"}, headers=V2)
    assert added.body == {
        "id": "file-1",
        "object": "vector_store.file",
        "usage_bytes": 0,
        "created_at": added.body["created_at"],
        "vector_store_id": "vs_1",
        "status": "in_progress",
        "last_error": None,
        "chunking_strategy": {
            "type": "static",
            "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
        },
        "attributes": {},
    }
    pending = await call(http, "GET", store(sb) + "/files?filter=in_progress", headers=V2)
    assert [item["id"] for item in pending.body["data"]] == ["file-1"]
    await asyncio.sleep(0.45)
    done = await call(http, "GET", store(sb) + "/files/file-1", headers=V2)
    assert done.body["status"] == "completed"
    completed = await call(http, "GET", store(sb) + "/files?filter=completed", headers=V2)
    assert [item["id"] for item in completed.body["data"]] == ["file-1"]


async def test_file_id_with_fail_ends_failed_with_last_error(
    sandbox: StartSandbox, http: Http
) -> None:
    """A file id holding `fail` ends `failed` with last_error code invalid_file."""
    sb = sandbox(processing_ms=0)
    added = await call(http, "POST", store(sb) + "/files", {"file_id": "file-fail-1"}, headers=V2)
    assert added.status == 200
    assert added.body["status"] == "failed"
    assert added.body["last_error"]["code"] == "invalid_file"
    assert "file-fail-1" in added.body["last_error"]["message"]
    assert sb.record()["pairs"]["vs_1/file-fail-1"]["attached"] == 1


async def test_vs_fail_rate_fails_the_same_seeded_files(sandbox: StartSandbox, http: Http) -> None:
    """vs_fail_rate fails a fraction of files, the same ones for the same seed."""
    failed_sets = []
    for _ in range(2):
        sb = sandbox(processing_ms=0, vs_fail_rate=0.5, seed=4)
        failed = set()
        for i in range(40):
            body = {"file_id": f"file-{i}"}
            added = await call(http, "POST", store(sb) + "/files", body, headers=V2)
            if added.body["status"] == "failed":
                failed.add(added.body["id"])
        failed_sets.append(failed)
    assert failed_sets[0] == failed_sets[1]
    assert 5 < len(failed_sets[0]) < 35


async def test_file_already_in_store_answers_the_existing_object(
    sandbox: StartSandbox, http: Http
) -> None:
    """Adding a file already in the store answers 200 with it, and counts a POST after attached."""
    sb = sandbox(processing_ms=0)
    first = await call(http, "POST", store(sb) + "/files", {"file_id": "file-1"}, headers=V2)
    again = await call(http, "POST", store(sb) + "/files", {"file_id": "file-1"}, headers=V2)
    assert again.status == 200
    assert again.body == first.body
    assert sb.record()["pairs"]["vs_1/file-1"] == pair(attached=1, posts_after_attached=1)


async def test_batch_counts_files_and_lists_the_failed(sandbox: StartSandbox, http: Http) -> None:
    """A batch adds each file, reports file_counts, and lists its files by status."""
    sb = sandbox(processing_ms=0)
    ids = ["file-a", "file-fail-b", "file-c"]
    created = await call(http, "POST", store(sb) + "/file_batches", {"file_ids": ids}, headers=V2)
    assert created.status == 200
    batch = created.body
    assert batch["id"].startswith("vsfb_")
    assert batch["object"] == "vector_store.files_batch"
    assert batch["vector_store_id"] == "vs_1"
    assert batch["status"] == "completed"
    assert batch["file_counts"] == {
        "in_progress": 0,
        "completed": 2,
        "failed": 1,
        "cancelled": 0,
        "total": 3,
    }
    url = f"{store(sb)}/file_batches/{batch['id']}"
    assert (await call(http, "GET", url, headers=V2)).body == batch
    failed = await call(http, "GET", url + "/files?filter=failed", headers=V2)
    assert [item["id"] for item in failed.body["data"]] == ["file-fail-b"]
    assert failed.body["data"][0]["last_error"]["code"] == "invalid_file"
    every = await call(http, "GET", url + "/files?order=asc", headers=V2)
    assert [item["id"] for item in every.body["data"]] == sorted(ids)
    record = sb.record()
    assert [record["pairs"][f"vs_1/{i}"]["attached"] for i in ids] == [1, 1, 1]
    assert record["by_route"] == {"POST batch": 1, "GET batch": 1, "GET batch_files": 2}


async def test_batch_completes_when_its_files_leave_in_progress(
    sandbox: StartSandbox, http: Http
) -> None:
    """A batch is in_progress while its files are, then completed."""
    sb = sandbox(processing_ms=150)
    body = {"file_ids": ["file-1", "file-2"]}
    batch = (await call(http, "POST", store(sb) + "/file_batches", body, headers=V2)).body
    assert batch["status"] == "in_progress"
    assert batch["file_counts"]["in_progress"] == 2
    await asyncio.sleep(0.2)
    url = f"{store(sb)}/file_batches/{batch['id']}"
    later = (await call(http, "GET", url, headers=V2)).body
    assert later["status"] == "completed"
    assert later["file_counts"]["completed"] == 2


@pytest.mark.parametrize(("count", "status", "code"), [
    (0, 400, "empty_array"), (2001, 400, "array_above_max_length"), (2000, 200, None),
])  # fmt: skip
async def test_batch_size_bounds(
    sandbox: StartSandbox, http: Http, count: int, status: int, code: str | None
) -> None:
    """A batch takes 1 to 2,000 file ids; outside that it is a 400 and adds nothing."""
    sb = sandbox()
    body = {"file_ids": [f"file-{i}" for i in range(count)]}
    answer = await call(http, "POST", store(sb) + "/file_batches", body, headers=V2)
    assert answer.status == status
    if code is not None:
        assert error_of(answer)["code"] == code
        assert sb.record()["pairs"] == {}
    else:
        assert answer.body["file_counts"]["total"] == count
        assert sb.record()["attached_total"] == count


async def test_batch_keeps_files_already_in_store(sandbox: StartSandbox, http: Http) -> None:
    """A batch keeps a file already in the store and a repeated id once; both count as POSTs
    after attached."""
    sb = sandbox(processing_ms=0)
    await call(http, "POST", store(sb) + "/files", {"file_id": "file-1"}, headers=V2)
    body = {"file_ids": ["file-1", "file-2", "file-2"]}
    batch = (await call(http, "POST", store(sb) + "/file_batches", body, headers=V2)).body
    assert batch["file_counts"]["total"] == 2
    pairs = sb.record()["pairs"]
    assert pairs["vs_1/file-1"] == pair(attached=1, posts_after_attached=1)
    assert pairs["vs_1/file-2"] == pair(attached=1, posts_after_attached=1)


async def test_batch_cancel(sandbox: StartSandbox, http: Http) -> None:
    """Cancelling a batch cancels its in-progress files; a finished batch cannot be cancelled."""
    sb = sandbox(processing_ms=5000)
    body = {"file_ids": ["file-1", "file-2"]}
    batch = (await call(http, "POST", store(sb) + "/file_batches", body, headers=V2)).body
    url = f"{store(sb)}/file_batches/{batch['id']}"
    cancelled = await call(http, "POST", url + "/cancel", headers=V2)
    assert cancelled.body["status"] == "cancelled"
    assert cancelled.body["file_counts"]["cancelled"] == 2
    file = await call(http, "GET", store(sb) + "/files/file-1", headers=V2)
    assert file.body["status"] == "cancelled"
    assert (await call(http, "POST", url + "/cancel", headers=V2)).body["status"] == "cancelled"

    quick = sandbox(processing_ms=0)
    done = (await call(http, "POST", store(quick) + "/file_batches", body, headers=V2)).body
    refused = await call(
        http, "POST", f"{store(quick)}/file_batches/{done['id']}/cancel", headers=V2
    )
    assert refused.status == 400
    assert "completed" in error_of(refused)["message"]


# -- rate limits ------------------------------------------------------------------------------


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
    await asyncio.sleep(int(limited.headers["retry-after-ms"]) / 1000)
    assert (await call(http, "GET", asst(sb))).status == 200
    record = sb.record()
    assert record["rate_limited"] == {"requests": 1, "store": 0}
    assert record["by_status"] == {"200": 3, "429": 1}


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


# -- faults -----------------------------------------------------------------------------------


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


# -- the record and the admin routes ----------------------------------------------------------


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


async def test_vector_store_preload_is_in_place_and_processed(
    sandbox: StartSandbox, http: Http
) -> None:
    """Preloaded vector store files are there, already completed, and not counted as attached."""
    sb = sandbox(processing_ms=5000)
    assert sb.preload("vector_store", "vs_1", ["file-1"]) == 1
    check = await call(http, "GET", store(sb) + "/files/file-1", headers=V2)
    assert check.body["status"] == "completed"
    assert sb.record()["attached_total"] == 0


async def test_in_process_sandbox_in_the_callers_loop(http: Http) -> None:
    """Sandbox runs in the test's own loop: start, serve, record, stop."""
    sandbox = Sandbox(SandboxConfig(api_key="sk-other-key"))
    url = await sandbox.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
        headers = {**V1, "Authorization": "Bearer sk-other-key"}
        answer = await call(http, "POST", f"{url}/assistants/asst_1/files", {"file_id": "f"},
                            headers=headers)  # fmt: skip
        assert answer.status == 200
    finally:
        await sandbox.stop()
    assert confirm_attached_once(sandbox.record(), [("asst_1", "f")]) == []


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


def test_config_rejects_bad_values_and_unknown_settings(sandbox: StartSandbox) -> None:
    """Bad settings are a ValueError naming the field; unknown ones suggest the closest."""
    with pytest.raises(ValueError, match="fail_rate must be between 0 and 1"):
        SandboxConfig(fail_rate=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        SandboxConfig(fail_rate=0.6, slow_rate=0.6)
    sb = sandbox()
    with pytest.raises(ValueError, match="did you mean 'store_rpm'"):
        sb.update(store_rmp=300)


# -- the command ------------------------------------------------------------------------------

CLI = (
    "import sys, argparse; from runner.sandbox import add_sandbox_arguments, run_sandbox_command;"
    " p = argparse.ArgumentParser(); add_sandbox_arguments(p);"
    " sys.exit(run_sandbox_command(p.parse_args(sys.argv[1:])))"
)


async def test_cli_prints_its_url_serves_and_stops_on_sigterm(http: Http) -> None:
    """The command prints `listening on URL` first, takes OPENAI_API_KEY, exits 0 on SIGTERM."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-from-env-1234"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, "--port", "0", "--seed", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        files = f"{match.group(1)}/assistants/asst_1/files"
        assert (await call(http, "GET", files)).status == 401
        headers = {**V1, "Authorization": "Bearer sk-from-env-1234"}
        assert (await call(http, "GET", files, headers=headers)).status == 200
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 0, err
    assert out == b""
    assert err.decode().startswith("sandbox: 2 requests (200: 1, 401: 1)")


def test_cli_refuses_a_non_loopback_host() -> None:
    """--host must be a loopback address: anything else is a UsageError (exit 2)."""
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    with pytest.raises(UsageError, match="0.0.0.0 is not a loopback address") as caught:
        run_sandbox_command(parser.parse_args(["--host", "0.0.0.0"]))
    assert caught.value.exit_code == 2
