"""OpenAI's own Python SDK against the sandbox's Files API: files.create / list / retrieve /
delete parse into the SDK's models and its errors from the sandbox's envelope, and the SDK's
upload_and_poll (uploads, a batch, polling it) completes. If the SDK can read the sandbox, the
sandbox speaks the live API's shapes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.client import StartSandbox

openai = pytest.importorskip("openai", reason="the SDK is in the `test` extra")


def client_for(base_url: str) -> Any:
    return openai.OpenAI(base_url=base_url, api_key="sk-sandbox", max_retries=0, timeout=10)


def test_sdk_files_create_list_retrieve_delete(sandbox: StartSandbox) -> None:
    """files.create answers a FileObject; files.list pages through by `after` (auto-paging)
    with a purpose filter; retrieve and delete parse; a retrieve after the delete raises the
    SDK's NotFoundError."""
    sb = sandbox()
    files = client_for(sb.base_url).files
    created = [
        files.create(file=(f"doc-{i}.md", f"document {i}".encode()), purpose="assistants")
        for i in range(5)
    ]
    other = files.create(file=("data.jsonl", b'{"a": 1}\n'), purpose="batch")
    first = created[0]
    assert isinstance(first, openai.types.FileObject)
    assert (first.object, first.filename, first.bytes, first.purpose, first.status) == (
        "file",
        "doc-0.md",
        len(b"document 0"),
        "assistants",
        "processed",
    )
    assert first.expires_at is None
    assert other.expires_at is not None

    listed = list(files.list(purpose="assistants", limit=2))
    assert [item.id for item in listed] == [item.id for item in reversed(created)]
    assert sb.record()["by_route"]["GET file_list"] == 3  # 5 files, 2 a page

    retrieved = files.retrieve(first.id)
    assert retrieved == first
    deleted = files.delete(first.id)
    assert isinstance(deleted, openai.types.FileDeleted)
    assert (deleted.id, deleted.object, deleted.deleted) == (first.id, "file", True)
    with pytest.raises(openai.NotFoundError) as caught:
        files.retrieve(first.id)
    assert caught.value.status_code == 404
    assert caught.value.body["message"] == f"No such File object: {first.id}"
    with pytest.raises(openai.BadRequestError):
        files.create(file=("empty.md", b""), purpose="assistants")


def test_sdk_upload_and_poll_completes(sandbox: StartSandbox, tmp_path: Path) -> None:
    """vector_stores.file_batches.upload_and_poll uploads six files five at a time, creates
    the batch and polls it until it is done: the batch is completed with all six, and the
    record holds each file object once, in the store, with its content's SHA-256."""
    sb = sandbox(processing_ms=300)
    paths = []
    for i in range(6):
        path = tmp_path / f"chapter-{i}.md"
        path.write_bytes(f"# Chapter {i}\n".encode() * (i + 1))
        paths.append(path)
    client = client_for(sb.base_url)
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id="vs_1", files=paths, max_concurrency=5
    )
    assert batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.total) == (6, 6)

    record = sb.record()
    assert record["uploads"] == {"applied": 6, "by_status": {"200": 6}}
    by_name = {entry["filename"]: entry for entry in record["files"].values()}
    assert sorted(by_name) == sorted(path.name for path in paths)
    for path in paths:
        entry = by_name[path.name]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["stores"] == ["vs_1"]
    assert record["by_route"]["GET batch"] >= 1  # it polled
