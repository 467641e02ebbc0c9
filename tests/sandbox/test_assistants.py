"""The sandbox's assistants: attaching, checking, listing and deleting an assistant's
files (at most 20), and retrieving the assistant itself. All over real loopback HTTP."""

from __future__ import annotations

import time

import pytest

from tests.sandbox.client import (
    NO_BETA,
    V1,
    V2,
    Http,
    StartSandbox,
    asst,
    call,
    error_of,
    owner_url,
    pair,
)

ASSISTANT_KEYS = {
    "id", "object", "created_at", "name", "model", "instructions", "tools", "file_ids",
    "metadata",
}  # fmt: skip


# -- assistant files ---------------------------------------------------------------------------


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
