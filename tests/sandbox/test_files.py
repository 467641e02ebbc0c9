"""The sandbox's Files API over real loopback HTTP: upload, list, retrieve and delete with
OpenAI's shapes and errors, paging across files made in the same second, a delete taking the
file out of every store, and what the record shows of file objects."""

from __future__ import annotations

import argparse
import hashlib
import time
from email.utils import parsedate_to_datetime

import pytest

from runner.sandbox import SandboxConfig, add_sandbox_arguments
from tests.sandbox.client import NO_BETA, V1, V2, Http, StartSandbox, call, error_of, pair, store
from tests.sandbox.uploading import files_url, list_files, upload

FILE_KEYS = {
    "id",
    "object",
    "bytes",
    "created_at",
    "filename",
    "purpose",
    "status",
    "expires_at",
    "status_details",
}
LIST_KEYS = {"object", "data", "first_id", "last_id", "has_more"}


async def test_upload_answers_a_file_object_on_the_date_header_clock(
    sandbox: StartSandbox, http: Http
) -> None:
    """An upload answers the file object; its created_at is the clock of the answer's Date
    header; the record holds its name, size and SHA-256, in no store yet."""
    sb = sandbox()
    content = b"# Guide\n\nHello, sandbox.\n"
    before = int(time.time())
    answer = await upload(http, sb, content, filename="Guide.MD")
    after = time.time()
    assert answer.status == 200, answer.text
    body = answer.body
    assert set(body) == FILE_KEYS
    assert body["id"].startswith("file-")
    assert body == {
        "id": body["id"],
        "object": "file",
        "bytes": len(content),
        "created_at": body["created_at"],
        "filename": "Guide.MD",
        "purpose": "assistants",
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }
    assert before <= body["created_at"] <= after
    date = parsedate_to_datetime(answer.headers["Date"]).timestamp()
    assert 0 <= date - body["created_at"] <= 1  # both whole seconds of the same clock

    record = sb.record()
    assert record["files"] == {
        body["id"]: {
            "filename": "Guide.MD",
            "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "purpose": "assistants",
            "created_at": body["created_at"],
            "deleted": False,
            "stores": [],
            "stores_when_deleted": [],
        }
    }
    assert record["uploads"] == {"applied": 1, "by_status": {"200": 1}}
    assert record["by_route"]["POST upload"] == 1
    assert record["writes_by_store"] == {}  # an upload is not a store write


async def test_retrieve_and_delete_then_404_in_the_error_envelope(
    sandbox: StartSandbox, http: Http
) -> None:
    """GET /files/{id} answers the object; DELETE answers {id, object, deleted}; after it a
    retrieve or a second delete is a 404 "No such File object", and the record says deleted."""
    sb = sandbox()
    created = (await upload(http, sb, b"some text")).body
    url = f"{files_url(sb)}/{created['id']}"
    retrieved = await call(http, "GET", url)
    assert (retrieved.status, retrieved.body) == (200, created)

    deleted = await call(http, "DELETE", url)
    assert (deleted.status, deleted.body) == (
        200,
        {"id": created["id"], "object": "file", "deleted": True},
    )
    for method in ("GET", "DELETE"):
        gone = await call(http, method, url)
        assert gone.status == 404
        assert error_of(gone) == {
            "message": f"No such File object: {created['id']}",
            "type": "invalid_request_error",
            "param": "id",
            "code": None,
        }
    unknown = await call(http, "GET", f"{files_url(sb)}/file-unknown")
    assert unknown.status == 404
    assert error_of(unknown)["message"] == "No such File object: file-unknown"

    listed = await list_files(http, sb)
    assert listed.body["data"] == []
    record = sb.record()
    assert record["files"][created["id"]]["deleted"] is True
    assert record["file_deletes"] == {"applied": 1, "not_found": 1}


