"""The sandbox's vector store files as the live API keeps them: attributes (checked, updated,
kept on a repeated add), chunking as reported, the refusals, full objects in every list, the
record's per-pair counts and current content, and preloading files with their state."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.client import V2, Http, StartSandbox, call, error_of, pair, store

AUTO_AS_REPORTED = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
}
STATIC_SMALL = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 100},
}


# -- what a file reports -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunking", "reported"),
    [(None, AUTO_AS_REPORTED), ({"type": "auto"}, AUTO_AS_REPORTED), (STATIC_SMALL, STATIC_SMALL)],
)
async def test_chunking_is_reported_as_the_live_api_does(
    sandbox: StartSandbox, http: Http, chunking: Any, reported: dict[str, Any]
) -> None:
    """No strategy or `auto` reports the API's static 800/400; a static one reports itself,
    in the add's answer, a retrieve and a list."""
    sb = sandbox()
    body: dict[str, Any] = {"file_id": "f-1", "attributes": {"lang": "en"}}
    if chunking is not None:
        body["chunking_strategy"] = chunking
    added = await call(http, "POST", store(sb) + "/files", body, headers=V2)
    assert added.status == 200
    assert added.body["chunking_strategy"] == reported
    assert added.body["attributes"] == {"lang": "en"}
    check = await call(http, "GET", store(sb) + "/files/f-1", headers=V2)
    assert check.body["chunking_strategy"] == reported
    listed = await call(http, "GET", store(sb) + "/files", headers=V2)
    assert listed.body["data"][0]["chunking_strategy"] == reported
    state = sb.record()["vector_store_files"]["vs_1"]["f-1"]
    assert state["chunking_strategy"] == reported


async def test_adding_a_file_already_there_keeps_its_attributes_and_chunking(
    sandbox: StartSandbox, http: Http
) -> None:
    """A second add with other attributes and chunking answers 200 with the object unchanged,
    and counts a POST after attached, not an update."""
    sb = sandbox(processing_ms=0)
    first = {"file_id": "f-1", "attributes": {"v": 1}, "chunking_strategy": STATIC_SMALL}
    assert (await call(http, "POST", store(sb) + "/files", first, headers=V2)).status == 200
    second = {"file_id": "f-1", "attributes": {"v": 2}, "chunking_strategy": {"type": "auto"}}
    again = await call(http, "POST", store(sb) + "/files", second, headers=V2)
    assert again.status == 200
    assert (again.body["attributes"], again.body["chunking_strategy"]) == ({"v": 1}, STATIC_SMALL)
    batch = {"files": [{"file_id": "f-1", "attributes": {"v": 3}}]}
    assert (await call(http, "POST", store(sb) + "/file_batches", batch, headers=V2)).status == 200
    record = sb.record()
    assert record["pairs"]["vs_1/f-1"] == pair(attached=1, posts_after_attached=2)
    assert record["vector_store_files"]["vs_1"]["f-1"] == {
        "status": "completed",
        "attributes": {"v": 1},
        "chunking_strategy": STATIC_SMALL,
        "last_error": None,
    }


# -- the update call ---------------------------------------------------------------------------


async def test_update_replaces_the_whole_attribute_set(sandbox: StartSandbox, http: Http) -> None:
    """POST .../files/{id} {"attributes"} replaces all attributes (null clears them), keeps
    the chunking, answers the file object, and is counted per pair."""
    sb = sandbox(processing_ms=0)
    body = {"file_id": "f-1", "attributes": {"a": "x", "b": 1}, "chunking_strategy": STATIC_SMALL}
    await call(http, "POST", store(sb) + "/files", body, headers=V2)
    url = store(sb) + "/files/f-1"
    updated = await call(http, "POST", url, {"attributes": {"c": True, "d": 2.5}}, headers=V2)
    assert updated.status == 200
    assert updated.body["object"] == "vector_store.file"
    assert updated.body["attributes"] == {"c": True, "d": 2.5}
    assert updated.body["chunking_strategy"] == STATIC_SMALL
    assert (await call(http, "GET", url, headers=V2)).body["attributes"] == {"c": True, "d": 2.5}
    cleared = await call(http, "POST", url, {"attributes": None}, headers=V2)
    assert cleared.body["attributes"] == {}
    record = sb.record()
    assert record["pairs"]["vs_1/f-1"] == pair(attached=1, updated=2)
    assert record["vector_store_files"]["vs_1"]["f-1"]["attributes"] == {}
    assert record["by_route"]["POST update"] == 2


