"""What the sandbox checks on every request before its route answers, as the live API
does: the key, the OpenAI-Beta header, quota, bodies, unknown URLs, ids, list paging; and
`terse_404` (a pair's 404 that does not say whether the owner exists). All over real
loopback HTTP."""

from __future__ import annotations

from typing import Any

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
    store,
)

TERSE = {"message": "Not found.", "type": "invalid_request_error", "param": None, "code": None}


# -- auth, beta header, quota, bodies, URLs ----------------------------------------------------


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


# -- pagination --------------------------------------------------------------------------------


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
