"""The log's memory of local files' versions (log/versions.py), folded from lines as a killed
run leaves them: what the next run's end takes out and deletes."""

from __future__ import annotations

from typing import Any

from runner.log.resume import ResumeIndex

OWNER = "vector_store_id"


def done(store: str, file_id: str, outcome: str = "attached", *, path: str | None = None,
         op: str = "attach") -> dict[str, Any]:
    line: dict[str, Any] = {"event": "done", "op": op, OWNER: store, "file_id": file_id,
                            "outcome": outcome, "retryable": False, "uncertain": False}
    if path is not None:
        line.update(path=path, sha256=file_id[-1] * 64, bytes=1, mtime_ns=1, hashed_ns=1)
    return line


def uploaded(file_id: str, path: str) -> dict[str, Any]:
    return {"event": "uploaded", "path": path, "sha256": file_id[-1] * 64, "bytes": 1,
            "mtime_ns": 1, "hashed_ns": 1, "file_id": file_id}


def index_of(lines: list[dict[str, Any]]) -> ResumeIndex:
    index = ResumeIndex(OWNER)
    index.load(lines)
    return index


def test_a_run_killed_between_attach_new_and_detach_old_leaves_the_old_version_to_take_out(
) -> None:
    lines = [uploaded("file-a", "/d/x.md"), done("vs_1", "file-a", path="/d/x.md"),
             uploaded("file-b", "/d/x.md"), done("vs_1", "file-b", path="/d/x.md")]
    index = index_of(lines)
    stale = index.stale_versions(lambda store, file_id: False)
    assert [(old.store, old.file_id, old.path) for old in stale] == [("vs_1", "file-a",
                                                                        "/d/x.md")]
    # Still in its store: not to delete yet.
    assert index.unused_uploads(wanted=lambda store, file_id: False) == []
    # Killed after the detach-version, before the delete: delete it now, and only it.
    index = index_of([*lines, done("vs_1", "file-a", "detached", op="detach-version")])
    assert index.stale_versions(lambda store, file_id: False) == []
    assert index.unused_uploads(wanted=lambda store, file_id: False) == ["file-a"]
    assert index.versions.replaced == 1


def test_an_old_version_another_path_holds_is_not_taken_out() -> None:
    # x.md and y.md held one content (file-a); x.md changed to file-b; y.md still file-a.
    lines = [uploaded("file-a", "/d/x.md"), done("vs_1", "file-a", path="/d/x.md"),
             done("vs_1", "file-a", "already_attached", path="/d/y.md"),
             uploaded("file-b", "/d/x.md"), done("vs_1", "file-b", path="/d/x.md")]
    index = index_of(lines)
    assert index.stale_versions(lambda store, file_id: False) == []
    assert index.unused_uploads(wanted=lambda store, file_id: False) == []


def test_an_object_in_place_in_another_store_or_named_is_never_deleted() -> None:
    lines = [uploaded("file-a", "/d/x.md"), done("vs_1", "file-a", path="/d/x.md"),
             done("vs_2", "file-a", path="/d/x.md"),
             done("vs_1", "file-a", "detached", op="detach")]
    index = index_of(lines)
    assert index.unused_uploads(wanted=lambda store, file_id: False) == []  # in vs_2
    index = index_of([*lines, done("vs_2", "file-a", "detached", op="detach")])
    assert index.unused_uploads(wanted=lambda store, file_id: False) == ["file-a"]
    # A pair this run names keeps it; a possible duplicate or a file_id row's file is
    # never ours (never claimed by an `uploaded` line).
    assert index.unused_uploads(wanted=lambda store, file_id: store == "vs_2") == []
    foreign = index_of([done("vs_1", "file-f"), done("vs_1", "file-f", "detached")])
    assert foreign.unused_uploads(wanted=lambda store, file_id: False) == []


def test_an_unsettled_delete_is_checked_again_and_a_settled_one_is_not() -> None:
    lines = [uploaded("file-a", "/d/x.md"), done("vs_1", "file-a", path="/d/x.md"),
             done("vs_1", "file-a", "detached", op="detach"),
             {"event": "file-delete-sent", "ts": "2026-01-01T00:00:00.000Z",
              "file_id": "file-a"}]
    index = index_of(lines)
    assert index.unused_uploads(wanted=lambda store, file_id: False) == ["file-a"]
    assert "file-a" in index.versions.deletes_unsettled
    index = index_of([*lines, {"event": "file-deleted", "file_id": "file-a", "status": 200,
                               "uncertain": False}])
    assert index.unused_uploads(wanted=lambda store, file_id: False) == []
    assert index.uploads.uploaded("a" * 64) is None  # not reused once deleted
