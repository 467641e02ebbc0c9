"""Attributes converge (SPEC: Manifests, resume rules): every pair ends in its store with the
manifest's attributes, judged by the sandbox's own record of each store's contents; reruns
send nothing, or exactly one update per changed pair; a plain manifest never touches them."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.attributes import AUTO_STATIC, same_attributes
from tests.cli import (
    FAST,
    kill_9_at_random_moments,
    log_of,
    read_events,
    read_log_events,
    run_cli,
)

Row = tuple[str, str, "dict[str, Any] | None", "dict[str, Any] | None"]
STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 400,
                                       "chunk_overlap_tokens": 100}}


def rows_for(stores: int, files: int) -> list[Row]:
    """Pairs with varied attributes (strings, numbers, booleans, an empty set) and chunking."""
    rows: list[Row] = []
    for s in range(stores):
        for f in range(files):
            attributes: dict[str, Any] | None = {"lang": ["en", "de"][f % 2], "year": 2020 + f,
                                                 "public": f % 3 == 0}
            if f == 1:
                attributes = {}
            if f == 2:
                attributes = None  # not managed
            chunking = (json.loads(json.dumps(STATIC)) if f == 3
                        else {"type": "auto"} if f == 4 else None)
            rows.append((f"vs_{s}", f"file-{s}x{f}", attributes, chunking))
    return rows


def write_manifest(path: Path, fmt: str, rows: Sequence[Row]) -> Path:
    if fmt == "csv":
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["vector_store_id", "file_id", "attributes", "chunking_strategy"])
            for store, file_id, attributes, chunking in rows:
                writer.writerow([store, file_id,
                                 "" if attributes is None else json.dumps(attributes),
                                 "" if chunking is None else json.dumps(chunking)])
        return path
    objects = []
    for store, file_id, attributes, chunking in rows:
        obj: dict[str, Any] = {"vector_store_id": store, "file_id": file_id}
        if attributes is not None:
            obj["attributes"] = attributes
        if chunking is not None:
            obj["chunking_strategy"] = chunking
        objects.append(obj)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(obj) + "\n" for obj in objects))
    elif fmt == "yaml":
        path.write_text(yaml.safe_dump({"items": objects}, sort_keys=False))
    else:  # grouped YAML: a list entry is a file id or a mapping with its options
        groups: dict[str, list[Any]] = {}
        for obj in objects:
            store = obj.pop("vector_store_id")
            groups.setdefault(store, []).append(obj if len(obj) > 1 else obj["file_id"])
        path.write_text(yaml.safe_dump({"vector_stores": groups}, sort_keys=False))
    return path


def args_for(manifest: Path, base_url: str, *extra: str) -> list[str]:
    return ["run", str(manifest), "--base-url", base_url, "--json", *FAST, *extra]


def contents(record: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(store, file_id): entry
            for store, files in record["vector_store_files"].items()
            for file_id, entry in files.items()}


def assert_converged(record: Mapping[str, Any], rows: Sequence[Row],
                     before: Mapping[tuple[str, str], Any] | None = None) -> None:
    """Each pair is in its store once, with the manifest's attributes (or, where it gives
    none, with what the store held before: `before`, or none for a new file)."""
    held = contents(record)
    for store, file_id, attributes, chunking in rows:
        entry = held.get((store, file_id))
        assert entry is not None, (store, file_id)
        want = attributes if attributes is not None else (before or {}).get((store, file_id), {})
        assert same_attributes(entry["attributes"], want), (store, file_id, entry, want)
        reported = entry["chunking_strategy"]["static"]
        sizes = (reported["max_chunk_size_tokens"], reported["chunk_overlap_tokens"])
        if chunking == STATIC:
            assert sizes == (400, 100)
        else:
            assert sizes == AUTO_STATIC
        pair = record["pairs"].get(f"{store}/{file_id}", {})
        assert pair.get("attached", 0) + int(pair.get("preloaded", False)) == 1, pair


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "yaml", "grouped"])
@pytest.mark.parametrize("batch", ["0", "3"])
def test_every_format_converges_and_a_rerun_sends_nothing(tmp_path: Path, sandbox, fmt: str,
                                                         batch: str):
    """Each format, per file and in batches: every pair ends in its store with exactly the
    manifest's attributes and chunking; a rerun sends no request."""
    sb = sandbox()
    rows = rows_for(2, 5)
    manifest = write_manifest(tmp_path / f"m.{'yaml' if fmt == 'grouped' else fmt}", fmt, rows)
    first = run_cli(*args_for(manifest, sb.base_url, "--batch-size", batch))
    assert first.code == 0, first.err
    assert first.json()["attached"] == len(rows)
    assert_converged(sb.record(), rows)
    if batch != "0":
        assert sb.record()["by_route"].get("POST attach", 0) == 0
    requests = sb.record()["requests"]
    again = run_cli(*args_for(manifest, sb.base_url, "--batch-size", batch))
    assert again.code == 0, again.err
    assert sb.record()["requests"] == requests
    assert again.json()["attached_earlier"] == len(rows)


