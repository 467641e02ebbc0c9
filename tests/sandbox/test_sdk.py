"""OpenAI's own Python SDK against the sandbox: every vector-store file and file-batch call the
product uses, parsed into the SDK's models, and its errors parsed from the sandbox's envelope.
If the SDK can read the sandbox, the sandbox speaks the live API's shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.client import StartSandbox, pair

openai = pytest.importorskip("openai", reason="the SDK is in the `test` extra")


def client_for(base_url: str) -> Any:
    return openai.OpenAI(base_url=base_url, api_key="sk-sandbox", max_retries=0, timeout=10)


def test_sdk_vector_store_files(sandbox: StartSandbox) -> None:
    """files.create / retrieve / update / list (auto-paging) / delete parse into the SDK's
    models with attributes, chunking_strategy and status; the sandbox's record agrees."""
    sb = sandbox(processing_ms=0)
    files = client_for(sb.base_url).vector_stores.files
    created = files.create(
        vector_store_id="vs_1",
        file_id="file-0",
        attributes={"lang": "en", "year": 2024, "public": True},
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 150},
        },
    )
    assert created.id == "file-0"
    assert created.vector_store_id == "vs_1"
    assert created.attributes == {"lang": "en", "year": 2024, "public": True}
    assert created.chunking_strategy is not None
    assert created.chunking_strategy.type == "static"
    assert created.chunking_strategy.static.max_chunk_size_tokens == 300
    assert created.chunking_strategy.static.chunk_overlap_tokens == 150
    for i in range(1, 7):
        auto = files.create(vector_store_id="vs_1", file_id=f"file-{i}",
                            chunking_strategy={"type": "auto"})  # fmt: skip
        assert auto.chunking_strategy is not None
        assert auto.chunking_strategy.static.max_chunk_size_tokens == 800

    retrieved = files.retrieve("file-0", vector_store_id="vs_1")
    assert retrieved.status == "completed"
    assert retrieved.last_error is None
    updated = files.update("file-0", vector_store_id="vs_1", attributes={"lang": "fr"})
    assert updated.attributes == {"lang": "fr"}
    assert updated.chunking_strategy is not None
    assert updated.chunking_strategy.static.max_chunk_size_tokens == 300

    listed = list(files.list(vector_store_id="vs_1", limit=2, order="asc"))
    assert sorted(item.id for item in listed) == [f"file-{i}" for i in range(7)]
    assert all(item.status == "completed" for item in listed)
    assert {item.id: item.attributes for item in listed}["file-0"] == {"lang": "fr"}
    deleted = files.delete("file-3", vector_store_id="vs_1")
    assert (deleted.id, deleted.deleted) == ("file-3", True)

    record = sb.record()
    assert record["by_route"]["GET list"] == 4  # 7 files, 2 a page: the SDK paged through
    assert record["pairs"]["vs_1/file-0"] == pair(attached=1, updated=1)
    assert record["pairs"]["vs_1/file-3"] == pair(attached=1, detached=1)
    assert "file-3" not in record["vector_store_files"]["vs_1"]


def test_sdk_file_batches(sandbox: StartSandbox) -> None:
    """file_batches.create with `files` (own attributes) and with `file_ids`, retrieve and
    list_files parse, file counts and per-file attributes included."""
    sb = sandbox(processing_ms=0)
    batches = client_for(sb.base_url).vector_stores.file_batches
    with_files = batches.create(
        "vs_1",
        files=[
            {"file_id": "file-a", "attributes": {"part": 1}},
            {"file_id": "file-fail", "attributes": {"part": 2}},
        ],
    )
    assert with_files.object == "vector_store.files_batch"
    assert with_files.file_counts.total == 2
    with_ids = batches.create("vs_1", file_ids=["file-b", "file-c"], attributes={"kind": "doc"})
    assert with_ids.id != with_files.id
    done = batches.retrieve(with_files.id, vector_store_id="vs_1")
    assert done.status == "completed"
    assert (done.file_counts.completed, done.file_counts.failed) == (1, 1)
    first = {item.id: item for item in batches.list_files(with_files.id, vector_store_id="vs_1")}
    assert first["file-a"].attributes == {"part": 1}
    assert first["file-fail"].status == "failed"
    assert first["file-fail"].last_error is not None
    assert first["file-fail"].last_error.code == "invalid_file"
    failed = batches.list_files(with_files.id, vector_store_id="vs_1", filter="failed")
    assert [item.id for item in failed] == ["file-fail"]
    second = list(batches.list_files(with_ids.id, vector_store_id="vs_1", limit=1))
    assert sorted(item.id for item in second) == ["file-b", "file-c"]
    assert all(item.attributes == {"kind": "doc"} for item in second)
    assert all(item.chunking_strategy is not None for item in second)


def test_sdk_errors_parse_the_envelope(sandbox: StartSandbox) -> None:
    """17 attribute keys: BadRequestError with param and message; an absent file: NotFoundError;
    a store's 429: RateLimitError carrying the store's limit header."""
    sb = sandbox(store_rpm=6)
    files = client_for(sb.base_url).vector_stores.files
    with pytest.raises(openai.BadRequestError) as bad:
        files.create(vector_store_id="vs_1", file_id="file-1",
                     attributes={f"k{i}": i for i in range(17)})  # fmt: skip
    assert bad.value.status_code == 400
    assert bad.value.param == "attributes"
    assert bad.value.type == "invalid_request_error"
    assert "at most 16 properties" in bad.value.message
    with pytest.raises(openai.NotFoundError):
        files.retrieve("file-none", vector_store_id="vs_2")
    files.create(vector_store_id="vs_3", file_id="file-1")
    with pytest.raises(openai.RateLimitError) as limited:
        files.update("file-1", vector_store_id="vs_3", attributes={"a": "b"})
    assert limited.value.code == "rate_limit_exceeded"
    assert "vector store vs_3" in limited.value.message
    assert limited.value.response.headers["x-ratelimit-limit-requests"] == "6"
