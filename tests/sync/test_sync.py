"""`attach-runner sync`: the real CLI against the sandbox over loopback, judged by the sandbox's
own record (what each store holds, how many adds, updates and DELETEs each pair got)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.attributes import Options
from runner.errors import UsageError
from runner.items import Item
from runner.log.resume import ResumeIndex
from runner.sync.plan import StorePlan, read_writes
from tests.cli import (
    FAST,
    kill_9_at_random_moments,
    read_events,
    rerun_until_exit_0,
    run_cli,
    wait_for_held_writes,
)

OWNER = "vector_store_id"


def write_manifest(path: Path, stores: dict[str, dict[str, dict[str, Any] | None]]) -> Path:
    """JSONL: one line a pair, with its attributes when given."""
    lines = []
    for store, files in stores.items():
        for file_id, attributes in files.items():
            row: dict[str, Any] = {OWNER: store, "file_id": file_id}
            if attributes is not None:
                row["attributes"] = attributes
            lines.append(json.dumps(row))
    path.write_text("".join(line + "\n" for line in lines))
    return path


def sync_args(manifest: Path, base_url: str, *extra: str) -> list[str]:
    return ["sync", str(manifest), "--base-url", base_url, "--json", "--no-progress",
            "--rpm", "30000", *FAST, *extra]


def contents(sb: Any) -> dict[str, dict[str, Any]]:
    """store -> file id -> attributes, as the sandbox holds them now."""
    return {store: {f: entry["attributes"] or None for f, entry in files.items()}
            for store, files in sb.record()["vector_store_files"].items() if files}


def seed(sb: Any, store: str, files: dict[str, dict[str, Any] | None]) -> None:
    sb.preload("vector_store", store, [
        {"file_id": f, **({"attributes": a} if a is not None else {})}
        for f, a in files.items()])


def want_of(manifest: dict[str, dict[str, dict[str, Any] | None]]) -> dict[str, dict[str, Any]]:
    return {store: {f: a for f, a in files.items()} for store, files in manifest.items()}


def seeded_world(sb: Any) -> dict[str, dict[str, dict[str, Any] | None]]:
    """Two named stores with present, stale, missing and extra files, and an unnamed store.
    Returns the manifest."""
    seed(sb, "vs_a", {"file-a1": {"lang": "en"}, "file-a2": {"lang": "fr"},
                      "file-ax1": None, "file-ax2": {"lang": "en"}})
    seed(sb, "vs_b", {"file-b1": {"year": 2021}, "file-bx": None})
    seed(sb, "vs_other", {"file-o1": None, "file-o2": {"lang": "en"}})
    return {
        "vs_a": {"file-a1": {"lang": "en"},        # in place
                 "file-a2": {"lang": "de"},        # stale attributes
                 "file-a3": {"lang": "en"},        # missing
                 "file-a4": {"lang": "en"},        # missing
                 "file-a5": {"lang": "en"}},       # missing
        "vs_b": {"file-b1": {"year": 2021.0},      # in place (2021 == 2021.0)
                 "file-b2": {"year": 2022},        # missing
                 "file-b3": {"year": 2023}},       # missing
    }


def test_sync_converges_and_a_rerun_only_lists(tmp_path: Path, sandbox):
    """Missing files added once, stale attributes updated once, extras detached once, the
    unnamed store untouched; a rerun lists and writes nothing."""
    sb = sandbox()
    manifest = seeded_world(sb)
    other_before = contents(sb)["vs_other"]
    path = write_manifest(tmp_path / "stores.jsonl", manifest)
    res = run_cli(*sync_args(path, sb.base_url))
    assert res.code == 0, res.err
    summary = res.json()
    assert (summary["attached"], summary["updated"], summary["detached"]) == (5, 1, 3)
    assert summary["op"] == "sync"
    assert summary["next"] == "nothing: every named store matches the manifest"
    held = contents(sb)
    assert {s: held[s] for s in ("vs_a", "vs_b")} == {
        "vs_a": {f: a for f, a in manifest["vs_a"].items()},
        "vs_b": {"file-b1": {"year": 2021}, "file-b2": {"year": 2022},
                 "file-b3": {"year": 2023}}}
    assert held["vs_other"] == other_before
    record = sb.record()
    # Every write request the sandbox saw, refused or faulted ones too: none for vs_other.
    assert set(record["writes_by_store"]) == {"vs_a", "vs_b"}
    pairs = record["pairs"]
    assert all((e["attached"], e["updated"], e["detached"], e["posts_after_attached"])
               == (0, 0, 0, 0) for key, e in pairs.items() if key.startswith("vs_other/"))
    for f in ("file-a3", "file-a4", "file-a5"):
        assert pairs[f"vs_a/{f}"]["attached"] == 1
    assert pairs["vs_a/file-a2"]["updated"] == 1
    assert "vs_a/file-a1" not in pairs or pairs["vs_a/file-a1"]["updated"] == 0
    for key in ("vs_a/file-ax1", "vs_a/file-ax2", "vs_b/file-bx"):
        assert pairs[key]["detached"] == 1
    stores = {s["vector_store_id"]: s for s in summary["stores"]}
    assert stores["vs_a"]["pruned"]
    assert stores["vs_b"]["pruned"]
    assert (stores["vs_a"]["listed"], stores["vs_a"]["detached"]) == (4, 2)

    before = sb.record()["by_route"]
    again = run_cli(*sync_args(path, sb.base_url))
    assert again.code == 0, again.err
    after = sb.record()["by_route"]
    sent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert sent == {"GET list": 2}
    assert again.json()["attached_earlier"] == 8
    events = read_events(Path(f"{path}.results.jsonl"))
    assert {e["op"] for e in events if e["event"] == "done"} == {"attach", "update", "detach"}


def test_dry_run_lists_and_prints_the_plan(tmp_path: Path, sandbox):
    sb = sandbox()
    manifest = seeded_world(sb)
    path = write_manifest(tmp_path / "stores.jsonl", manifest)
    res = run_cli("sync", str(path), "--base-url", sb.base_url, "--dry-run", "--rpm", "30000")
    assert res.code == 0, res.err
    assert "vs_a: listed 4, in place 1" in res.out
    assert "add 3: file-a3, file-a4, file-a5" in res.out
    assert "update 1: file-a2" in res.out
    assert ("detach 2: file-ax1, file-ax2" in res.out
            or "detach 2: file-ax2, file-ax1" in res.out)
    assert set(sb.record()["by_route"]) == {"GET list"}
    assert not Path(f"{path}.results.jsonl").exists()
    as_json = run_cli("sync", str(path), "--base-url", sb.base_url, "--dry-run", "--json")
    plan = as_json.json()
    assert (plan["adds"], plan["updates"], plan["detaches"]) == (5, 1, 3)


def test_dry_run_takes_no_lock(tmp_path: Path, sandbox):
    """SPEC: `sync --dry-run` takes no lock: it plans while another run holds the log, where
    a real sync is refused with exit 3."""
    from runner.log.lock import RunLock

    sb = sandbox()
    path = write_manifest(tmp_path / "locked.jsonl", seeded_world(sb))
    with RunLock(f"{path}.results.jsonl"):
        dry = run_cli("sync", str(path), "--base-url", sb.base_url, "--dry-run")
        real = run_cli(*sync_args(path, sb.base_url))
    assert dry.code == 0, dry.err
    assert "dry run: 0 upload(s), 5 add(s), 1 update(s), 0 replace(s)" in dry.out
    assert real.code == 3, real.err
    assert set(sb.record()["by_route"]) == {"GET list"}


def test_stores_are_listed_concurrently_within_the_rate(tmp_path: Path, sandbox):
    """The listing of 8 stores (two pages each) overlaps across stores, and every page is
    under --rpm like any request: a server allowing a little more than --rpm answers no
    429."""
    sb = sandbox(latency_ms=150, rps=12)
    manifest = {}
    for s in range(8):
        files = {f"file-l{s}x{i}": None for i in range(150)}  # 2 pages a store
        seed(sb, f"vs_l{s}", files)
        manifest[f"vs_l{s}"] = files
    path = write_manifest(tmp_path / "l.jsonl", manifest)
    res = run_cli(*sync_args(path, sb.base_url, "--rpm", "540", "--concurrency", "8"))
    assert res.code == 0, res.err
    record = sb.record()
    assert record["by_route"] == {"GET list": 16}
    assert record["peak_in_flight"] >= 2
    assert record["by_status"].get("429", 0) == 0, record["rate_limited"]


def test_the_guard_stops_before_any_detach_and_max_delete_lets_it_go(tmp_path: Path, sandbox):
    """A manifest naming 1 of a store's 10 files: exit 4, nothing detached; --max-delete 9
    lets the sync through."""
    sb = sandbox()
    seed(sb, "vs_g", {f"file-{i}": None for i in range(10)})
    path = write_manifest(tmp_path / "one.jsonl", {"vs_g": {"file-0": None}})
    res = run_cli(*sync_args(path, sb.base_url))
    assert res.code == 4, res.err
    summary = res.json()
    assert summary["stopped_by"] == "guard"
    assert "vs_g would detach 9 of its 10" in summary["error"]
    assert "vs_g would detach 9 of its 10" in res.err
    assert len(contents(sb)["vs_g"]) == 10
    assert "DELETE file" not in sb.record()["by_route"]
    low = run_cli(*sync_args(path, sb.base_url, "--max-delete", "8"))
    assert low.code == 4
    assert len(contents(sb)["vs_g"]) == 10
    ok = run_cli(*sync_args(path, sb.base_url, "--max-delete", "9"))
    assert ok.code == 0, ok.err
    assert contents(sb)["vs_g"] == {"file-0": None}


def test_an_empty_manifest_writes_nothing(tmp_path: Path, sandbox):
    sb = sandbox()
    seed(sb, "vs_e", {"file-1": None})
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    res = run_cli(*sync_args(path, sb.base_url))
    assert res.code == 0, res.err
    assert sb.record()["requests"] == 0
    assert contents(sb) == {"vs_e": {"file-1": None}}


def test_a_store_with_a_failed_add_is_not_pruned_until_the_next_run(tmp_path: Path, sandbox):
    """An add refused (404: no such file) in a store keeps that store's extras this run; the
    other store is pruned. Once the manifest is fixed, the next run prunes it."""
    sb = sandbox()
    seed(sb, "vs_x", {"file-x1": None, "file-xx": None})
    seed(sb, "vs_y", {"file-y1": None, "file-yx": None})
    bad = {"file-x1": None, "file-missing2": None}  # the sandbox knows no such file
    path = write_manifest(tmp_path / "m.jsonl", {"vs_x": bad, "vs_y": {"file-y1": None}})
    res = run_cli(*sync_args(path, sb.base_url))
    assert res.code == 1, res.err
    stores = {s["vector_store_id"]: s for s in res.json()["stores"]}
    assert not stores["vs_x"]["pruned"]
    assert "failed" in stores["vs_x"]["not_pruned"]
    assert stores["vs_y"]["pruned"]
    held = contents(sb)
    assert "file-xx" in held["vs_x"]
    assert held["vs_y"] == {"file-y1": None}
    # The log serves `status` and `failed` as for run (SPEC): the refused add is there, as an
    # attach a rerun with --retry-failed would send; the pairs found in place are counted.
    status = run_cli("status", str(path), "--json")
    assert status.code == 0, status.err
    report = status.json()
    assert (report["already_attached"], report["refused"], report["pending"]) == (2, 1, 0)
    failed = run_cli("failed", str(path))
    assert failed.code == 0, failed.err
    rows = failed.out.strip().splitlines()
    assert rows[0].startswith("vector_store_id,file_id,status")
    assert rows[1].startswith("vs_x,file-missing2,404,")
    assert rows[1].endswith(",attach")
    assert len(rows) == 2
    fixed = write_manifest(tmp_path / "m.jsonl", {"vs_x": {"file-x1": None, "file-x2": None},
                                                  "vs_y": {"file-y1": None}})
    again = run_cli(*sync_args(fixed, sb.base_url))
    assert again.code == 0, again.err
    assert contents(sb)["vs_x"] == {"file-x1": None, "file-x2": None}


def test_a_listed_file_whose_processing_failed_is_reported(tmp_path: Path, sandbox):
    sb = sandbox()
    sb.preload("vector_store", "vs_f", [
        {"file_id": "file-ok"},
        {"file_id": "file-bad", "status": "failed",
         "last_error": {"code": "unsupported_file", "message": "The file type is not supported."}}])
    path = write_manifest(tmp_path / "f.jsonl", {"vs_f": {"file-ok": None, "file-bad": None}})
    res = run_cli(*sync_args(path, sb.base_url))
    assert res.code == 1, res.err
    summary = res.json()
    assert summary["failed_files"] == [{"vector_store_id": "vs_f", "file_id": "file-bad",
                                        "last_error": "unsupported_file: The file type is not "
                                                      "supported."}]
    text = run_cli("sync", str(path), "--base-url", sb.base_url, "--no-progress")
    assert "failed processing: file-bad (unsupported_file" in text.out


def test_sync_refuses_an_assistants_manifest(tmp_path: Path, sandbox):
    sb = sandbox()
    path = tmp_path / "a.csv"
    path.write_text("assistant_id,file_id\nasst_1,file-1\n")
    res = run_cli("sync", str(path), "--base-url", sb.base_url)
    assert res.code == 2
    assert "sync is for vector stores" in res.err
    assert sb.record()["requests"] == 0


@pytest.mark.parametrize("batch", ["0", "3"])
def test_adds_honour_batch_size(tmp_path: Path, sandbox, batch: str):
    sb = sandbox()
    files = {f"file-{i}": {"i": i} for i in range(7)}
    path = write_manifest(tmp_path / "b.jsonl", {"vs_b": files})
    res = run_cli(*sync_args(path, sb.base_url, "--batch-size", batch))
    assert res.code == 0, res.err
    assert contents(sb)["vs_b"] == files
    routes = sb.record()["by_route"]
    assert routes.get("POST batch", 0) == (0 if batch == "0" else 3)


def troubled_world(sb: Any, stores: int = 3) -> dict[str, dict[str, dict[str, Any] | None]]:
    """Per store: 12 files in place, 4 stale, 4 missing, 4 extra; plus an unnamed store."""
    manifest: dict[str, dict[str, dict[str, Any] | None]] = {}
    for s in range(stores):
        store = f"vs_t{s}"
        seed(sb, store, {**{f"file-{s}p{i}": {"v": 1} for i in range(16)},
                         **{f"file-{s}x{i}": None for i in range(4)}})
        manifest[store] = {**{f"file-{s}p{i}": {"v": 1 if i < 12 else 2} for i in range(16)},
                           **{f"file-{s}m{i}": {"v": 1} for i in range(4)}}
    seed(sb, "vs_unnamed", {"file-u1": None})
    return manifest


def assert_converged(sb: Any, manifest: dict[str, dict[str, dict[str, Any] | None]]) -> None:
    """Each named store holds exactly its manifest; no manifest pair was ever detached; each
    extra was detached once (no DELETE after it was gone); each missing file added once; the
    unnamed store never written to."""
    held = contents(sb)
    for store, files in manifest.items():
        assert held[store] == files, store
    record = sb.record()
    pairs = record["pairs"]
    for store, files in manifest.items():
        for f in files:
            entry = pairs.get(f"{store}/{f}", {})
            assert entry.get("detached", 0) == 0, (store, f)
            kind, number = f.split("-")[1][1], int(f.split("-")[1][2:])
            if kind == "m":
                assert entry["attached"] == 1, (store, f, entry)
            elif number >= 12:  # stale: updated once
                assert (entry["updated"], entry["attached"]) == (1, 0), (store, f, entry)
            else:  # in place: never written
                assert entry.get("updated", 0) == entry.get("attached", 0) == 0, (store, f)
    extras = [k for k in pairs if "x" in k.split("/")[1].split("-")[1]]
    assert extras
    for key in extras:
        assert (pairs[key]["detached"], pairs[key]["deletes_when_absent"]) == (1, 0), key
    assert held["vs_unnamed"] == {"file-u1": None}
    assert "vs_unnamed" not in record["writes_by_store"]  # not one write request reached it
    assert (pairs["vs_unnamed/file-u1"]["detached"], pairs["vs_unnamed/file-u1"]["updated"],
            pairs["vs_unnamed/file-u1"]["posts_after_attached"]) == (0, 0, 0)


def test_kill_9_at_random_moments_then_rerun_converges(tmp_path: Path, sandbox):
    """kill -9 during syncs (the server also applies some writes late), then reruns to exit
    0: every store holds exactly its manifest, nothing of the manifest was ever detached, no
    extra was detached twice, no missing file added twice, the unnamed store untouched."""
    import random

    sb = sandbox(latency_ms=30, late_apply_rate=0.1, late_apply_ms=800, seed=5)
    manifest = troubled_world(sb)
    path = write_manifest(tmp_path / "t.jsonl", manifest)
    argv = sync_args(path, sb.base_url, "--concurrency", "4", "--timeout", "0.4",
                     "--settle", "1", "--store-rpm", "60000")
    rng = random.Random(21)
    kill_9_at_random_moments(argv, rng, between=(0.5, 1.2))
    rerun_until_exit_0(argv, runs=4)
    wait_for_held_writes(sb)  # a write still held by the server has landed
    assert_converged(sb, manifest)


def test_faults_then_rerun_converges(tmp_path: Path, sandbox):
    """500s, resets before and after the write, 429s and late applies: reruns reach exit 0
    and the stores hold exactly the manifest, with each write done once."""
    sb = sandbox(fail_rate=0.08, reset_before_rate=0.04, reset_after_rate=0.04, rps=100,
                 store_rpm=120, late_apply_rate=0.05, late_apply_ms=300, seed=8)
    manifest = troubled_world(sb)
    path = write_manifest(tmp_path / "f.jsonl", manifest)
    argv = sync_args(path, sb.base_url, "--timeout", "2", "--settle", "0.5",
                     "--store-rpm", "60000")
    rerun_until_exit_0(argv, runs=4)
    wait_for_held_writes(sb)
    assert_converged(sb, manifest)
    record = sb.record()
    assert record["faults"]["reset_after"]
    assert record["rate_limited"]["store"]


def test_a_store_that_does_not_exist_is_reported_and_not_written(tmp_path: Path, sandbox):
    sb = sandbox()
    seed(sb, "vs_ok", {"file-1": None, "file-x": None})
    path = write_manifest(tmp_path / "m.jsonl", {"vs_ok": {"file-1": None},
                                                 "vs_missing9": {"file-2": None}})
    res = run_cli(*sync_args(path, sb.base_url))
    assert res.code == 1, res.err
    stores = {s["vector_store_id"]: s for s in res.json()["stores"]}
    assert stores["vs_missing9"]["listing_error"]["status"] == 404
    assert stores["vs_missing9"]["not_pruned"] == "its files could not be listed"
    assert stores["vs_ok"]["pruned"]
    assert contents(sb)["vs_ok"] == {"file-1": None}
    assert not any(k.startswith("vs_missing9/") for k in sb.record()["pairs"])
    assert set(sb.record()["writes_by_store"]) == {"vs_ok"}


@pytest.mark.parametrize("path", ["/v2", ""], ids=["v2", "no-version"])
def test_a_wrong_base_url_refuses_the_run_at_the_listing(tmp_path: Path, sandbox, path: str):
    """Every store's listing refused alike (the sandbox's "Invalid URL" 404): exit 4, one line
    naming --base-url, the pairs not done (not failed), nothing written; the corrected rerun
    syncs."""
    sb = sandbox()
    manifest = {f"vs_w{s}": {f"file-w{s}{i}": None for i in range(2)} for s in range(3)}
    file_path = write_manifest(tmp_path / "w.jsonl", manifest)
    wrong = sb.base_url.removesuffix("/v1") + path
    res = run_cli(*sync_args(file_path, wrong))
    assert res.code == 4, res.err
    summary = res.json()
    assert "every named store's listing was refused the same way (404: Invalid URL" in (
        summary["error"])
    assert "check --base-url" in summary["error"]
    assert (summary["failed"], summary["pending"]) == (0, 6)
    assert sb.record()["writes_by_store"] == {}
    dry = run_cli(*sync_args(file_path, wrong, "--dry-run"))
    assert dry.code == 4, dry.err
    assert dry.json()["error"] == summary["error"]
    assert run_cli(*sync_args(file_path, sb.base_url)).code == 0
    assert contents(sb) == want_of(manifest)


def test_a_bad_key_stops_the_listing_with_exit_4(tmp_path: Path, sandbox):
    sb = sandbox()
    seed(sb, "vs_k", {"file-x": None})
    path = write_manifest(tmp_path / "m.jsonl", {"vs_k": {"file-1": None}})
    res = run_cli(*sync_args(path, sb.base_url), key="sk-wrong-key-123")
    assert res.code == 4, res.err
    assert "401" in res.err
    assert "sk-wrong-key-123" not in res.out + res.err
    assert set(sb.record()["by_route"]) == {"GET list"}
    assert contents(sb)["vs_k"] == {"file-x": None}
    dry = run_cli(*sync_args(path, sb.base_url, "--dry-run"), key="sk-wrong-key-123")
    assert dry.code == 4, dry.err
    assert dry.err.strip().splitlines() == [
        "attach-runner: error: the API refused the key (401) from the OPENAI_API_KEY "
        "environment variable; put a valid key there and run again"]
    assert dry.json() == {"dry_run": True, "exit": 4, "op": "sync",
                          "error": dry.err.strip().removeprefix("attach-runner: error: ")}
    assert "sk-wrong-key-123" not in dry.out + dry.err


def test_chunking_mismatch_is_a_warning(tmp_path: Path, sandbox):
    sb = sandbox()
    sb.preload("vector_store", "vs_c", [{"file_id": "file-1"}])  # auto: static 800/400
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({OWNER: "vs_c", "file_id": "file-1", "chunking_strategy": {
        "type": "static", "static": {"max_chunk_size_tokens": 300,
                                     "chunk_overlap_tokens": 100}}}) + "\n")
    res = run_cli(*sync_args(path, sb.base_url))
    assert res.code == 0, res.err
    assert res.json()["chunking_mismatch"] == 1
    assert "vs_c/file-1" in res.err
    assert sb.record()["by_route"] == {"GET list": 1}


def test_a_full_store_detaches_first_then_adds(tmp_path: Path, sandbox):
    """A store at its cap refuses the adds (400 "is full"): its detaches go first, under the
    guard, then the refused adds are sent again; the run ends exit 0 with the store holding
    exactly its manifest, each pair added once and each extra detached once."""
    sb = sandbox(store_max_files=6)
    seed(sb, "vs_full", {f"file-k{i}": None for i in range(4)}
         | {f"file-x{i}": None for i in range(2)})
    manifest = {"vs_full": {f"file-k{i}": None for i in range(4)}
                | {f"file-n{i}": None for i in range(2)}}
    path = write_manifest(tmp_path / "full.jsonl", manifest)
    res = run_cli(*sync_args(path, sb.base_url, "--batch-size", "0"))
    assert res.code == 0, res.err
    summary = res.json()
    assert (summary["attached"], summary["detached"], summary["failed"]) == (2, 2, 0)
    assert contents(sb) == want_of(manifest)
    record = sb.record()
    assert record["by_status"].get("400", 0) >= 1  # the store was full first
    for f in ("file-n0", "file-n1"):
        assert record["pairs"][f"vs_full/{f}"]["attached"] == 1
    for f in ("file-x0", "file-x1"):
        assert record["pairs"][f"vs_full/{f}"]["detached"] == 1
    assert run_cli(*sync_args(path, sb.base_url)).code == 0


def test_a_full_store_still_obeys_the_guard(tmp_path: Path, sandbox):
    """A full store whose detaches would take more than half of it: exit 4, nothing
    detached, the adds it refused reported failed."""
    sb = sandbox(store_max_files=4)
    seed(sb, "vs_full", {f"file-x{i}": None for i in range(4)})
    path = write_manifest(tmp_path / "full.jsonl", {"vs_full": {"file-n0": None}})
    res = run_cli(*sync_args(path, sb.base_url, "--batch-size", "0"))
    assert res.code == 4, res.err
    assert res.json()["stopped_by"] == "guard"
    assert set(contents(sb)["vs_full"]) == {f"file-x{i}" for i in range(4)}
    assert sb.record()["by_route"].get("DELETE file", 0) == 0


def test_a_manifest_rewritten_during_the_listing_stops_before_any_write(tmp_path: Path,
                                                                       sandbox):
    """The real CLI: the manifest is rewritten (one pair's attributes changed) while the
    store's listing is in flight; the second read sees it: exit 2, one line, nothing written;
    the same command then syncs the new manifest."""
    import subprocess
    import sys
    import time

    from tests.cli import cli_env

    sb = sandbox(latency_ms=1500)
    first = {"vs_c": {f"file-c{i}": {"k": "v"} for i in range(3)}}
    path = write_manifest(tmp_path / "c.jsonl", first)
    proc = subprocess.Popen([sys.executable, "-m", "runner", *sync_args(path, sb.base_url)],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while sb.record()["by_route"].get("GET list", 0) == 0:  # counted as it arrives
        assert time.monotonic() < deadline
        assert proc.poll() is None
        time.sleep(0.02)
    second = {"vs_c": {**first["vs_c"], "file-c1": {"k": "w"}}}
    write_manifest(path, second)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip().splitlines() == [
        f"attach-runner: error: {path}: the manifest changed while sync ran (line 2: the "
        "attributes of file-c1); nothing was written; run the same command again"]
    assert sb.record()["writes_by_store"] == {}
    sb.update(latency_ms=0)
    assert run_cli(*sync_args(path, sb.base_url)).code == 0
    assert contents(sb) == want_of(second)


def test_a_manifest_changed_between_the_two_reads_stops_before_writing(tmp_path: Path):
    """sync keeps only ids and digests of the manifest's pairs, and reads the pairs it writes
    a second time: a pair gone or changed by then is refused (exit 2), not written."""
    def planned() -> StorePlan:
        plan = StorePlan("vs_a")
        plan.pairs.want(Item("vs_a", "file-1", 1, Options(attributes={"lang": "en"})))
        plan.pairs.want(Item("vs_a", "file-2", 2))
        plan.listing.take({"id": "file-1", "attributes": {"lang": "fr"}})  # stale
        plan.plan(ResumeIndex("vector_store_id"), retry_failed=False)
        assert (plan.sets.updates, plan.sets.adds) == (["file-1"], ["file-2"])
        return plan

    plan = planned()
    read_writes({"vs_a": plan}, [Item("vs_a", "file-1", 1, Options(attributes={"lang": "en"})),
                                 Item("vs_a", "file-2", 2), Item("vs_b", "file-9", 3)], "m")
    assert [i.line for i in plan.sets.write_items(["file-1", "file-2"])] == [1, 2]
    with pytest.raises(UsageError, match="line 1: the attributes of file-1"):
        read_writes({"vs_a": planned()},
                    [Item("vs_a", "file-1", 1, Options(attributes={"lang": "de"}))], "m")
    with pytest.raises(UsageError, match="vs_a/file-2 is gone"):
        read_writes({"vs_a": planned()},
                    [Item("vs_a", "file-1", 1, Options(attributes={"lang": "en"}))], "m")


def test_the_listing_says_how_it_goes_on_stderr():
    """While stores are listed: a plain line every `every` seconds off a terminal; on one, a
    line redrawn in place and wiped at the end. (Fed by plans and a page count that change
    while it runs, as the listing changes them.)"""
    import asyncio
    import io

    from runner.operations.listing import listing_progress

    listings = [StorePlan("vs_a").listing, StorePlan("vs_b").listing]
    pages = [0]

    async def listing(stream: io.StringIO, tty: bool) -> None:
        async with listing_progress(listings, lambda: pages[0], stream, tty=tty, every=0.05):
            for _ in range(3):
                await asyncio.sleep(0.6)
                pages[0] += 10
                listings[0].listed += 1000
                listings[1].listed += 500

    plain = io.StringIO()
    asyncio.run(listing(plain, tty=False))
    lines = plain.getvalue().splitlines()
    assert len(lines) >= 10
    assert lines[0] == "listing 2 store(s): 0 page(s) requested, 0 file(s) listed so far"
    assert "listing 2 store(s): 20 page(s) requested, 3,000 file(s) listed so far" in lines
    assert not {"\r", "\x1b"} & set(plain.getvalue())
    pages[0] = 0
    tty = io.StringIO()
    asyncio.run(listing(tty, tty=True))
    drawn = tty.getvalue()
    assert "\n" not in drawn
    assert drawn.count("\r") >= 3
    assert "file(s) listed so far\x1b[K" in drawn
    assert drawn.endswith("\r\x1b[K")  # wiped: the summary starts on a clean line
