"""Files that change (SPEC "Local files": Replace, Prune, Clean-up): a folder whose documents
are rewritten, deleted and added between runs. Judged by the sandbox's record: each store holds
each document's current content once, old versions are out, and the file objects the tool
uploaded are deleted once no store holds them; nothing else is ever deleted."""

from __future__ import annotations

import json
import random
import signal
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.sandbox import SandboxThread
from tests.cli import (
    FAST,
    SANDBOX_KEY,
    kill_9_at_random_moments,
    read_events,
    rerun_until_exit_0,
    run_main,
    spawn,
    wait_for_held_writes,
    wait_until,
    written_events,
)
from tests.local_files import sandbox_key, sha, write  # noqa: F401 - sandbox_key: a fixture

pytestmark = pytest.mark.usefixtures("sandbox_key")


def folder(root: Path, count: int) -> dict[str, str]:
    texts = {f"doc{i:03}.md": f"# Document {i}\n" + f"line {i}\n" * (i % 7 + 1)
             for i in range(count)}
    for name, text in texts.items():
        write(root / name, text)
    return texts


def filled(tmp_path: Path, sb: SandboxThread, count: int, command: str = "sync",
           manifest_text: str = "vector_store_id,path\nvs_1,docs/*.md\n",
           name: str = "m.csv") -> tuple[Path, dict[str, str], Path, Path]:
    """A folder of `count` documents, a manifest naming them, and a log that one `command`
    filled: (docs folder, texts by name, manifest, log)."""
    docs = tmp_path / "docs"
    texts = folder(docs, count)
    manifest = tmp_path / name
    manifest.write_text(manifest_text)
    log = tmp_path / "log"
    first = run_main(run_args(sb, command, manifest, log))
    assert first.code == 0, first.err
    return docs, texts, manifest, log


def churn(root: Path, texts: dict[str, str], *, change: int, delete: int,
          add: int) -> dict[str, str]:
    """Rewrite `change` documents, delete `delete`, add `add` new ones; what the folder
    holds after."""
    names = sorted(texts)
    now = dict(texts)
    for name in names[:change]:
        now[name] = texts[name] + "an edit that changes the size\n"
        write(root / name, now[name])
    for name in names[change:change + delete]:
        (root / name).unlink()
        del now[name]
    for i in range(add):
        name = f"new{i:03}.md"
        now[name] = f"# New {i}\n"
        write(root / name, now[name])
    return now