@pytest.mark.parametrize("batch", ["0", "4"])
def test_changed_attributes_get_exactly_one_update_each(tmp_path: Path, sandbox, batch: str):
    """After the manifest's attributes change for some pairs, the rerun sends exactly one
    update per changed pair and nothing else; `{}` clears; a third run sends nothing."""
    sb = sandbox()
    rows = rows_for(2, 5)
    manifest = write_manifest(tmp_path / "m.jsonl", "jsonl", rows)
    assert run_cli(*args_for(manifest, sb.base_url, "--batch-size", batch)).code == 0
    changed = list(rows)
    changed[0] = (*rows[0][:2], {"lang": "fr"}, rows[0][3])
    changed[5] = (*rows[5][:2], {}, rows[5][3])
    changed[2] = (*rows[2][:2], {"year": 2021.0}, rows[2][3])  # was not managed: now it is
    changed[6] = (*rows[6][:2], {"year": 2021.0}, rows[6][3])  # {} before
    changed[8] = (*rows[8][:2], {"lang": "de", "year": 2023.0, "public": True}, rows[8][3])
    write_manifest(manifest, "jsonl", changed)  # [8] is the same as before: 2023 == 2023.0
    before = sb.record()
    second = run_cli(*args_for(manifest, sb.base_url, "--batch-size", batch))
    assert second.code == 0, second.err
    after = sb.record()
    assert after["by_route"].get("POST update", 0) == 4
    for route in ("POST attach", "POST batch"):
        assert after["by_route"].get(route, 0) == before["by_route"].get(route, 0)
    assert after["requests"] - before["requests"] == 4
    assert second.json()["updated"] == 4
    assert_converged(after, changed)
    status = json.loads(run_cli("status", str(manifest), "--json").out)
    assert (status["updated"], status["to_update"]) == (4, 0)
    third = run_cli(*args_for(manifest, sb.base_url))
    assert third.code == 0, third.err
    assert sb.record()["requests"] == after["requests"]


@pytest.mark.parametrize("batch", ["0", "3"])
def test_files_the_store_already_held_are_updated_only_where_they_differ(
        tmp_path: Path, sandbox, batch: str):
    """A store already holding files with stale attributes, none, or the right ones: each
    file is added at most once, one update per file that differs, none for the rest."""
    sb = sandbox()
    want = {"lang": "en", "n": 1}
    sb.preload("vector_store", "vs_1", [
        {"file_id": "file-stale", "attributes": {"lang": "de", "n": 1}},
        {"file_id": "file-bare"},
        {"file_id": "file-same", "attributes": {"n": 1.0, "lang": "en"}},
    ])
    rows: list[Row] = [("vs_1", f, dict(want), None)
                       for f in ("file-stale", "file-bare", "file-same", "file-new")]
    manifest = write_manifest(tmp_path / "m.csv", "csv", rows)
    res = run_cli(*args_for(manifest, sb.base_url, "--batch-size", batch))
    assert res.code == 0, res.err
    record = sb.record()
    assert record["by_route"].get("POST update", 0) == 2
    assert {k: v["updated"] for k, v in record["pairs"].items() if v["updated"]} == {
        "vs_1/file-stale": 1, "vs_1/file-bare": 1}
    assert_converged(record, rows)
    assert res.json()["updated"] == 2
    assert res.json()["attached"] + res.json()["already_attached"] == 2


def test_a_plain_manifest_never_touches_attributes(tmp_path: Path, sandbox):
    """Attributes a manifest does not give are not managed: a plain manifest leaves every
    existing attribute as it was, and sends no update."""
    sb = sandbox()
    held = {"lang": "de", "kept": True}
    sb.preload("vector_store", "vs_1", [{"file_id": "file-a", "attributes": held}])
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,file_id\nvs_1,file-a\nvs_1,file-b\n")
    for batch in ("0", "2"):
        res = run_cli(*args_for(manifest, sb.base_url, "--batch-size", batch,
                                "--log", str(tmp_path / f"{batch}.log")))
        assert res.code == 0, res.err
    record = sb.record()
    assert record["by_route"].get("POST update", 0) == 0
    assert contents(record)[("vs_1", "file-a")]["attributes"] == held
    assert contents(record)[("vs_1", "file-b")]["attributes"] == {}