async def test_list_pages_exactly_across_files_made_in_the_same_second(
    sandbox: StartSandbox, http: Http
) -> None:
    """Files sharing a created_at list in creation order (newest first by default), so paging
    with `after` and `limit` visits each file once, either way; the envelope is OpenAI's."""
    sb = sandbox()
    ids = [(await upload(http, sb, f"doc {i}".encode())).body["id"] for i in range(7)]
    created = {f["created_at"] for f in (await list_files(http, sb)).body["data"]}
    assert len(created) < len(ids)  # seven uploads in at most a few seconds: ties

    for order, expected in (("desc", ids[::-1]), ("asc", ids)):
        seen: list[str] = []
        after = ""
        while True:
            page = await list_files(http, sb, f"?limit=3&order={order}{after}")
            assert page.status == 200, page.text
            assert set(page.body) == LIST_KEYS
            data = [item["id"] for item in page.body["data"]]
            assert (page.body["first_id"], page.body["last_id"]) == (data[0], data[-1])
            seen += data
            if not page.body["has_more"]:
                break
            after = f"&after={data[-1]}"
        assert seen == expected

    whole = await list_files(http, sb)  # default: newest first, up to 10,000
    assert [item["id"] for item in whole.body["data"]] == ids[::-1]
    assert whole.body["has_more"] is False


async def test_list_filters_by_purpose_and_skips_deleted_files(
    sandbox: StartSandbox, http: Http
) -> None:
    """`purpose` lists only that purpose's files; deleted files are never listed, yet an
    `after` naming one still places the page."""
    sb = sandbox()
    a1 = (await upload(http, sb, b"a1")).body["id"]
    b1 = (await upload(http, sb, b"b1", purpose="batch")).body
    a2 = (await upload(http, sb, b"a2")).body["id"]
    a3 = (await upload(http, sb, b"a3")).body["id"]
    assert b1["expires_at"] == b1["created_at"] + 30 * 24 * 3600  # batch files expire

    only = await list_files(http, sb, "?purpose=assistants&order=asc")
    assert [item["id"] for item in only.body["data"]] == [a1, a2, a3]
    none = await list_files(http, sb, "?purpose=vision")
    assert none.body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    assert (await call(http, "DELETE", f"{files_url(sb)}/{a2}")).status == 200
    rest = await list_files(http, sb, "?purpose=assistants&order=asc")
    assert [item["id"] for item in rest.body["data"]] == [a1, a3]
    after_deleted = await list_files(http, sb, f"?order=asc&after={a2}")
    assert [item["id"] for item in after_deleted.body["data"]] == [a3]


@pytest.mark.parametrize(
    ("query", "param", "message"),
    [
        ("?limit=0", "limit", "integer below minimum value. Expected a value >= 1"),
        ("?limit=10001", "limit", "integer above maximum value. Expected a value <= 10000"),
        ("?order=newest", "order", "Invalid value: 'newest'. Supported values are"),
        ("?after=file-nope", "after", "no object with id 'file-nope' in this list"),
    ],
)
async def test_list_refuses_bad_paging(
    sandbox: StartSandbox, http: Http, query: str, param: str, message: str
) -> None:
    """A limit outside 1..10,000, an unknown order or an unknown cursor is a 400 naming it."""
    sb = sandbox()
    answer = await list_files(http, sb, query)
    assert answer.status == 400
    error = error_of(answer)
    assert (error["param"], error["type"]) == (param, "invalid_request_error")
    assert message in error["message"]


UNKNOWN_PURPOSE = (
    "'answers' is not one of ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', "
    "'evals'] - 'purpose'"
)


