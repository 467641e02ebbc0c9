"""The sandbox's owners: retrieving a vector store or an assistant, `terse_404` (a pair's 404
that does not say whether the owner exists), a vector store's file cap (`store_max_files`), and
the record's count of writes per store. All over real loopback HTTP."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from runner.sandbox import SandboxConfig, add_sandbox_arguments
from tests.sandbox.test_requests import (
    KEY,
    NO_BETA,
    V1,
    V2,
    Http,
    StartSandbox,
    asst,
    call,
    error_of,
    pair,
    store,
)

VECTOR_STORE_KEYS = {
    "id", "object", "created_at", "name", "usage_bytes", "file_counts", "status",
    "expires_after", "expires_at", "last_active_at", "metadata",
}  # fmt: skip
ASSISTANT_KEYS = {
    "id", "object", "created_at", "name", "model", "instructions", "tools", "file_ids",
    "metadata",
}  # fmt: skip
TERSE = {"message": "Not found.", "type": "invalid_request_error", "param": None, "code": None}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def owner_url(sb: Any, kind: str, owner_id: str) -> str:
    """The owner's own URL: `/assistants/ID` or `/vector_stores/ID`."""
    return f"{sb.base_url}/{'assistants' if kind == 'assistant' else 'vector_stores'}/{owner_id}"


def counts(
    in_progress: int = 0, completed: int = 0, failed: int = 0, cancelled: int = 0
) -> dict[str, int]:
    return {
        "in_progress": in_progress,
        "completed": completed,
        "failed": failed,
        "cancelled": cancelled,
        "total": in_progress + completed + failed + cancelled,
    }


def full_message(store_id: str, limit: int) -> str:
    return (
        f"Vector store '{store_id}' is full: it holds the maximum of {limit} files. "
        "Remove files before adding more."
    )


# -- retrieving a vector store -----------------------------------------------------------------


async def test_retrieve_store_answers_the_vector_store_object(
    sandbox: StartSandbox, http: Http
) -> None:
    """A store never used answers an empty vector_store object in OpenAI's shape; after adds,
    file_counts count its files by status now, created_at stays, last_active_at moves on."""
    sb = sandbox(processing_ms=60_000)
    before = int(time.time())
    empty = await call(http, "GET", store(sb), headers=V2)
    assert empty.status == 200
    body = empty.body
    assert set(body) == VECTOR_STORE_KEYS
    created_at = body["created_at"]
    assert before <= created_at <= time.time()
    assert body == {
        "id": "vs_1",
        "object": "vector_store",
        "created_at": created_at,
        "name": None,
        "usage_bytes": 0,
        "file_counts": counts(),
        "status": "completed",
        "expires_after": None,
        "expires_at": None,
        "last_active_at": created_at,
        "metadata": {},
    }

    sb.preload("vector_store", "vs_1", [
        {"file_id": "f-done", "status": "completed"},
        {"file_id": "f-failed", "status": "failed"},
        {"file_id": "f-cancelled", "status": "cancelled"},
    ])  # fmt: skip
    added = await call(http, "POST", store(sb) + "/files", {"file_id": "f-new"}, headers=V2)
    assert added.status == 200
    batch = {"file_ids": ["f-b1", "f-b2"]}
    assert (await call(http, "POST", store(sb) + "/file_batches", batch, headers=V2)).status == 200
    after = (await call(http, "GET", store(sb), headers=NO_BETA)).body
    assert after["file_counts"] == counts(in_progress=3, completed=1, failed=1, cancelled=1)
    assert after["created_at"] == created_at
    assert created_at <= after["last_active_at"] <= time.time()

    deleted = await call(http, "DELETE", store(sb) + "/files/f-failed", headers=V2)
    assert deleted.status == 200
    after_delete = (await call(http, "GET", store(sb), headers=V2)).body
    assert after_delete["file_counts"] == counts(in_progress=3, completed=1, cancelled=1)