async def test_update_of_a_file_not_in_the_store_is_404(sandbox: StartSandbox, http: Http) -> None:
    """An update for a file the store does not hold is a 404, counted as updates_when_absent;
    an update without `attributes` or with another field is a 400."""
    sb = sandbox()
    url = store(sb) + "/files/f-none"
    absent = await call(http, "POST", url, {"attributes": {"a": "b"}}, headers=V2)
    assert absent.status == 404
    assert error_of(absent)["message"] == "No file found with id 'f-none' in vector store 'vs_1'."
    missing = await call(http, "POST", url, {}, headers=V2)
    assert (missing.status, error_of(missing)["param"]) == (400, "attributes")
    extra = await call(http, "POST", url, {"attributes": {}, "file_id": "f-2"}, headers=V2)
    assert (extra.status, error_of(extra)["code"]) == (400, "unknown_parameter")
    assert sb.record()["pairs"]["vs_1/f-none"] == pair(updates_when_absent=1)


async def test_delete_is_counted_and_a_second_is_404(sandbox: StartSandbox, http: Http) -> None:
    """A delete that removes a file counts `detached`; another finds nothing (404) and counts
    `deletes_when_absent`; the file leaves vector_store_files."""
    sb = sandbox()
    await call(http, "POST", store(sb) + "/files", {"file_id": "f-1"}, headers=V2)
    url = store(sb) + "/files/f-1"
    gone = await call(http, "DELETE", url, headers=V2)
    assert gone.body == {"id": "f-1", "object": "vector_store.file.deleted", "deleted": True}
    assert (await call(http, "DELETE", url, headers=V2)).status == 404
    record = sb.record()
    assert record["pairs"]["vs_1/f-1"] == pair(attached=1, detached=1, deletes_when_absent=1)
    assert record["vector_store_files"] == {"vs_1": {}}


# -- refusals ----------------------------------------------------------------------------------

LONG_KEY = "k" * 65


@pytest.mark.parametrize(
    ("attributes", "param", "words"),
    [
        ({f"k{i}": i for i in range(17)}, "attributes", "at most 16 properties"),
        ({LONG_KEY: "v"}, "attributes", "maximum length 64"),
        ({"k": "v" * 513}, "attributes.k", "maximum length 512"),
        ({"k": {"nested": 1}}, "attributes.k", "but got an object"),
        ({"k": [1]}, "attributes.k", "but got an array"),
        ({"k": None}, "attributes.k", "but got null"),
        ("text", "attributes", "expected an object"),
    ],
)
async def test_bad_attributes_are_refused(
    sandbox: StartSandbox, http: Http, attributes: Any, param: str, words: str
) -> None:
    """Too many keys, a long key, a long string, a value that is not a string, number or
    boolean: 400 invalid_request_error naming the field, for adds, updates and batches alike;
    nothing is applied."""
    sb = sandbox()
    sb.preload("vector_store", "vs_1", [{"file_id": "f-held", "attributes": {"old": 1}}])
    url = store(sb)
    requests = [
        ("/files", {"file_id": "f-1", "attributes": attributes}, param),
        ("/files/f-held", {"attributes": attributes}, param),
        ("/file_batches", {"file_ids": ["f-2"], "attributes": attributes}, param),
        (
            "/file_batches",
            {"files": [{"file_id": "f-3"}, {"file_id": "f-4", "attributes": attributes}]},
            f"files[1].{param}",
        ),
    ]
    for path, body, named in requests:
        answer = await call(http, "POST", url + path, body, headers=V2)
        assert answer.status == 400, path
        error = error_of(answer)
        assert (error["type"], error["param"]) == ("invalid_request_error", named)
        assert words in error["message"]
    state = sb.record()["vector_store_files"]["vs_1"]
    assert state == {"f-held": state["f-held"]}
    assert state["f-held"]["attributes"] == {"old": 1}


