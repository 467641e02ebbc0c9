"""Local files (SPEC "Local files"): `path` rows uploaded exactly once and attached, judged by
the sandbox's record of file objects (each content's SHA-256, which stores hold it) and of
its stores' files; under faults that leave uploads uncertain, and kill -9."""

from __future__ import annotations

import json
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.sandbox import SandboxThread
from tests.cli import (
    FAST,
    kill_9_at_random_moments,
    rerun_until_exit_0,
    run_main,
    spawn,
    wait_for_held_writes,
    wait_until,
)
from tests.local_files import (  # noqa: F401 - sandbox_key: a fixture
    UNCERTAIN_UPLOAD_FAULTS,
    UNDER_FAULTS,
    args_for,
    assert_exactly_once,
    contents_in,
    files_in,
    reported,
    sandbox_key,
    settled_under_faults,
    sha,
    write,
)

pytestmark = pytest.mark.usefixtures("sandbox_key")


def tree(root: Path) -> dict[str, str]:
    """A nested tree with what globs must skip: hidden names, links, an unsupported and an
    empty file. Returns what each supported, visible file holds, by path below `root`."""
    held = {
        "a.md": "# A\nalpha\n",
        "b.txt": "bravo\n",
        "sub/c.md": "# C\ncharlie\n",
        "sub/deep/d.py": "print('delta')\n",
        "sub/copy-of-a.md": "# A\nalpha\n",  # the same content as a.md
    }
    for name, text in held.items():
        write(root / name, text)
    write(root / ".hidden.md", "hidden\n")
    write(root / "sub/.cache/e.md", "cached\n")
    write(root / "image.png", "not text\n")
    write(root / "empty.md", "")
    (root / "link.md").symlink_to(root / "a.md")
    (root / "linked").symlink_to(root / "sub")
    return held


def docs_folder(root: Path, texts: list[str], prefix: str) -> Path:
    """docs/PREFIXnn.md holding each of `texts`, and a manifest taking them all to vs_1."""
    for i, text in enumerate(texts):
        write(root / "docs" / f"{prefix}{i:02}.md", text)
    manifest = root / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,docs/*.md\n")
    return manifest


def test_a_nested_tree_into_three_stores_in_every_format(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    docs = tmp_path / "docs"
    held = tree(docs)
    csv = tmp_path / "by-path.csv"
    csv.write_text("vector_store_id,path,attributes\n"
                   'vs_csv,docs/a.md,"{""team"": ""x""}"\n'
                   "vs_csv,docs/sub/c.md,\n"
                   f"vs_csv,{docs / 'sub/deep/d.py'},\n")
    jsonl = tmp_path / "glob.jsonl"
    jsonl.write_text(json.dumps({"vector_store_id": "vs_jsonl", "path": "docs/**/*.md"}) + "\n")
    yaml = tmp_path / "grouped.yaml"
    yaml.write_text("vector_stores:\n  vs_yaml:\n"
                    "    - {path: 'docs/**/*', attributes: {lang: en}}\n")
    for manifest in (csv, jsonl, yaml):
        log = tmp_path / f"{manifest.stem}.log"
        first = run_main(args_for(sb, manifest, log))
        assert first.code == 0, first.out
    record = sb.record()
    assert contents_in(record, "vs_csv") == sorted(
        sha(held[n]) for n in ("a.md", "sub/c.md", "sub/deep/d.py"))
    # The glob skips hidden names, links, the unsupported and the empty file; a.md and its
    # copy are one content: one file object, in the store once.
    assert contents_in(record, "vs_jsonl") == sorted(
        {sha(held[n]) for n in ("a.md", "sub/c.md", "sub/copy-of-a.md")})
    assert contents_in(record, "vs_yaml") == sorted({sha(text) for text in held.values()})
    # One file object per distinct content, across the three logs' runs? Each log uploads
    # what it has not seen, so per log: never two objects of one content from one log.
    by_content: dict[str, int] = {}
    for obj in record["files"].values():
        by_content[obj["sha256"]] = by_content.get(obj["sha256"], 0) + 1
    assert max(by_content.values()) <= 3  # at most once per log
    attrs = {record["files"][f]["filename"]: v["attributes"]
             for f, v in files_in(record, "vs_yaml").items()}
    assert all(a == {"lang": "en"} for a in attrs.values())
    assert {record["files"][f]["filename"]: v["attributes"]
            for f, v in files_in(record, "vs_csv").items()}["a.md"] == {"team": "x"}

    # The rerun sends nothing and reads no file: each file is rewritten with other content
    # of the same size and given back its mtime, which a run that read it would upload.
    for name, text in held.items():
        write(docs / name, text.upper() if text.upper() != text else text.lower())
    requests_before = sb.record()["requests"]
    for manifest in (csv, jsonl, yaml):
        again = run_main(args_for(sb, manifest, tmp_path / f"{manifest.stem}.log"))
        assert again.code == 0, again.out
        summary = again.json()
        assert summary["requests"] == 0
        assert summary["uploaded"] == 0
        assert summary["attached_earlier"] == summary["pairs"]
    assert sb.record()["requests"] == requests_before


