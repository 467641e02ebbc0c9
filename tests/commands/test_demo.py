"""The demo and the example manifests a user copies: jobs/ leads with vector stores, every file
there validates, the vector-store examples say the same thing in each format (file ids, and a
glob of local files in jobs/docs/, the package's runner/data/docs/), and the demo confirms
from the sandbox's own record what it claims."""

from __future__ import annotations

import hashlib
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
MANIFESTS = sorted(p.name for p in JOBS.iterdir() if p.is_file())
DEMO_DOCS = Path(demo_manifest()).parent / "docs"
VECTOR_STORES = ("vector_store_id", "vector_stores")


def read(path: Path | str, owner: tuple[str, str] = VECTOR_STORES) -> list[Item]:
    return list(iter_items(open_manifest(str(path), None), *owner))


def as_facts(items: list[Item]) -> list[tuple[str, str, Any, Any]]:
    """Each pair with its options, as plain values (the same in every format); a local file's
    pair by its path."""
    return [(i.owner, i.file_id or (i.local.path if i.local else ""),
              dict(i.options.attributes) if i.options and i.options.attributes is not None
              else None,
              dict(i.options.chunking_strategy) if i.options and i.options.chunking_strategy
              else None)
             for i in items]


@pytest.mark.parametrize("name", MANIFESTS)
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
    holds an ID or a file name the sandbox treats specially (`missing`, `fail`); the local
    files the examples name (jobs/docs/) are the demo's, byte for byte."""
    assert MANIFESTS == ["legacy-assistants.csv", "vector-stores.csv", "vector-stores.jsonl",
                         "vector-stores.yaml"]
    assert sorted(p.name for p in JOBS.iterdir() if p.is_dir()) == ["docs"]
    docs = sorted(p.name for p in (JOBS / "docs").iterdir())
    assert docs == sorted(p.name for p in DEMO_DOCS.iterdir())
    assert all((JOBS / "docs" / name).read_bytes() == (DEMO_DOCS / name).read_bytes()
               for name in docs)
    for path in JOBS.rglob("*"):
        if path.is_dir():
            continue
        text = path.read_text().lower()
        assert "missing" not in text
        assert "fail" not in text
    assert len(read(JOBS / "legacy-assistants.csv", ("assistant_id", "assistants"))) == 12


def test_vector_store_examples_agree():
    """The packaged demo manifest is jobs/vector-stores.yaml; the CSV and JSONL hold the same
    pairs with the same attributes (the JSONL also the same chunking strategy; the CSV shows
    the attributes column only), local files included (one glob row); some pairs are plain,
    one YAML value is a quoted "no"."""
    assert (JOBS / "vector-stores.yaml").read_bytes() == Path(demo_manifest()).read_bytes()
    grouped = as_facts(read(JOBS / "vector-stores.yaml"))
    assert len(grouped) == 16
    local = [f for f in grouped if f[1].startswith(str(JOBS / "docs") + "/")]
    assert [Path(f[1]).name for f in local] == sorted(p.name for p in DEMO_DOCS.iterdir())
    assert all(f[2] is not None for f in local)
    assert as_facts(read(JOBS / "vector-stores.jsonl")) == grouped
    assert as_facts(read(JOBS / "vector-stores.csv")) == [(*f[:3], None) for f in grouped]
    assert sum(f[2] is not None for f in grouped) >= 5
    assert sum(f[2] is None for f in grouped) >= 3
    assert sum(f[3] is not None for f in grouped) == 1
    assert any(f[2] and f[2].get("reviewed") == "no" for f in grouped)