async def test_retrieve_store_counts_files_as_they_finish(
    sandbox: StartSandbox, http: Http
) -> None:
    """file_counts are computed when asked: in_progress turns to completed and failed."""
    sb = sandbox(processing_ms=300)
    for file_id in ("f-1", "f-2", "f-fail-3"):
        assert (await call(http, "POST", store(sb) + "/files", {"file_id": file_id},
                           headers=V2)).status == 200  # fmt: skip
    answer = await call(http, "GET", store(sb), headers=V2)
    assert answer.body["file_counts"] == counts(in_progress=3)
    await asyncio.sleep(0.4)
    answer = await call(http, "GET", store(sb), headers=V2)
    assert answer.body["file_counts"] == counts(completed=2, failed=1)


async def test_retrieve_store_is_a_read(sandbox: StartSandbox, http: Http) -> None:
    """The store's retrieve is counted as "GET store", takes no store token, is not a write,
    refuses assistants=v1 as every vector store call does, and 404s a `missing` id."""
    sb = sandbox(store_rpm=6)
    for _ in range(4):
        assert (await call(http, "GET", store(sb), headers=V2)).status == 200
    refused = await call(http, "GET", store(sb), headers=V1)
    assert refused.status == 400
    assert error_of(refused)["code"] == "invalid_beta"
    missing = await call(http, "GET", store(sb, "vs_missing"), headers=V2)
    assert missing.status == 404
    assert error_of(missing) == {
        "message": "No vector store found with id 'vs_missing'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    record = sb.record()
    assert record["by_route"] == {"GET store": 6}
    assert record["rate_limited"]["store"] == 0
    assert record["store_attach_peak_per_60s"] == {}
    assert record["writes_by_store"] == {}
    add = await call(http, "POST", store(sb) + "/files", {"file_id": "f-1"}, headers=V2)
    assert add.status == 200  # the store's one token was still there


# -- retrieving an assistant -------------------------------------------------------------------


async def test_retrieve_assistant_answers_the_assistant_object(
    sandbox: StartSandbox, http: Http
) -> None:
    """With assistants=v1, an assistant answers its object with file_ids in attach order; a
    detached file leaves file_ids; a never-used id exists, empty, as on its file routes."""
    sb = sandbox()
    before = int(time.time())
    for file_id in ("file-2", "file-1", "file-3"):
        assert (await call(http, "POST", asst(sb), {"file_id": file_id})).status == 200
    assert (await call(http, "DELETE", asst(sb) + "/file-3")).status == 200
    answer = await call(http, "GET", owner_url(sb, "assistant", "asst_1"), headers=V1)
    assert answer.status == 200
    body = answer.body
    assert set(body) == ASSISTANT_KEYS
    assert before <= body["created_at"] <= time.time()
    assert body == {
        "id": "asst_1",
        "object": "assistant",
        "created_at": body["created_at"],
        "name": None,
        "model": "gpt-4",
        "instructions": None,
        "tools": [],
        "file_ids": ["file-2", "file-1"],
        "metadata": {},
    }
    fresh = await call(http, "GET", owner_url(sb, "assistant", "asst_new"), headers=V1)
    assert fresh.status == 200
    assert fresh.body["file_ids"] == []
    again = await call(http, "GET", owner_url(sb, "assistant", "asst_new"), headers=V1)
    assert again.body == fresh.body  # created by its first use: created_at stays
    assert sb.record()["by_route"]["GET assistant"] == 3


async def test_retrieve_preloaded_assistant(sandbox: StartSandbox, http: Http) -> None:
    """A preloaded assistant was created with its files, an hour ago."""
    sb = sandbox()
    sb.preload("assistant", "asst_9", ["file-a", "file-b"])
    answer = await call(http, "GET", owner_url(sb, "assistant", "asst_9"), headers=V1)
    assert answer.body["file_ids"] == ["file-a", "file-b"]
    assert answer.body["created_at"] <= time.time() - 3500


@pytest.mark.parametrize("headers", [NO_BETA, V2], ids=["no-beta", "v2"])
async def test_retrieve_assistant_needs_beta_v1(
    sandbox: StartSandbox, http: Http, headers: dict[str, str]
) -> None:
    """The assistant's retrieve follows its files' rule: assistants=v1 or 400 invalid_beta."""
    sb = sandbox()
    answer = await call(http, "GET", owner_url(sb, "assistant", "asst_1"), headers=headers)
    assert answer.status == 400
    error = error_of(answer)
    assert error["code"] == "invalid_beta"
    assert "assistants=v1" in error["message"]


async def test_retrieve_assistant_retired_v1_and_missing(sandbox: StartSandbox, http: Http) -> None:
    """A `missing` assistant is 404 naming it; with retire_v1 the retrieve is refused too."""
    sb = sandbox()
    missing = await call(http, "GET", owner_url(sb, "assistant", "asst_missing"), headers=V1)
    assert missing.status == 404
    assert error_of(missing) == {
        "message": "No assistant found with id 'asst_missing'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    sb.update(retire_v1=True)
    retired = await call(http, "GET", owner_url(sb, "assistant", "asst_1"), headers=V1)
    assert retired.status == 400
    assert "retired" in error_of(retired)["message"]


# -- terse_404 ---------------------------------------------------------------------------------

PAIR_CALLS = [
    ("assistant", "GET", "/files/file-9", None),
    ("assistant", "DELETE", "/files/file-9", None),
    ("vector_store", "GET", "/files/file-9", None),
    ("vector_store", "POST", "/files/file-9", {"attributes": {"k": "v"}}),
    ("vector_store", "DELETE", "/files/file-9", None),
]
PAIR_IDS = ["asst-get", "asst-delete", "vs-get", "vs-update", "vs-delete"]


def headers_for(kind: str) -> dict[str, str]:
    return V1 if kind == "assistant" else V2


@pytest.mark.parametrize(("kind", "method", "path", "body"), PAIR_CALLS, ids=PAIR_IDS)
async def test_terse_404_off_names_the_file_and_the_owner(
    sandbox: StartSandbox, http: Http, kind: str, method: str, path: str, body: Any
) -> None:
    """By default a pair's 404 names the file and its owner, or the owner that is missing."""
    sb = sandbox()
    assert sb.config.terse_404 is False
    owner = "asst_1" if kind == "assistant" else "vs_1"
    where = "on assistant" if kind == "assistant" else "in vector store"
    absent = await call(http, method, owner_url(sb, kind, owner) + path, body,
                        headers=headers_for(kind))  # fmt: skip
    assert absent.status == 404
    assert error_of(absent)["message"] == f"No file found with id 'file-9' {where} '{owner}'."
    gone = await call(http, method, owner_url(sb, kind, owner + "_missing") + path, body,
                      headers=headers_for(kind))  # fmt: skip
    assert gone.status == 404
    assert error_of(gone)["message"].endswith(f"found with id '{owner}_missing'.")


@pytest.mark.parametrize(("kind", "method", "path", "body"), PAIR_CALLS, ids=PAIR_IDS)
async def test_terse_404_says_only_not_found_and_the_owner_tells(
    sandbox: StartSandbox, http: Http, kind: str, method: str, path: str, body: Any
) -> None:
    """With terse_404 a file absent from an existing owner and a pair of a missing owner get
    the same "Not found."; only the owner's retrieve tells them apart."""
    sb = sandbox(terse_404=True)
    headers = headers_for(kind)
    owner = "asst_1" if kind == "assistant" else "vs_1"
    absent = await call(http, method, owner_url(sb, kind, owner) + path, body, headers=headers)
    assert absent.status == 404
    assert error_of(absent) == TERSE
    missing_owner = owner + "_missing"
    gone = await call(http, method, owner_url(sb, kind, missing_owner) + path, body,
                      headers=headers)  # fmt: skip
    assert gone.status == 404
    assert error_of(gone) == TERSE
    assert (await call(http, "GET", owner_url(sb, kind, owner), headers=headers)).status == 200
    owner_gone = await call(http, "GET", owner_url(sb, kind, missing_owner), headers=headers)
    assert owner_gone.status == 404
    assert missing_owner in error_of(owner_gone)["message"]


async def test_terse_404_leaves_other_404s_and_found_pairs_alone(
    sandbox: StartSandbox, http: Http
) -> None:
    """terse_404 changes only a pair's 404: a present file answers as always, and a `missing`
    file id in an add, a missing batch, an add to a missing store keep their messages."""
    sb = sandbox(terse_404=True, processing_ms=0)
    sb.preload("vector_store", "vs_1", ["f-1"])
    assert (await call(http, "GET", store(sb) + "/files/f-1", headers=V2)).status == 200
    add = await call(http, "POST", store(sb) + "/files", {"file_id": "file-missing"}, headers=V2)
    assert error_of(add)["message"] == "No file found with id 'file-missing'."
    batch = await call(http, "GET", store(sb) + "/file_batches/vsfb_nope", headers=V2)
    assert "vsfb_nope" in error_of(batch)["message"]
    owner = await call(http, "POST", store(sb, "vs_missing") + "/files", {"file_id": "f-2"},
                       headers=V2)  # fmt: skip
    assert error_of(owner)["message"] == "No vector store found with id 'vs_missing'."
    assert (await call(http, "DELETE", store(sb) + "/files/f-1", headers=V2)).status == 200
    again = await call(http, "DELETE", store(sb) + "/files/f-1", headers=V2)
    assert error_of(again) == TERSE
    assert sb.record()["pairs"]["vs_1/f-1"] == pair(
        preloaded=True, detached=1, deletes_when_absent=1
    )


async def test_terse_404_is_set_live_through_the_admin_route(
    sandbox: StartSandbox, http: Http
) -> None:
    """The admin config route turns terse_404 on and off like any other setting."""
    sb = sandbox()
    admin = sb.base_url.removesuffix("/v1") + "/__sandbox/config"
    url = store(sb) + "/files/file-9"
    assert error_of(await call(http, "GET", url, headers=V2))["message"] != "Not found."
    turned = await call(http, "POST", admin, {"terse_404": True}, headers={})
    assert turned.body["terse_404"] is True
    assert error_of(await call(http, "GET", url, headers=V2)) == TERSE
    await call(http, "POST", admin, {"terse_404": False}, headers={})
    assert error_of(await call(http, "GET", url, headers=V2))["message"] != "Not found."
    bad = await call(http, "POST", admin, {"terse_404": "yes"}, headers={})
    assert bad.status == 400
    assert "terse_404 must be true or false" in error_of(bad)["message"]


# -- store_max_files ---------------------------------------------------------------------------


async def test_add_to_a_full_store_is_refused_until_a_file_leaves(
    sandbox: StartSandbox, http: Http
) -> None:
    """At N files a new add is a 400 naming the store and N, nothing applied; a file already
    there is accepted; after a delete the add goes through; other stores have their own room."""
    sb = sandbox(store_max_files=2, processing_ms=0)
    url = store(sb) + "/files"
    for file_id in ("f-1", "f-2"):
        assert (await call(http, "POST", url, {"file_id": file_id}, headers=V2)).status == 200
    refused = await call(http, "POST", url, {"file_id": "f-3"}, headers=V2)
    assert refused.status == 400
    assert error_of(refused) == {
        "message": full_message("vs_1", 2),
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert "vs_1/f-3" not in sb.record()["pairs"]
    present = await call(http, "POST", url, {"file_id": "f-1"}, headers=V2)
    assert present.status == 200
    assert present.body["id"] == "f-1"
    assert sb.record()["pairs"]["vs_1/f-1"] == pair(attached=1, posts_after_attached=1)
    other = await call(http, "POST", store(sb, "vs_2") + "/files", {"file_id": "f-3"}, headers=V2)
    assert other.status == 200

    assert (await call(http, "DELETE", url + "/f-2", headers=V2)).status == 200
    added = await call(http, "POST", url, {"file_id": "f-3"}, headers=V2)
    assert added.status == 200
    assert sorted(sb.record()["vector_store_files"]["vs_1"]) == ["f-1", "f-3"]
    again = await call(http, "POST", url, {"file_id": "f-4"}, headers=V2)
    assert error_of(again)["message"] == full_message("vs_1", 2)


async def test_batch_over_capacity_is_refused_whole(sandbox: StartSandbox, http: Http) -> None:
    """A batch is refused, none of its files added and no batch made, when the store's files
    plus the batch's new ones exceed N; repeats and files already there take no room."""
    sb = sandbox(store_max_files=3, processing_ms=0)
    url = store(sb)
    assert (await call(http, "POST", url + "/files", {"file_id": "f-1"}, headers=V2)).status == 200
    over = {"file_ids": ["f-1", "f-2", "f-3", "f-4"]}
    refused = await call(http, "POST", url + "/file_batches", over, headers=V2)
    assert refused.status == 400
    assert error_of(refused) == {
        "message": full_message("vs_1", 3),
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    record = sb.record()
    assert list(record["vector_store_files"]["vs_1"]) == ["f-1"]
    assert set(record["pairs"]) == {"vs_1/f-1"}
    files_form = {"files": [{"file_id": f"f-{i}"} for i in range(2, 5)]}
    refused_files = await call(http, "POST", url + "/file_batches", files_form, headers=V2)
    assert error_of(refused_files)["message"] == full_message("vs_1", 3)

    fits = {"file_ids": ["f-1", "f-2", "f-3", "f-2"]}
    batch = await call(http, "POST", url + "/file_batches", fits, headers=V2)
    assert batch.status == 200
    assert batch.body["file_counts"]["total"] == 3
    known = await call(http, "POST", url + "/file_batches", {"file_ids": ["f-3", "f-1"]},
                       headers=V2)  # fmt: skip
    assert known.status == 200
    one_more = await call(http, "POST", url + "/file_batches", {"file_ids": ["f-5"]}, headers=V2)
    assert error_of(one_more)["message"] == full_message("vs_1", 3)
    assert (await call(http, "GET", url, headers=V2)).body["file_counts"]["total"] == 3


async def test_full_store_re_adds_a_cancelled_file_and_follows_live_changes(
    sandbox: StartSandbox, http: Http
) -> None:
    """A cancelled file is replaced in place, so re-adding it to a full store passes; a store
    preloaded beyond N refuses new files; the cap is changed and lifted live."""
    sb = sandbox(store_max_files=2, processing_ms=0)
    sb.preload("vector_store", "vs_1", [
        "f-1", {"file_id": "f-2", "status": "cancelled"}, "f-3",
    ])  # fmt: skip
    url = store(sb) + "/files"
    readded = await call(http, "POST", url, {"file_id": "f-2"}, headers=V2)
    assert readded.status == 200
    assert readded.body["status"] == "completed"
    assert (await call(http, "POST", url, {"file_id": "f-4"}, headers=V2)).status == 400
    sb.update(store_max_files=4)
    assert (await call(http, "POST", url, {"file_id": "f-4"}, headers=V2)).status == 200
    assert (await call(http, "POST", url, {"file_id": "f-5"}, headers=V2)).status == 400
    sb.update(store_max_files=None)
    assert (await call(http, "POST", url, {"file_id": "f-5"}, headers=V2)).status == 200


def test_store_max_files_and_terse_404_settings() -> None:
    """The flags parse (defaults: no cap, terse off); the config refuses a cap below 1."""
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    args = parser.parse_args(["--store-max-files", "3", "--terse-404"])
    assert (args.store_max_files, args.terse_404) == (3, True)
    defaults = parser.parse_args([])
    assert (defaults.store_max_files, defaults.terse_404) == (None, False)
    for bad in ("0", "2.5", "x"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--store-max-files", bad])
    for value in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="store_max_files"):
            SandboxConfig(store_max_files=value)  # type: ignore[arg-type]
    assert SandboxConfig().to_dict()["store_max_files"] is None


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