def test_a_chunking_mismatch_is_a_warning_not_a_re_add(tmp_path: Path, sandbox):
    """A file already in the store with another chunking: counted and warned, not re-added,
    exit 0."""
    sb = sandbox()
    sb.preload("vector_store", "vs_1", [{"file_id": "file-a", "chunking_strategy": STATIC}])
    rows: list[Row] = [("vs_1", "file-a", None, {"type": "auto"}),
                       ("vs_1", "file-b", None, {"type": "auto"})]
    manifest = write_manifest(tmp_path / "m.jsonl", "jsonl", rows)
    res = run_cli("run", str(manifest), "--base-url", sb.base_url, *FAST)
    assert res.code == 0, res.err
    assert "another chunking strategy" in res.out
    record = sb.record()
    assert record["pairs"]["vs_1/file-a"]["attached"] == 0
    js = run_cli(*args_for(manifest, sb.base_url, "--log", str(tmp_path / "other.log")))
    assert js.json()["chunking_mismatch"] == 1


def test_dry_run_counts_the_updates_it_would_send(tmp_path: Path, sandbox):
    """--dry-run shows each update with its body, and counts `updates`."""
    sb = sandbox()
    rows = rows_for(1, 3)
    manifest = write_manifest(tmp_path / "m.jsonl", "jsonl", rows)
    assert run_cli(*args_for(manifest, sb.base_url)).code == 0
    write_manifest(manifest, "jsonl", [(*rows[0][:2], {"lang": "xx"}, None), *rows[1:]])
    text = run_cli("run", str(manifest), "--dry-run")
    assert text.code == 0, text.err
    assert 'POST /vector_stores/vs_0/files/file-0x0 {"attributes":{"lang":"xx"}}' in text.out
    counts = json.loads(run_cli("run", str(manifest), "--dry-run", "--json").out)
    assert (counts["updates"], counts["attached_earlier"]) == (1, 2)


@pytest.mark.parametrize("batch", ["0", "5"])
def test_kill_9_mid_run_then_rerun_converges_without_doing_anything_twice(
        tmp_path: Path, sandbox, batch: str):
    """kill -9 at random moments (batches with per-file options, and single POSTs), then
    reruns to exit 0: converged, nothing added twice, no update sent twice for one change."""
    sb = sandbox(latency_ms=40, seed=5)  # a run takes ~1.5 s: the kills land mid-run
    rng = random.Random(int(batch) + 11)
    stale = [{"file_id": f"file-0x{f}", "attributes": {"lang": "old"}} for f in range(0, 40, 4)]
    sb.preload("vector_store", "vs_0", stale)
    rows: list[Row] = [(f"vs_{s}", f"file-{s}x{f}", {"lang": "en", "n": f}, None)
                       for s in range(3) for f in range(40)]
    manifest = write_manifest(tmp_path / "m.csv", "csv", rows)
    args = args_for(manifest, sb.base_url, "--batch-size", batch, "--concurrency", "4",
                    "--timeout", "2")
    log = log_of(manifest)

    def write_sent(run: int) -> bool:
        """The run-th run has sent a write (its run-start, then a sent or batch-sent line)."""
        if not log.exists():
            return False
        events = read_log_events(log)[0]  # a torn last line is warned, not read
        starts = [i for i, e in enumerate(events) if e.get("event") == "run-start"]
        return len(starts) > run and any(e.get("event") in ("sent", "batch-sent")
                                         for e in events[starts[run]:])

    kill_9_at_random_moments(args, rng, between=(0.0, 0.9), once=write_sent)
    final = run_cli(*args)
    assert final.code == 0, final.err
    record = sb.record()
    assert_converged(record, rows)
    assert all(v["updated"] <= 1 for v in record["pairs"].values())
    assert sum(v["updated"] for v in record["pairs"].values()) <= len(stale)
    events = read_events(log)
    starts = sum(e["event"] == "run-start" for e in events)
    ends = sum(e["event"] == "run-end" for e in events)
    assert starts == 4
    assert ends < starts  # the kills landed mid-run