def test_demo_batches_carry_each_files_options():
    """With the demo's --batch-size 4, a store with options goes out as one `files: [...]`
    batch (each file with its own options), a plain one as `file_ids`; local files (uploaded,
    then attached one by one) are not in the batches."""
    items = read(demo_manifest())
    assert sum(i.local is not None for i in items) == 4
    stores: dict[str, list[Item]] = {}
    for item in [i for i in items if i.local is None]:
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


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def record_for(items: list[Item], **changes: Mapping[str, Any]) -> dict[str, Any]:
    """A sandbox record in which every pair was attached once with the manifest's attributes,
    each local file's content uploaded once (file object `file-up<N>`); `changes` overrides
    entries of "pairs" by key."""
    pairs: dict[str, Any] = {}
    stores: dict[str, dict[str, Any]] = {}
    files: dict[str, dict[str, Any]] = {}
    for item in items:
        file_id = item.file_id
        if item.local is not None:
            file_id = f"file-up{len(files) + 1}"
            files[file_id] = {"filename": Path(item.local.path).name, "deleted": False,
                              "sha256": sha256_of(item.local.path), "stores": [item.owner]}
        pairs[f"{item.owner}/{file_id}"] = {"attached": 1, "preloaded": False, "updated": 0}
        attributes = item.options.attributes if item.options else None
        stores.setdefault(item.owner, {})[file_id] = {
            "attributes": dict(attributes) if attributes is not None else {}}
    for key, entry in changes.items():
        pairs[key] = {**pairs[key], **entry}
    return {"pairs": pairs, "vector_store_files": stores, "files": files, "requests": 12}


def test_demo_check_reads_the_record():
    """The demo's confirmation holds only when each pair is in place once (a preloaded pair not
    added again counts once) and each managed pair holds the manifest's attributes; numbers
    compare by value."""
    items = read(demo_manifest())
    good = check_demo(record_for(items), items)
    assert (good.pairs, good.once, good.more, good.managed, good.same) == (16, 16, 0, 11, 11)
    assert (good.local, good.uploaded_once) == (4, 4)
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
    assert stale.same == 10
    record = record_for(items)
    record["vector_store_files"]["vs_demo_handbook"]["file-demo01"]["attributes"]["year"] = 2024.0
    assert check_demo(record, items).ok
    record["vector_store_files"]["vs_demo_handbook"]["file-demo01"]["attributes"]["public"] = 1
    assert not check_demo(record, items).ok


def test_demo_check_confirms_each_local_file_uploaded_once():
    """A local file's pair is found by its content's SHA-256 in the record's file objects: a
    content in two live objects (uploaded twice) fails the check, a deleted second object does
    not count, an object with other content is not the file's, and the pair must hold the
    manifest's attributes in its store."""
    items = read(demo_manifest())
    record = record_for(items)
    twice = {**record["files"]["file-up1"]}
    record["files"]["file-up9"] = twice
    check = check_demo(record, items)
    assert (check.local, check.uploaded_once) == (4, 3)
    assert not check.ok
    record["files"]["file-up9"] = {**twice, "deleted": True}
    assert check_demo(record, items).ok
    record = record_for(items)
    record["files"]["file-up2"]["sha256"] = "0" * 64  # the store holds another content
    other = check_demo(record, items)
    assert (other.uploaded_once, other.once) == (3, 15)
    assert not other.ok
    record = record_for(items)
    [store] = record["files"]["file-up3"]["stores"]
    record["vector_store_files"][store]["file-up3"]["attributes"] = {"team": "hr"}
    assert not check_demo(record, items).ok
    assert check_demo(record_for(items), items, digest=lambda path: "f" * 64).uploaded_once == 0


def test_demo_shows_convergence(tmp_path: Path):
    """The demo runs vector stores with attributes: the stale file is updated once, the status
    says so, and the closing lines confirm both rules from the sandbox's record."""
    res = run_cli("demo", cwd=tmp_path, key=None)
    assert res.code == 0, res.out + res.err
    lines = res.out.splitlines()
    assert any(line.startswith("demo: running 16 pairs (4 of them local files to upload), "
                               "3 vector stores") for line in lines)
    assert any(line.startswith("attach-runner: every pair is attached (16 pairs, "
                               "vector-store-files,") for line in lines)
    assert [line.split()[:2] for line in lines if line.startswith("  updated")] == [
        ["updated", "1"], ["updated", "1"]]
    assert any(line.startswith("sandbox record: 16 of 16 pairs in their store exactly once, "
                               "0 attached more than once") for line in lines)
    assert any(line.startswith("sandbox record: 11 of 11 pairs with attributes hold the "
                               "manifest's (1 updated in place)") for line in lines)
    assert any(line.startswith("sandbox record: 4 of 4 local files uploaded once (one file "
                               "object each, its SHA-256 the file's)") for line in lines)
    assert ("demo: OK: every pair attached exactly once, with the manifest's attributes; "
            "each local file uploaded once") in lines