def test_one_upload_for_a_path_in_two_stores_and_for_two_paths_of_one_content(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    write(tmp_path / "a.md", "same\n")
    write(tmp_path / "b.md", "same\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,a.md\nvs_2,a.md\nvs_1,b.md\n")
    result = run_main(args_for(sb, manifest, tmp_path / "log"))
    assert result.code == 0, result.err
    record = sb.record()
    assert record["uploads"]["applied"] == 1
    assert len(files_in(record, "vs_1")) == 1
    assert len(files_in(record, "vs_2")) == 1
    summary = result.json()
    assert summary["uploaded"] == 1
    assert summary["attach_requests"] == 2  # b.md shares a.md's attach in vs_1


@pytest.mark.parametrize("fault", UNCERTAIN_UPLOAD_FAULTS)
def test_uncertain_uploads_are_settled_by_listing_never_sent_blind(
        tmp_path: Path, sandbox: Callable[..., SandboxThread], fault: dict[str, Any]) -> None:
    sb = sandbox(seed=7, fault_methods=("POST",), **fault)
    texts = [f"document {i}\n" * (i + 1) for i in range(12)]
    for i, text in enumerate(texts):
        write(tmp_path / "docs" / f"doc{i}.md", text)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"vector_store_id": "vs_1", "path": "docs/*.md"}) + "\n")
    log = tmp_path / "log"
    record, duplicates = settled_under_faults(sb, args_for(sb, manifest, log, *UNDER_FAULTS))
    assert_exactly_once(record, "vs_1", texts, duplicates)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line["event"] == "uploaded" for line in lines)