@pytest.mark.parametrize(
    ("kwargs", "message", "param"),
    [
        ({"content": None}, "'file' is a required property", None),
        ({"purpose": None}, "'purpose' is a required property", None),
        ({"purpose": "answers"}, UNKNOWN_PURPOSE, None),
        ({"content": b""}, "File is empty.", None),
        ({"content": b"x" * 1001}, "File is too large.", None),
        ({"filename": None}, "Invalid 'file': expected a file upload with a filename.", "file"),
        (
            {"extra": [("name", "x")]},
            "Unrecognized request argument supplied: name",
            "name",
        ),
    ],
)
async def test_upload_refusals_are_400s_and_make_nothing(
    sandbox: StartSandbox, http: Http, kwargs: dict[str, object], message: str, param: str | None
) -> None:
    """A missing file or purpose, an unknown purpose, an empty or too large file, a file part
    without a filename or an unknown field: 400 in the envelope, no file object."""
    sb = sandbox(file_max_bytes=1000)
    arguments: dict[str, object] = {"content": b"fine", **kwargs}
    content = arguments.pop("content")
    answer = await upload(http, sb, content, **arguments)  # type: ignore[arg-type]
    assert answer.status == 400, answer.text
    error = error_of(answer)
    assert (error["message"], error["param"]) == (message, param)
    assert error["type"] == "invalid_request_error"
    record = sb.record()
    assert (record["files"], record["uploads"]) == (
        {},
        {"applied": 0, "by_status": {"400": 1}},
    )


async def test_upload_at_the_size_limit_passes_and_a_json_body_is_refused(
    sandbox: StartSandbox, http: Http
) -> None:
    """A file of exactly file_max_bytes is taken; a body that is not a form is a 400, and a
    urlencoded form (no file in it) is refused for its missing file."""
    sb = sandbox(file_max_bytes=1000)
    assert (await upload(http, sb, b"x" * 1000)).status == 200
    answer = await call(http, "POST", files_url(sb), {"purpose": "assistants"})
    assert answer.status == 400
    assert "multipart/form-data" in error_of(answer)["message"]
    form = {**NO_BETA, "Content-Type": "application/x-www-form-urlencoded"}
    answer = await call(http, "POST", files_url(sb), headers=form, data=b"purpose=assistants")
    assert error_of(answer)["message"] == "'file' is a required property"


async def test_upload_reads_fields_in_any_order_and_takes_expires_after(
    sandbox: StartSandbox, http: Http
) -> None:
    """The file part may come before `purpose`; `expires_after` sets expires_at."""
    sb = sandbox()
    first = await upload(http, sb, b"file first", purpose="user_data", file_first=True)
    assert first.status == 200, first.text
    assert (first.body["purpose"], first.body["expires_at"]) == ("user_data", None)
    expiring = await upload(
        http,
        sb,
        b"expiring",
        extra=[("expires_after[anchor]", "created_at"), ("expires_after[seconds]", "3600")],
    )
    assert expiring.status == 200, expiring.text
    assert expiring.body["expires_at"] == expiring.body["created_at"] + 3600
    too_soon = await upload(
        http,
        sb,
        b"expiring",
        extra=[("expires_after[anchor]", "created_at"), ("expires_after[seconds]", "60")],
    )
    assert error_of(too_soon)["param"] == "expires_after.seconds"


async def test_the_files_api_ignores_the_openai_beta_header(
    sandbox: StartSandbox, http: Http
) -> None:
    """OpenAI-Beta belongs to the Assistants API: the Files API takes any, v1 retired or not."""
    sb = sandbox(retire_v1=True)
    for headers in (V1, V2):
        answer = await call(http, "GET", files_url(sb), headers=headers)
        assert answer.status == 200, answer.text


async def test_uploads_take_the_key_and_the_request_limit(
    sandbox: StartSandbox, http: Http
) -> None:
    """An upload without the key is a 401; one past the request bucket a 429; neither makes
    a file object."""
    sb = sandbox(rps=0.5, burst=1)
    assert (await upload(http, sb, b"first")).status == 200
    limited = await upload(http, sb, b"second")
    assert limited.status == 429
    assert "retry-after" in limited.headers
    sb.update(rps=None)
    unauthorized = await call(
        http, "POST", files_url(sb), headers={"Authorization": "Bearer sk-wrong"}
    )
    assert unauthorized.status == 401
    record = sb.record()
    assert record["uploads"] == {"applied": 1, "by_status": {"200": 1, "401": 1, "429": 1}}


