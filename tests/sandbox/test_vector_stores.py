"""The sandbox's vector stores: files from in_progress to completed or failed, file
batches, retrieving a store (its file_counts), a store's file cap (`store_max_files`) and
preloaded files. Attributes and chunking: test_attributes.py. All over real loopback HTTP."""

from __future__ import annotations

import argparse
import asyncio
import time

import pytest

from runner.sandbox import SandboxConfig, add_sandbox_arguments
from tests.sandbox.client import NO_BETA, V1, V2, Http, StartSandbox, call, error_of, pair, store

VECTOR_STORE_KEYS = {
    "id", "object", "created_at", "name", "usage_bytes", "file_counts", "status",
    "expires_after", "expires_at", "last_active_at", "metadata",
}  # fmt: skip

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


# -- vector store files and batches ------------------------------------------------------------


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
    await asyncio.sleep(0.45)  # processing_ms passes: a file's status is the clock's, not a race
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


async def test_vector_store_preload_is_in_place_and_processed(
    sandbox: StartSandbox, http: Http
) -> None:
    """Preloaded vector store files are there, already completed, and not counted as attached."""
    sb = sandbox(processing_ms=5000)
    assert sb.preload("vector_store", "vs_1", ["file-1"]) == 1
    check = await call(http, "GET", store(sb) + "/files/file-1", headers=V2)
    assert check.body["status"] == "completed"
    assert sb.record()["attached_total"] == 0


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
    await asyncio.sleep(0.2)  # processing_ms passes: the status is computed from the clock
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
    await asyncio.sleep(0.4)  # processing_ms passes: file_counts are computed from the clock
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