def test_two_files_of_one_name_and_size_both_uncertain_are_never_swapped(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # Every upload is applied and answered 500: both are uncertain, and either object found
    # by listing could be either file's. Neither is adopted; the rerun (faults off) uploads
    # each again, and reports the orphans.
    sb = sandbox(fault_methods=("POST",), error_after_rate=1.0)
    write(tmp_path / "x" / "report.md", "content one\n")
    write(tmp_path / "y" / "report.md", "content two\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,x/report.md\nvs_1,y/report.md\n")
    log = tmp_path / "log"
    first = run_main(args_for(sb, manifest, log, "--max-attempts", "2"))
    assert first.code == 1
    sb.update(error_after_rate=0.0)
    second = run_main(args_for(sb, manifest, log))
    assert second.code == 0, second.err
    record = sb.record()
    orphans = reported([first, second])
    assert orphans  # the orphans the 500s left were named
    assert_exactly_once(record, "vs_1", ["content one\n", "content two\n"], orphans)
    # SPEC "Clean-up": a possible duplicate is never deleted, not even by a run whose end
    # deletes what it made and no store holds.
    third = run_main(args_for(sb, manifest, log))
    assert third.code == 0, third.err
    assert not any(sb.record()["files"][f]["deleted"] for f in orphans)


def test_kill_9_mid_upload_leaves_nothing_twice(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox(seed=3, fault_methods=("POST",), late_apply_rate=0.3, late_apply_ms=300)
    texts = [f"{i} " * (2000 + i) for i in range(40)]
    for i, text in enumerate(texts):
        write(tmp_path / "docs" / f"d{i:02}.txt", text)
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,docs/*.txt\n")
    log = tmp_path / "log"
    args = ["run", str(manifest), "--base-url", sb.base_url, "--log", str(log), *FAST,
            "--timeout", "1"]

    def sent_something(_: int) -> bool:
        return log.exists() and b'"upload-sent"' in log.read_bytes()

    kill_9_at_random_moments(args, random.Random(5), (0.0, 0.4), kills=3, once=sent_something)
    final = rerun_until_exit_0([*args, "--json"], runs=5)
    record = wait_for_held_writes(sb)
    assert_exactly_once(record, "vs_1", texts, set(final.json()["possible_duplicates"]))


def test_dry_run_hashes_and_lists_the_uploads_and_sends_nothing(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    write(tmp_path / "a.md", "same\n")
    write(tmp_path / "b.md", "same\n")
    write(tmp_path / "c.md", "other\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,*.md\nvs_2,a.md\n")
    log = tmp_path / "log"
    dry = run_main(["run", str(manifest), "--log", str(log), "--dry-run", "--json"])
    assert dry.code == 0, dry.err
    plan = dry.json()
    # Two contents, uploaded once each; a.md and b.md share one attach in vs_1; each
    # store's uploaded files go in one file batch.
    assert (plan["uploads"], plan["upload_bytes"]) == (2, len("same\n") + len("other\n"))
    assert (plan["pairs_to_attach"], plan["attach_requests"], plan["batch_requests"]) == (
        4, 2, 2)
    text = run_main(["run", str(manifest), "--log", str(log), "--dry-run"]).out
    assert text.count("POST /files ") == 2
    assert not log.exists()
    run = run_main(args_for(sb, manifest, log))
    assert run.code == 0, run.err
    assert run.json()["attach_requests"] == plan["attach_requests"]
    assert sb.record()["uploads"]["applied"] == plan["uploads"]
    again = run_main(["run", str(manifest), "--log", str(log), "--dry-run", "--json"]).json()
    # Every pair in place per the log (b.md names the content a.md does in vs_1).
    assert (again["uploads"], again["attach_requests"], again["attached_earlier"]) == (0, 0, 4)


def test_a_changed_file_replaces_its_old_version_which_is_deleted(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    doc = write(tmp_path / "a.md", "first version\n")
    write(tmp_path / "b.md", "unchanged\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,*.md\nvs_2,a.md\n")
    log = tmp_path / "log"
    assert run_main(args_for(sb, manifest, log)).code == 0
    old_id = next(f for f, o in sb.record()["files"].items() if o["filename"] == "a.md")
    write(doc, "second, longer version\n")
    status = json.loads(run_main(["status", str(manifest), "--log", str(log),
                                  "--json"]).out)
    assert status["changed"] == 2  # pairs: a.md in two stores
    planned = run_main(args_for(sb, manifest, log, "--dry-run"))
    assert planned.code == 0, planned.err
    assert (planned.json()["uploads"], planned.json()["replaces"],
            planned.json()["file_deletes"]) == (1, 2, 1)
    shown = run_main([a for a in args_for(sb, manifest, log, "--dry-run") if a != "--json"])
    assert f"DELETE /vector_stores/vs_2/files/{old_id}   (detach-version" in shown.out
    assert f"DELETE /files/{old_id}   (ours, in no store now)" in shown.out
    result = run_main(args_for(sb, manifest, log))
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["uploaded"] == 1
    assert summary["changed"] == 1
    assert summary["changed_examples"] == [{"path": str(doc), "old_file_id": old_id}]
    assert summary["replaced"] == 2  # in both stores
    assert summary["files_deleted"] == 1
    record = sb.record()
    for store, texts in (("vs_1", ("second, longer version\n", "unchanged\n")),
                         ("vs_2", ("second, longer version\n",))):
        assert contents_in(record, store) == sorted(sha(t) for t in texts)
    assert record["files"][old_id]["deleted"]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    detaches = [line for line in lines if line.get("op") == "detach-version"
                and line["event"] == "done"]
    assert sorted(line["vector_store_id"] for line in detaches) == ["vs_1", "vs_2"]
    assert {line["file_id"] for line in detaches} == {old_id}
    # The new version was attached before the old one was taken out (no gap).
    first_detach = min(i for i, line in enumerate(lines) if line.get("op") == "detach-version")
    attached_new = max(i for i, line in enumerate(lines) if line["event"] == "done"
                       and line.get("sha256") == sha("second, longer version\n"))
    assert attached_new < first_detach
    again = run_main(args_for(sb, manifest, log))
    assert again.code == 0, again.err
    assert again.json()["requests"] == 0
    human = run_main([a for a in args_for(sb, manifest, log) if a != "--json"])
    assert "warning" not in human.out  # the rerun found nothing new to say


def test_keep_files_keeps_replaced_objects_until_a_run_without_it(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    doc = write(tmp_path / "a.md", "first version\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,a.md\n")
    log = tmp_path / "log"
    assert run_main(args_for(sb, manifest, log)).code == 0
    old_id = next(iter(sb.record()["files"]))
    write(doc, "second version\n")
    kept = run_main(args_for(sb, manifest, log, "--keep-files"))
    status = json.loads(run_main(["status", str(manifest), "--log", str(log),
                                  "--json"]).out)
    assert (status["replaced"], status["file_deletes_pending"]) == (1, 1)
    assert kept.code == 0, kept.err
    assert (kept.json()["replaced"], kept.json()["files_deleted"]) == (1, 0)
    record = sb.record()
    assert contents_in(record, "vs_1") == [sha("second version\n")]
    assert not record["files"][old_id]["deleted"]
    later = run_main(args_for(sb, manifest, log))
    assert later.code == 0, later.err
    assert (later.json()["replaced"], later.json()["files_deleted"]) == (0, 1)
    assert later.json()["requests"] == 1  # the delete alone
    assert sb.record()["files"][old_id]["deleted"]
    status = json.loads(run_main(["status", str(manifest), "--log", str(log),
                                  "--json"]).out)
    assert (status["replaced"], status["files_deleted"], status["replaces_pending"],
            status["file_deletes_pending"]) == (1, 1, 0, 0)


def test_a_file_rewritten_while_its_upload_is_held_is_not_attached(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # The sandbox takes the body and holds the upload 1.5 s before it applies and answers;
    # meanwhile the file is rewritten. Its object is deleted, the pair fails retryable, and
    # the next run uploads and attaches the new content.
    sb = sandbox(fault_methods=("POST",), late_apply_rate=1.0, late_apply_ms=1500)
    doc = write(tmp_path / "a.md", "before\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,a.md\n")
    log = tmp_path / "log"
    proc = spawn(*args_for(sb, manifest, log, "--timeout", "10"))
    wait_until(lambda: sb.record()["held_writes"] > 0, proc)
    write(doc, "after, and longer\n", old=False)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert "changed while it was read or uploaded" in summary["failed_by_reason"][0]["message"]
    record = sb.record()
    (made,) = record["files"].values()
    assert made["deleted"]
    assert files_in(record, "vs_1") == {}
    sb.update(late_apply_rate=0.0)
    again = run_main(args_for(sb, manifest, log))
    assert again.code == 0, again.err
    assert contents_in(sb.record(), "vs_1") == [sha("after, and longer\n")]


def test_failed_writes_the_path_of_a_file_whose_upload_was_refused(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox(file_max_bytes=10)  # the sandbox refuses what the API would: too large
    write(tmp_path / "big.md", "more than ten bytes\n")
    write(tmp_path / "ok.md", "small\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,*.md\n")
    log = tmp_path / "log"
    assert run_main(args_for(sb, manifest, log)).code == 1
    failed = run_main(["failed", str(manifest), "--log", str(log)])
    rows = failed.out.splitlines()
    assert rows[0].startswith("vector_store_id,file_id,path,")
    assert len(rows) == 2
    assert rows[1].startswith(f"vs_1,,{tmp_path / 'big.md'},400,")
    # The refusal stands while the file is unchanged: the rerun sends nothing for it.
    again = run_main(args_for(sb, manifest, log))
    assert (again.code, again.json()["refused_earlier"], again.json()["requests"]) == (1, 1, 0)


def test_uploaded_files_are_attached_in_batches_not_one_write_each(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # A store takes --store-rpm writes a minute: at 60 a minute, 30 files attached one
    # request each would take half a minute. Uploads are no store writes; the attaches go
    # in file batches (--batch-size 12: three of them).
    sb = sandbox()
    texts = [f"file {i}\n" for i in range(30)]
    manifest = docs_folder(tmp_path, texts, "f")
    result = run_main(args_for(sb, manifest, tmp_path / "log", "--store-rpm", "60",
                               "--batch-size", "12"))
    assert result.code == 0, result.err
    assert result.json()["attach_requests"] == 3
    assert result.json()["elapsed_s"] < 20
    assert_exactly_once(sb.record(), "vs_1", texts, set())


def test_a_wrong_base_url_trips_the_breaker_on_uploads(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    for i in range(60):
        write(tmp_path / "docs" / f"f{i:02}.md", f"file {i}\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,docs/f0*.md\nvs_2,docs/f[1-3]*.md\n"
                        "vs_3,docs/f[4-5]*.md\n")
    log = tmp_path / "log"
    result = run_main(["run", str(manifest), "--base-url", sb.base_url + "/wrong", "--log",
                       str(log), "--json", *FAST])
    assert result.code == 4, result.err
    assert result.json()["stopped_by"] == "refused"
    assert sb.record()["requests"] <= 40  # the opening's bound (SPEC)
    assert sb.record()["files"] == {}


def test_two_paths_of_one_content_with_other_attributes_in_one_store_are_refused(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # The store keeps the content once, with one set of attributes: the second path's
    # other set is refused, not traded with the first's at every run.
    sb = sandbox()
    write(tmp_path / "a.md", "same\n")
    write(tmp_path / "b.md", "same\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text('vector_store_id,path,attributes\nvs_1,a.md,"{""v"": 1}"\n'
                        'vs_1,b.md,"{""v"": 2}"\n')
    log = tmp_path / "log"
    first = run_main(args_for(sb, manifest, log))
    assert first.code == 1
    (reason,) = first.json()["failed_by_reason"]
    assert "same content as" in reason["message"]
    (attached,) = files_in(sb.record(), "vs_1").values()
    assert attached["attributes"] == {"v": 1}
    requests = sb.record()["requests"]
    again = run_main(args_for(sb, manifest, log))
    # a.md's pair is in place; b.md names it with other attributes: still refused.
    assert (again.code, again.json()["attached_earlier"], again.json()["refused_earlier"]) == (
        1, 1, 1)
    assert sb.record()["requests"] == requests  # no update traded back and forth


def test_a_429_to_uploads_slows_uploads_alone_and_the_run_finishes(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # The sandbox takes 120 uploads a minute in a bucket of their own (its 429s carry that
    # bucket's headers): uploads are paced by a limiter of their own, learned from their own
    # answers, and every file ends uploaded once and attached (SPEC "Upload").
    sb = sandbox(upload_rpm=120)
    texts = [f"paced {i}\n" for i in range(12)]
    manifest = docs_folder(tmp_path, texts, "p")
    result = run_main(args_for(sb, manifest, tmp_path / "log"))
    assert result.code == 0, result.out
    record = sb.record()
    assert record["rate_limited"].get("requests", 0) == 0  # attaches were never held back
    assert record["rate_limited"]["uploads"] > 0  # the limit was met: the test saw the rule
    assert result.json()["uploaded"] == len(texts)
    assert_exactly_once(record, "vs_1", texts, set())
    # Each try's `upload-sent` is written when it goes, after its wait for the rate: one a
    # POST the sandbox answered (429s included), so a killed run's check is due from the
    # last send, not from a line written before a long wait.
    lines = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    sent = sum(line["event"] == "upload-sent" for line in lines)
    assert sent == len(texts) + record["rate_limited"]["uploads"]


def test_rpm_counts_uploads_with_every_other_request(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # SPEC: --rpm counts every request the run sends. Uploads have a limiter of their own
    # (learned from their answers) and take the run's slots too: 20 uploads and their batch
    # at --rpm 600 keep to 10 a second (+ a burst of 1), by the sandbox's own count.
    sb = sandbox()
    texts = [f"counted {i}\n" for i in range(20)]
    manifest = docs_folder(tmp_path, texts, "c")
    result = run_main(args_for(sb, manifest, tmp_path / "log", "--rpm", "600"))
    assert result.code == 0, result.out
    record = sb.record()
    assert record["by_route"]["POST upload"] == len(texts)
    assert record["peak_per_1s"] <= 11
    assert_exactly_once(record, "vs_1", texts, set())


def test_sigterm_mid_upload_leaves_it_for_the_next_run_to_settle(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # The upload is held by the sandbox 1.5 s; the run is stopped meanwhile: it starts
    # nothing new, exits 143, and the rerun finishes the job with one file object.
    sb = sandbox(fault_methods=("POST",), late_apply_rate=1.0, late_apply_ms=1500)
    write(tmp_path / "a.md", "stopped\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,a.md\n")
    log = tmp_path / "log"
    proc = spawn(*args_for(sb, manifest, log, "--timeout", "10"))
    wait_until(lambda: sb.record()["held_writes"] > 0, proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    sb.update(late_apply_rate=0.0)
    again = run_main(args_for(sb, manifest, log))
    assert again.code == 0, again.out
    record = wait_for_held_writes(sb)
    assert_exactly_once(record, "vs_1", ["stopped\n"], set())
    assert len(record["files"]) == 1


def test_status_counts_a_file_gone_from_its_glob_as_missing(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    sb = sandbox()
    write(tmp_path / "docs" / "stays.md", "stays\n")
    gone = write(tmp_path / "docs" / "goes.md", "goes\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,docs/*.md\n")
    log = tmp_path / "log"
    assert run_main(args_for(sb, manifest, log)).code == 0
    gone.unlink()
    status = json.loads(run_main(["status", str(manifest), "--log", str(log),
                                  "--json"]).out)
    assert (status["missing"], status["changed"], status["pairs"]) == (1, 0, 1)
