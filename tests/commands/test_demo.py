"""The demo and the example manifests a user copies: jobs/ leads with vector stores, every file
there validates, the vector-store examples say the same thing in each format, and the demo
confirms from the sandbox's own record what it claims."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from runner.commands.demo import DEMO_STALE, check_demo, demo_manifest
from runner.items import Item
from runner.manifest import iter_items, open_manifest
from runner.requests.targets import VectorStoreFiles
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "jobs"
VECTOR_STORES = ("vector_store_id", "vector_stores")


def read(path: Path | str, owner: tuple[str, str] = VECTOR_STORES) -> list[Item]:
    return list(iter_items(open_manifest(str(path), None), *owner))


def as_facts(items: list[Item]) -> list[tuple[str, str, Any, Any]]:
    """Each pair with its options, as plain values (the same in every format)."""
    return [(i.owner, i.file_id,
              dict(i.options.attributes) if i.options and i.options.attributes is not None
              else None,
              dict(i.options.chunking_strategy) if i.options and i.options.chunking_strategy
              else None)
             for i in items]


@pytest.mark.parametrize("name", sorted(p.name for p in JOBS.iterdir()))
def test_every_example_validates(name: str):
    """Each file in jobs/ passes `attach-runner validate` as it stands, with no --target (the
    manifest names it) and no key."""
    res = run_cli("validate", str(JOBS / name), key=None)
    assert res.code == 0, res.err
    assert res.err == ""
    target = "assistant-files" if name.startswith("legacy-") else "vector-store-files"
    assert f"OK ({Path(name).suffix[1:]}, {target}, from the manifest)" in res.out


def test_jobs_lead_with_vector_stores():
    """Vector-store examples in each format; the assistants one is named legacy; no example
    holds an ID the sandbox treats specially (`missing`, `fail`)."""
    names = sorted(p.name for p in JOBS.iterdir())
    assert names == ["legacy-assistants.csv", "vector-stores.csv", "vector-stores.jsonl",
                     "vector-stores.yaml"]
    for path in JOBS.iterdir():
        text = path.read_text().lower()
        assert "missing" not in text
        assert "fail" not in text
    assert len(read(JOBS / "legacy-assistants.csv", ("assistant_id", "assistants"))) == 12


def test_vector_store_examples_agree():
    """The packaged demo manifest is jobs/vector-stores.yaml; the CSV and JSONL hold the same
    pairs with the same attributes (the JSONL also the same chunking strategy; the CSV shows
    the attributes column only); some pairs are plain, one YAML value is a quoted "no"."""
    assert (JOBS / "vector-stores.yaml").read_bytes() == Path(demo_manifest()).read_bytes()
    grouped = as_facts(read(JOBS / "vector-stores.yaml"))
    assert len(grouped) == 12
    assert as_facts(read(JOBS / "vector-stores.jsonl")) == grouped
    assert as_facts(read(JOBS / "vector-stores.csv")) == [(*f[:3], None) for f in grouped]
    assert sum(f[2] is not None for f in grouped) >= 5
    assert sum(f[2] is None for f in grouped) >= 3
    assert sum(f[3] is not None for f in grouped) == 1
    assert any(f[2] and f[2].get("reviewed") == "no" for f in grouped)


def test_demo_batches_carry_each_files_options():
    """With the demo's --batch-size 4, a store with options goes out as one `files: [...]`
    batch (each file with its own options), a plain one as `file_ids`."""
    items = read(demo_manifest())
    stores: dict[str, list[Item]] = {}
    for item in items:
        stores.setdefault(item.owner, []).append(item)
    assert all(len(group) == 4 for group in stores.values())
    bodies = {store: json.loads(VectorStoreFiles().batch_body(group))
              for store, group in stores.items()}
    shapes = sorted(next(iter(body)) for body in bodies.values())
    assert shapes == ["file_ids", "files", "files"]
    store, file_id, stale = DEMO_STALE
    [wanted] = [i for i in items if (i.owner, i.file_id) == (store, file_id)]
    assert wanted.options is not None
    assert wanted.options.attributes not in (None, stale)


def record_for(items: list[Item], **changes: Mapping[str, Any]) -> dict[str, Any]:
    """A sandbox record in which every pair was attached once with the manifest's attributes;
    `changes` overrides entries of "pairs" by key."""
    pairs: dict[str, Any] = {}
    stores: dict[str, dict[str, Any]] = {}
    for item in items:
        pairs[f"{item.owner}/{item.file_id}"] = {"attached": 1, "preloaded": False, "updated": 0}
        attributes = item.options.attributes if item.options else None
        stores.setdefault(item.owner, {})[item.file_id] = {
            "attributes": dict(attributes) if attributes is not None else {}}
    for key, entry in changes.items():
        pairs[key] = {**pairs[key], **entry}
    return {"pairs": pairs, "vector_store_files": stores, "requests": 12}


def test_demo_check_reads_the_record():
    """The demo's confirmation holds only when each pair is in place once (a preloaded pair not
    added again counts once) and each managed pair holds the manifest's attributes; numbers
    compare by value."""
    items = read(demo_manifest())
    good = check_demo(record_for(items), items)
    assert (good.pairs, good.once, good.more, good.managed, good.same) == (12, 12, 0, 7, 7)
    assert good.ok
    store, file_id, _ = DEMO_STALE
    key = f"{store}/{file_id}"
    preloaded = check_demo(record_for(items, **{key: {"attached": 0, "preloaded": True,
                                                      "updated": 1}}), items)
    assert preloaded.ok
    assert preloaded.updates == 1
    twice = check_demo(record_for(items, **{key: {"attached": 1, "preloaded": True}}), items)
    assert not twice.ok
    assert twice.more == 1
    record = record_for(items)
    record["vector_store_files"][store][file_id]["attributes"] = {"product": "widget",
                                                                 "lang": "fr"}
    stale = check_demo(record, items)
    assert not stale.ok
    assert stale.same == 6
    record = record_for(items)
    record["vector_store_files"]["vs_demo_handbook"]["file-demo01"]["attributes"]["year"] = 2024.0
    assert check_demo(record, items).ok
    record["vector_store_files"]["vs_demo_handbook"]["file-demo01"]["attributes"]["public"] = 1
    assert not check_demo(record, items).ok


def test_demo_shows_convergence(tmp_path: Path):
    """The demo runs vector stores with attributes: the stale file is updated once, the status
    says so, and the closing lines confirm both rules from the sandbox's record."""
    res = run_cli("demo", cwd=tmp_path, key=None)
    assert res.code == 0, res.out + res.err
    lines = res.out.splitlines()
    assert any(line.startswith("attach-runner: every pair is attached (12 pairs, "
                               "vector-store-files,") for line in lines)
    assert [line.split()[:2] for line in lines if line.startswith("  updated")] == [
        ["updated", "1"], ["updated", "1"]]
    assert any(line.startswith("sandbox record: 12 of 12 pairs in their store exactly once, "
                               "0 attached more than once") for line in lines)
    assert any(line.startswith("sandbox record: 7 of 7 pairs with attributes hold the "
                               "manifest's (1 updated in place)") for line in lines)
    assert "demo: OK: every pair attached exactly once, with the manifest's attributes" in lines