async def test_delete_takes_the_file_out_of_every_store(sandbox: StartSandbox, http: Http) -> None:
    """A file uploaded then attached to two stores (one by a batch) leaves both when deleted:
    their lists and counts lack it, other files stay; the record shows where it was."""
    sb = sandbox(processing_ms=0)
    file_id = (await upload(http, sb, b"shared")).body["id"]
    other = (await upload(http, sb, b"other")).body["id"]
    attached = await call(http, "POST", store(sb, "vs_1") + "/files", {"file_id": file_id},
                          headers=V2)  # fmt: skip
    assert attached.status == 200, attached.text
    batch = await call(http, "POST", store(sb, "vs_2") + "/file_batches",
                       {"file_ids": [file_id, other]}, headers=V2)  # fmt: skip
    assert batch.status == 200, batch.text
    assert sb.record()["files"][file_id]["stores"] == ["vs_1", "vs_2"]

    assert (await call(http, "DELETE", f"{files_url(sb)}/{file_id}")).status == 200
    for store_id, left in (("vs_1", []), ("vs_2", [other])):
        listed = await call(http, "GET", store(sb, store_id) + "/files", headers=V2)
        assert [item["id"] for item in listed.body["data"]] == left
        counts = (await call(http, "GET", store(sb, store_id), headers=V2)).body["file_counts"]
        assert counts["total"] == len(left)
    record = sb.record()
    entry = record["files"][file_id]
    assert (entry["deleted"], entry["stores"], entry["stores_when_deleted"]) == (
        True,
        [],
        ["vs_1", "vs_2"],
    )
    assert record["files"][other]["stores"] == ["vs_2"]
    assert record["pairs"][f"vs_1/{file_id}"] == pair(attached=1)  # not a detach
    assert file_id not in record["vector_store_files"]["vs_1"]


async def test_a_deleted_file_cannot_be_attached(sandbox: StartSandbox, http: Http) -> None:
    """Attaching a deleted file's id is a 404, alone or in a batch (which then adds nothing);
    ids never uploaded stay attachable, as before the Files API."""
    sb = sandbox(processing_ms=0)
    file_id = (await upload(http, sb, b"gone soon")).body["id"]
    assert (await call(http, "DELETE", f"{files_url(sb)}/{file_id}")).status == 200
    single = await call(http, "POST", store(sb) + "/files", {"file_id": file_id}, headers=V2)
    assert single.status == 404
    assert error_of(single)["message"] == f"No file found with id '{file_id}'."
    batch = await call(http, "POST", store(sb) + "/file_batches",
                       {"file_ids": ["file-never-uploaded", file_id]}, headers=V2)  # fmt: skip
    assert batch.status == 404
    assert sb.record()["vector_store_files"].get("vs_1", {}) == {}
    legacy = await call(http, "POST", store(sb) + "/files", {"file_id": "file-1"}, headers=V2)
    assert legacy.status == 200


async def test_a_filename_holding_fail_gives_a_file_that_fails_in_a_store(
    sandbox: StartSandbox, http: Http
) -> None:
    """An upload named with `fail` gets an id holding it, so it ends failed in a store (the
    id rule of vector store files); other ids hold no marker."""
    sb = sandbox(processing_ms=0)
    failing = (await upload(http, sb, b"\x00\x01", filename="will-FAIL.pdf")).body["id"]
    plain = (await upload(http, sb, b"text", filename="fine.md")).body["id"]
    assert "fail" in failing
    assert "fail" not in plain
    added = await call(http, "POST", store(sb) + "/files", {"file_id": failing}, headers=V2)
    assert added.body["status"] == "failed"
    assert added.body["last_error"]["code"] == "invalid_file"


def test_file_max_bytes_flag_and_config() -> None:
    """--file-max-bytes sets file_max_bytes (default the API's 512 MiB); it must be >= 1."""
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    assert parser.parse_args([]).file_max_bytes == 512 * 1024**2 == SandboxConfig().file_max_bytes
    assert parser.parse_args(["--file-max-bytes", "2048"]).file_max_bytes == 2048
    with pytest.raises(ValueError, match="file_max_bytes must be an integer >= 1"):
        SandboxConfig(file_max_bytes=0)