async def test_the_attribute_limits_themselves_pass(sandbox: StartSandbox, http: Http) -> None:
    """16 keys, a 64-character key and a 512-character string are accepted."""
    sb = sandbox()
    attributes: dict[str, Any] = {f"k{i}": i for i in range(14)}
    attributes["k" * 64] = "v" * 512
    attributes["flag"] = False
    answer = await call(
        http, "POST", store(sb) + "/files", {"file_id": "f-1", "attributes": attributes},
        headers=V2,
    )  # fmt: skip
    assert answer.status == 200
    assert answer.body["attributes"] == attributes


@pytest.mark.parametrize(
    ("chunking", "param", "words"),
    [
        ({"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
         "chunking_strategy.static.max_chunk_size_tokens", ">= 100"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
         "chunking_strategy.static.max_chunk_size_tokens", "<= 4096"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 401}},
         "chunking_strategy.static.chunk_overlap_tokens", "half of max_chunk_size_tokens"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": -1}},
         "chunking_strategy.static.chunk_overlap_tokens", ">= 0"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800}},
         "chunking_strategy.static.chunk_overlap_tokens", "Missing required parameter"),
        ({"type": "static"}, "chunking_strategy.static", "Missing required parameter"),
        ({"type": "semantic"}, "chunking_strategy.type", "'auto' and 'static'"),
        ({"type": "auto", "static": {}}, "chunking_strategy.static", "Unrecognized"),
    ],
)  # fmt: skip
async def test_bad_chunking_is_refused(
    sandbox: StartSandbox, http: Http, chunking: Any, param: str, words: str
) -> None:
    """A static size outside 100..4096, an overlap over half of it or negative, a missing
    field, an unknown type: 400 naming the field, for an add and in a batch's `files`."""
    sb = sandbox()
    single = await call(
        http, "POST", store(sb) + "/files", {"file_id": "f-1", "chunking_strategy": chunking},
        headers=V2,
    )  # fmt: skip
    assert single.status == 400
    assert error_of(single)["param"] == param
    assert words in error_of(single)["message"]
    body = {"files": [{"file_id": "f-2", "chunking_strategy": chunking}]}
    batch = await call(http, "POST", store(sb) + "/file_batches", body, headers=V2)
    assert error_of(batch)["param"] == f"files[0].{param}"
    assert sb.record()["vector_store_files"] == {"vs_1": {}}


async def test_batch_with_files_and_file_ids_is_refused(sandbox: StartSandbox, http: Http) -> None:
    """`files` with `file_ids` in one batch is a 400 naming `files`."""
    sb = sandbox()
    body = {"file_ids": ["f-1"], "files": [{"file_id": "f-2"}]}
    answer = await call(http, "POST", store(sb) + "/file_batches", body, headers=V2)
    assert answer.status == 400
    error = error_of(answer)
    assert (error["type"], error["param"]) == ("invalid_request_error", "files")
    assert "mutually exclusive" in error["message"]


# -- lists -------------------------------------------------------------------------------------


async def test_lists_return_full_objects_on_every_page(sandbox: StartSandbox, http: Http) -> None:
    """Store and batch file lists give full objects (attributes, chunking_strategy, status)
    on every page, and `filter` picks by status."""
    sb = sandbox(processing_ms=0)
    files = [
        {"file_id": f"f-{i}", "attributes": {"n": i}, "chunking_strategy": STATIC_SMALL}
        for i in range(5)
    ] + [{"file_id": "f-fail", "attributes": {"n": 99}}]
    batch = await call(http, "POST", store(sb) + "/file_batches", {"files": files}, headers=V2)
    batch_url = f"{store(sb)}/file_batches/{batch.body['id']}/files"
    for url in (store(sb) + "/files", batch_url):
        seen: dict[str, dict[str, Any]] = {}
        after = ""
        while True:
            page = await call(http, "GET", f"{url}?limit=2&order=asc{after}", headers=V2)
            seen.update({item["id"]: item for item in page.body["data"]})
            if not page.body["has_more"]:
                break
            after = f"&after={page.body['last_id']}"
        assert len(seen) == 6
        assert seen["f-3"]["attributes"] == {"n": 3}
        assert seen["f-3"]["chunking_strategy"] == STATIC_SMALL
        assert seen["f-fail"]["chunking_strategy"] == AUTO_AS_REPORTED
        assert seen["f-fail"]["status"] == "failed"
        failed = await call(http, "GET", url + "?filter=failed", headers=V2)
        assert [item["id"] for item in failed.body["data"]] == ["f-fail"]
        assert failed.body["data"][0]["attributes"] == {"n": 99}
        assert failed.body["data"][0]["last_error"]["code"] == "invalid_file"