def upload_foreign(sb: SandboxThread, text: str) -> str:
    """A file object the tool did not make (uploaded by someone else): never to delete."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
            f"assistants\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"foreign.md\"\r\nContent-Type: text/markdown\r\n\r\n{text}\r\n"
            f"--{boundary}--\r\n").encode()
    request = urllib.request.Request(
        sb.base_url + "/files", data=body, method="POST",
        headers={"Authorization": f"Bearer {SANDBOX_KEY}",
                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["id"])


def held(record: dict[str, Any], store: str) -> list[str]:
    """The SHA-256 of each file the store holds (a content twice shows twice)."""
    files = record["files"]
    return sorted(files[f]["sha256"] for f in record["vector_store_files"].get(store, {}))


def live_objects(record: dict[str, Any]) -> set[str]:
    return {f for f, obj in record["files"].items() if not obj["deleted"]}


def in_stores(record: dict[str, Any]) -> set[str]:
    return {f for files in record["vector_store_files"].values() for f in files}


def run_args(sb: SandboxThread, command: str, manifest: Path, log: Path,
             *more: str) -> list[str]:
    return [command, str(manifest), "--base-url", sb.base_url, "--log", str(log), "--json",
            *FAST, *more]


def test_run_replaces_and_sync_prunes_a_folder_that_changed(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    docs = tmp_path / "docs"
    texts = folder(docs, 40)
    foreign = upload_foreign(sb, "someone else's file\n")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"vector_store_id": "vs_1", "path": "docs/*.md"}) + "\n"
                        + json.dumps({"vector_store_id": "vs_1", "file_id": foreign}) + "\n")
    log = tmp_path / "log"
    first = run_main(run_args(sb, "run", manifest, log))
    assert first.code == 0, first.err
    assert first.json()["uploaded"] == 40

    now = churn(docs, texts, change=4, delete=2, add=2)
    before = sb.record()
    ran = run_main(run_args(sb, "run", manifest, log))
    assert ran.code == 0, ran.err
    summary = ran.json()
    # Exactly the changed and the new documents are uploaded; the changed ones' old
    # versions are taken out of the store and, ours and now unused, deleted.
    assert (summary["uploaded"], summary["replaced"], summary["files_deleted"]) == (6, 4, 4)
    # Nothing else is written: the uploads, one batch attaching them, the old versions'
    # detaches, the deletes.
    writes = {route: count - before["by_route"].get(route, 0)
              for route, count in sb.record()["by_route"].items()}
    assert {route: n for route, n in writes.items() if n} == {
        "POST upload": 6, "POST batch": 1, "DELETE file": 4, "DELETE file_object": 4}
    record = sb.record()
    deleted_names = sorted(set(texts) - set(now))
    kept_old = [sha(texts[n]) for n in deleted_names]  # run does not prune
    assert held(record, "vs_1") == sorted([sha(t) for t in now.values()] + kept_old
                                          + [sha("someone else's file\n")])
    new_objects = live_objects(record) - live_objects(before)
    assert len(new_objects) == 6
    assert record["files"][foreign]["deleted"] is False

    synced = run_main(run_args(sb, "sync", manifest, log))
    assert synced.code == 0, synced.err
    summary = synced.json()
    assert (summary["detached"], summary["files_deleted"], summary["uploaded"]) == (2, 2, 0)
    record = sb.record()
    assert held(record, "vs_1") == sorted([sha(t) for t in now.values()]
                                          + [sha("someone else's file\n")])
    # No object of ours left unused; the foreign one untouched.
    assert live_objects(record) == in_stores(record)
    assert record["files"][foreign]["deleted"] is False

    # Converged: sync lists, run sends nothing.
    again = run_main(run_args(sb, "sync", manifest, log))
    assert again.code == 0, again.err
    assert again.json()["requests"] == again.json()["list_requests"]
    rerun = run_main(run_args(sb, "run", manifest, log))
    assert rerun.code == 0, rerun.err
    assert rerun.json()["requests"] == 0


def test_sync_guard_stops_a_folder_that_lost_most_of_its_files(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    docs, texts, manifest, log = filled(tmp_path, sb, 10)
    for name in sorted(texts)[:6]:
        (docs / name).unlink()
    guarded = run_main(run_args(sb, "sync", manifest, log))
    assert guarded.code == 4, guarded.err
    assert guarded.json()["stopped_by"] == "guard"
    record = sb.record()
    assert len(held(record, "vs_1")) == 10  # nothing detached
    assert all(not obj["deleted"] for obj in record["files"].values())
    allowed = run_main(run_args(sb, "sync", manifest, log, "--max-delete", "6"))
    assert allowed.code == 0, allowed.err
    record = sb.record()
    assert held(record, "vs_1") == sorted(sha(texts[n]) for n in sorted(texts)[6:])
    assert allowed.json()["files_deleted"] == 6
    assert live_objects(record) == in_stores(record)


def test_sync_replaces_a_folder_whose_every_file_was_rewritten(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    docs, texts, manifest, log = filled(
        tmp_path, sb, 10, manifest_text="vector_stores:\n  vs_1:\n    - {path: 'docs/*.md', "
        "attributes: {team: docs}}\n", name="m.yaml")
    now = churn(docs, texts, change=10, delete=0, add=0)
    synced = run_main(run_args(sb, "sync", manifest, log))
    assert synced.code == 0, synced.err  # no guard: replaces lose nothing
    summary = synced.json()
    assert (summary["uploaded"], summary["replaced"], summary["files_deleted"]) == (10, 10, 10)
    assert summary["changed"] == 10
    assert summary["detached"] == 0  # a replace's detach is not a prune
    record = sb.record()
    assert held(record, "vs_1") == sorted(sha(t) for t in now.values())
    assert all(entry["attributes"] == {"team": "docs"}
               for entry in record["vector_store_files"]["vs_1"].values())
    assert live_objects(record) == in_stores(record)


@pytest.mark.parametrize("command", ["run", "sync"])
def test_kill_9_mid_replace_and_prune_then_reruns_converge(
        tmp_path: Path, sandbox: Callable[..., SandboxThread], command: str) -> None:
    sb = sandbox(seed=11, reset_after_rate=0.1, late_apply_rate=0.1, late_apply_ms=300)
    docs = tmp_path / "docs"
    texts = folder(docs, 30)
    foreign = upload_foreign(sb, "someone else's file\n")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"vector_store_id": "vs_1", "path": "docs/*.md"}) + "\n"
                        + json.dumps({"vector_store_id": "vs_1", "file_id": foreign}) + "\n")
    log = tmp_path / "log"
    args = [command, str(manifest), "--base-url", sb.base_url, "--log", str(log), *FAST,
            "--timeout", "1", "--max-delete", "100"] if command == "sync" else [
            command, str(manifest), "--base-url", sb.base_url, "--log", str(log), *FAST,
            "--timeout", "1"]
    rerun_until_exit_0([*args, "--json"], runs=6)
    now = churn(docs, texts, change=9, delete=3, add=3)

    def replacing(_: int) -> bool:
        return log.exists() and (b'"detach-version"' in log.read_bytes()
                                 or b'"file-delete-sent"' in log.read_bytes())

    kill_9_at_random_moments(args, random.Random(7), (0.0, 0.5), kills=3, once=replacing)
    final = rerun_until_exit_0([*args, "--json"], runs=6)
    record = wait_for_held_writes(sb)
    current = sorted(sha(t) for t in now.values())
    kept = [] if command == "sync" else [sha(texts[n]) for n in sorted(set(texts) - set(now))]
    assert held(record, "vs_1") == sorted([*current, *kept, sha("someone else's file\n")])
    assert record["files"][foreign]["deleted"] is False
    # Every object of ours not in a store is deleted, or a reported possible duplicate.
    reported = set(final.json()["possible_duplicates"])
    for event in read_events(log):
        if event["event"] == "possible-duplicates":
            reported.update(event["file_ids"])
    assert live_objects(record) - in_stores(record) <= reported


def test_detach_of_path_rows_takes_out_the_recorded_versions_of_gone_files(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    docs, texts, manifest, log = filled(
        tmp_path, sb, 3, "run", "vector_store_id,path\n"
        + "".join(f"vs_1,docs/doc{i:03}.md\n" for i in range(3)))
    for name in texts:
        (docs / name).unlink()  # the files are gone; their versions are in the log
    detached = run_main(run_args(sb, "detach", manifest, log))
    assert detached.code == 0, detached.err
    assert detached.json()["detached"] == 3
    record = sb.record()
    assert held(record, "vs_1") == []
    assert all(not obj["deleted"] for obj in record["files"].values())  # detach keeps them
    again = run_main(run_args(sb, "detach", manifest, log))
    assert again.code == 0, again.err
    assert (again.json()["requests"], again.json()["detached_earlier"]) == (0, 3)


@pytest.mark.parametrize("marker", [b'"op":"detach-version"', b'"file-delete-sent"'])
def test_kill_9_at_each_step_of_a_replace_is_finished_by_the_next_run(
        tmp_path: Path, sandbox: Callable[..., SandboxThread], marker: bytes) -> None:
    """Killed after the new version's attach with the old one's detach in flight, or after
    the detach with the delete in flight: the rerun finishes that very step (checking first
    what the killed request did), and nothing is left or done twice."""
    sb = sandbox()
    docs, texts, manifest, log = filled(tmp_path, sb, 3, "run")
    args = run_args(sb, "run", manifest, log, "--timeout", "5")
    old_ids = set(sb.record()["files"])
    now = churn(docs, texts, change=3, delete=0, add=0)
    sb.update(fault_methods=("DELETE",), slow_rate=1.0, slow_ms=20_000)  # in flight a while
    proc = spawn(*args)
    wait_until(lambda: marker in log.read_bytes(), proc)
    proc.kill()
    proc.communicate()
    sb.update(slow_rate=0.0)
    final = rerun_until_exit_0(args, runs=3)
    record = wait_for_held_writes(sb)
    assert held(record, "vs_1") == sorted(sha(t) for t in now.values())
    assert all(record["files"][f]["deleted"] for f in old_ids)
    assert live_objects(record) == in_stores(record)
    # The step the kill cut short was checked (a GET), not sent blind.
    assert final.json()["checks"] >= 1
    detached = [e["file_id"] for e in read_events(log) if e["event"] == "done"
                and e.get("op") == "detach-version" and e["outcome"] != "failed"]
    assert sorted(detached) == sorted(old_ids)


def test_sync_dry_run_shows_uploads_replaces_and_prunes(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    docs, texts, manifest, log = filled(tmp_path, sb, 10)
    churn(docs, texts, change=2, delete=1, add=3)
    writes_before = sb.record()["by_route"]
    planned = run_main(run_args(sb, "sync", manifest, log, "--dry-run"))
    assert planned.code == 0, planned.err
    summary = planned.json()
    assert (summary["uploads"], summary["replaces"], summary["detaches"]) == (5, 2, 1)
    store = summary["stores"][0]
    assert (store["to_upload"], store["to_replace"], store["to_detach"]) == (5, 2, 1)
    shown = run_main([a for a in run_args(sb, "sync", manifest, log, "--dry-run")
                      if a != "--json"])
    assert "dry run: 5 upload(s), 0 add(s), 0 update(s), 2 replace(s)" in shown.out
    after = sb.record()["by_route"]
    assert {r: n - writes_before.get(r, 0) for r, n in after.items()
            if n != writes_before.get(r, 0)} == {"GET list": 2}  # list requests only


def test_a_version_whose_processing_failed_is_replaced_once_the_file_is_fixed(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox(vs_fail_rate=1.0)  # every file the store processes fails (not UTF-8, say)
    write(tmp_path / "docs" / "a.md", "not really text\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,docs/a.md\n")
    log = tmp_path / "log"
    failed = run_main(run_args(sb, "run", manifest, log, "--wait"))
    assert failed.code == 1, failed.err
    (bad,) = sb.record()["vector_store_files"]["vs_1"]
    sb.update(vs_fail_rate=0.0)
    write(tmp_path / "docs" / "a.md", "fixed: real text now\n")
    fixed = run_main(run_args(sb, "run", manifest, log, "--wait"))
    assert fixed.code == 0, fixed.err
    assert (fixed.json()["replaced"], fixed.json()["files_deleted"]) == (1, 1)
    record = sb.record()
    assert held(record, "vs_1") == [sha("fixed: real text now\n")]
    assert record["files"][bad]["deleted"]


def test_an_uncertain_delete_is_checked_never_sent_again_blind(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    """SPEC "Clean-up": a delete whose outcome is unknown (here applied, then a 500) follows
    the settle rule: a GET after --settle (404: deleted), never a second DELETE."""
    sb = sandbox()
    docs, texts, manifest, log = filled(tmp_path, sb, 3, "run")
    old_ids = set(sb.record()["files"])
    churn(docs, texts, change=3, delete=0, add=0)
    # DELETEs (the detach-versions' and the file deletes) applied, then answered 500.
    sb.update(fault_methods=("DELETE",), error_after_rate=1.0)
    ran = run_main(run_args(sb, "run", manifest, log, "--max-attempts", "3"))
    record = wait_for_held_writes(sb)
    assert ran.code == 0, ran.err
    assert all(record["files"][f]["deleted"] for f in old_ids)
    assert record["file_deletes"] == {"applied": 3, "not_found": 0}  # none sent twice
    assert ran.json()["files_deleted"] == 3
    assert ran.json()["checks"] >= 6  # each detach-version and each delete checked by a GET


def test_sync_never_replaces_in_a_store_its_manifest_does_not_name(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    """A replace left unfinished in two stores (the run killed with the old versions'
    detaches in flight); then a sync whose manifest names only one of them: it finishes the
    replace there, writes nothing to the other, and deletes no object that store holds."""
    sb = sandbox()
    both = "vector_store_id,path\nvs_1,docs/*.md\nvs_2,docs/*.md\n"
    docs, texts, manifest, log = filled(tmp_path, sb, 2, "run", both)
    old_ids = set(sb.record()["files"])
    now = churn(docs, texts, change=2, delete=0, add=0)
    sb.update(fault_methods=("DELETE",), slow_rate=1.0, slow_ms=20_000)
    proc = spawn(*run_args(sb, "run", manifest, log, "--timeout", "5"))
    wait_until(lambda: b'"op":"detach-version"' in log.read_bytes(), proc)
    proc.kill()
    proc.communicate()
    sb.update(slow_rate=0.0)
    vs_2_before = set(wait_for_held_writes(sb)["vector_store_files"]["vs_2"])
    manifest.write_text("vector_store_id,path\nvs_1,docs/*.md\n")
    synced = rerun_until_exit_0(run_args(sb, "sync", manifest, log, "--timeout", "5"), runs=3)
    record = wait_for_held_writes(sb)
    assert held(record, "vs_1") == sorted(sha(t) for t in now.values())
    # vs_2 is as the killed run left it (a detach in flight may have landed there, or not):
    # the sync wrote nothing to it, and deleted no object it still holds.
    assert set(record["vector_store_files"]["vs_2"]) == vs_2_before
    assert not any(record["files"][f]["deleted"] for f in vs_2_before)
    assert synced.json()["stores"][0]["vector_store_id"] == "vs_1"
    assert old_ids & vs_2_before  # the test met the case: old versions stayed in vs_2


@pytest.mark.parametrize("moment", ["detaching", "adds-done"])
def test_sigterm_while_sync_replaces_beside_its_uploads_stops_both_and_the_rerun_finishes(
        tmp_path: Path, sandbox: Callable[..., SandboxThread], moment: str) -> None:
    # sync detaches each old version as soon as its new version is in place, beside the
    # uploads still going (a detach-version engine fed live). A SIGTERM then stops both at
    # once (only what is in flight ends: exit 143, not after every replace; also once the
    # adds are over and the replaces alone go on), and the next
    # run finishes the job: each current content in the store once, no old version left,
    # every object of ours that no store holds deleted.
    sb = sandbox()
    docs, texts, manifest, log = filled(tmp_path, sb, 40)
    now = churn(docs, texts, change=30, delete=0, add=0)
    # A store takes 120 writes a minute here: the 30 replaces need 15 s, so the signal
    # finds them under way.
    args = run_args(sb, "sync", manifest, log, "--store-rpm", "120", "--batch-size", "5")
    proc = spawn(*args)

    def due() -> bool:
        events = written_events(log)
        starts = [at for at, event in enumerate(events) if event["event"] == "run-start"]
        events = events[starts[-1]:] if len(starts) > 1 else []  # this run's lines
        detached = sum(e["event"] == "done" and e.get("op") == "detach-version"
                       for e in events)
        if moment == "detaching":
            return detached >= 2
        # Every batch created (phase A over, no prune to make), old versions still going out.
        return sum(e["event"] == "batch-created" for e in events) == 6 and detached >= 1

    wait_until(due, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, (out, err)
    summary = json.loads(out)
    assert summary["stopped_by"] == "SIGTERM"
    assert 0 < summary["replaced"] < 30  # stopped mid-replace, not after it
    final = run_main(run_args(sb, "sync", manifest, log))
    assert final.code == 0, final.err
    record = wait_for_held_writes(sb)
    assert held(record, "vs_1") == sorted(sha(t) for t in now.values())
    assert live_objects(record) == in_stores(record)
    assert final.json()["replaced"] + summary["replaced"] == 30


def test_sync_detaches_each_old_version_only_after_its_new_version_is_attached(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # SPEC "Replace": the old version goes only after the new one's attach succeeded. sync
    # feeds each old version to its detaches the moment its new version is in place, beside
    # the uploads and batches still going: by the log, every detach-version follows the
    # `done` that put its path's new version in the store (never the other way round).
    sb = sandbox(seed=5, reset_after_rate=0.1)
    docs, texts, manifest, log = filled(tmp_path, sb, 30)
    now = churn(docs, texts, change=20, delete=0, add=0)
    first = read_events(log)
    old_of = {(e["vector_store_id"], e["file_id"]): e["path"] for e in first
              if e["event"] == "done" and e.get("path")}
    rerun_until_exit_0(run_args(sb, "sync", manifest, log, "--batch-size", "4",
                                "--timeout", "1"), runs=4)
    in_place_at: dict[tuple[str, str], int] = {}  # (store, path) -> line of its new version
    detached = 0
    for at, event in enumerate(read_events(log)[len(first):]):
        if event["event"] != "done" and event["event"] != "sent":
            continue
        store = event["vector_store_id"]
        if event.get("op") == "detach-version":
            path = old_of[(store, event["file_id"])]
            assert (store, path) in in_place_at, f"{path}'s old version went first"
            detached += event["event"] == "done"
        elif event["event"] == "done" and event.get("outcome") in ("attached",
                                                                   "already_attached"):
            in_place_at.setdefault((store, event["path"]), at)
    assert detached >= 20
    assert held(wait_for_held_writes(sb), "vs_1") == sorted(sha(t) for t in now.values())