# -- preload -----------------------------------------------------------------------------------


async def test_preload_with_attributes_status_and_chunking(
    sandbox: StartSandbox, http: Http
) -> None:
    """Preloaded files carry the attributes, chunking, status and last_error given; plain ids
    still work; the admin route takes `files` objects too."""
    sb = sandbox(processing_ms=5000)
    added = sb.preload(
        "vector_store",
        "vs_1",
        [
            "f-plain",
            {"file_id": "f-stale", "attributes": {"v": 1}, "chunking_strategy": STATIC_SMALL},
            {"file_id": "f-broken", "status": "failed",
             "last_error": {"code": "unsupported_file", "message": "not text"}},
            {"file_id": "f-busy", "status": "in_progress"},
        ],
    )  # fmt: skip
    assert added == 4
    listed = await call(http, "GET", store(sb) + "/files?limit=10", headers=V2)
    by_id = {item["id"]: item for item in listed.body["data"]}
    assert by_id["f-plain"]["attributes"] == {}
    assert by_id["f-plain"]["status"] == "completed"
    assert by_id["f-stale"]["attributes"] == {"v": 1}
    assert by_id["f-stale"]["chunking_strategy"] == STATIC_SMALL
    assert by_id["f-broken"]["status"] == "failed"
    assert by_id["f-broken"]["last_error"] == {"code": "unsupported_file", "message": "not text"}
    assert by_id["f-busy"]["status"] == "in_progress"
    admin = sb.base_url.removesuffix("/v1") + "/__sandbox/preload"
    body = {
        "owner_kind": "vector_store",
        "owner": "vs_2",
        "file_ids": ["f-a"],
        "files": [{"file_id": "f-b", "attributes": {"lang": "fr"}, "status": "cancelled"}],
    }
    assert (await call(http, "POST", admin, body, headers={})).body == {"preloaded": 2}
    state = sb.record()["vector_store_files"]["vs_2"]
    assert state["f-b"] == {
        "status": "cancelled",
        "attributes": {"lang": "fr"},
        "chunking_strategy": AUTO_AS_REPORTED,
        "last_error": None,
    }
    assert sb.record()["pairs"]["vs_2/f-b"] == pair(preloaded=True)


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"file_id": "f-1", "attributes": {"k": [1]}}, "f-1: Invalid type for 'attributes.k'"),
        ({"file_id": "f-1", "status": "done"}, "status must be one of"),
        ({"file_id": "f-1", "last_error": {"code": "x", "message": "y"}}, "needs status"),
        ({"file_id": "f-1", "colour": "red"}, "unknown preload field(s) colour"),
        ({"attributes": {}}, "non-empty strings"),
        (7, "a file id or an object"),
    ],
)
async def test_preload_refuses_bad_items(
    sandbox: StartSandbox, http: Http, item: Any, words: str
) -> None:
    """A bad preload item is a ValueError (a 400 over the admin route) and preloads nothing."""
    sb = sandbox()
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        sb.preload("vector_store", "vs_1", ["f-ok", item])
    admin = sb.base_url.removesuffix("/v1") + "/__sandbox/preload"
    body = {"owner_kind": "vector_store", "owner": "vs_1", "files": [item]}
    assert (await call(http, "POST", admin, body, headers={})).status == 400
    assert sb.record()["vector_store_files"] == {}


def test_assistant_preload_takes_ids_only(sandbox: StartSandbox) -> None:
    """Assistant files have no attributes: an object with more than `file_id` is refused."""
    sb = sandbox()
    assert sb.preload("assistant", "asst_1", [{"file_id": "f-1"}, "f-2"]) == 2
    with pytest.raises(ValueError, match="unknown preload field"):
        sb.preload("assistant", "asst_1", [{"file_id": "f-3", "attributes": {}}])
