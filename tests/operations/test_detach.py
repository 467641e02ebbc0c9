"""`attach-runner detach`: the real CLI against the sandbox over loopback, judged by the
sandbox's own record (which pairs it holds, how many DELETEs removed each, and how many came
when the pair was already gone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli import (
    FAST,
    TARGETS,
    kill_9_at_random_moments,
    pairs_for,
    read_events,
    rerun_until_exit_0,
    run_cli,
    wait_for_held_writes,
    write_csv,
)


def args(command: str, manifest: Path, target: str, base_url: str, *extra: str) -> list[str]:
    return [command, str(manifest), "--target", target, "--base-url", base_url, "--json",
            "--no-progress", "--rpm", "30000", *FAST, *extra]


def held(sb: Any, target: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs of `pairs` the sandbox holds now."""
    if target == "vector-store-files":
        stores = sb.record()["vector_store_files"]
        return [(o, f) for o, f in pairs if f in stores.get(o, {})]
    record = sb.record()["pairs"]
    return [(o, f) for o, f in pairs
            if (e := record.get(f"{o}/{f}")) and e["attached"] > e["detached"]]


def entry(sb: Any, pair: tuple[str, str]) -> dict[str, Any]:
    return sb.record()["pairs"].get(f"{pair[0]}/{pair[1]}", {})


def status_of(manifest: Path, target: str, log: Path | None = None) -> dict[str, Any]:
    extra = ["--log", str(log)] if log else []
    res = run_cli("status", str(manifest), "--target", target, "--json", *extra)
    assert res.code == 0, res.err
    return json.loads(res.out)


def test_detach_half_of_an_attached_manifest(tmp_path: Path, sandbox, target: str):
    """The detached half is gone from the sandbox, the rest in place, files never deleted;
    a rerun of detach sends no request; `status` counts them."""
    sb = sandbox()
    owner = TARGETS[target][0]
    pairs = pairs_for(target, 3, 4)
    manifest = write_csv(tmp_path / "all.csv", pairs, owner)
    assert run_cli(*args("run", manifest, target, sb.base_url)).code == 0
    half = pairs[::2]
    out = write_csv(tmp_path / "out.csv", half, owner)
    res = run_cli(*args("detach", out, target, sb.base_url))
    assert res.code == 0, res.err
    summary = res.json()
    assert summary["op"] == "detach"
    assert summary["detached"] == len(half)
    assert summary["next"] == "nothing: every pair is detached"
    assert held(sb, target, pairs) == pairs[1::2]
    assert all(entry(sb, p)["detached"] == 1 for p in half)
    assert sb.record()["by_route"].get("DELETE file") == len(half)
    events = read_events(Path(f"{out}.results.jsonl"))
    assert {e["op"] for e in events if e["event"] in ("sent", "done")} == {"detach"}
    before = sb.record()["requests"]
    again = run_cli(*args("detach", out, target, sb.base_url))
    assert again.code == 0, again.err
    assert again.json()["detached_earlier"] == len(half)
    assert again.json()["requests"] == 0
    assert sb.record()["requests"] == before
    st = status_of(out, target)
    assert (st["detached"], st["pending"], st["failed"]) == (len(half), 0, 0)
    text = run_cli("detach", str(out), "--target", target, "--base-url", sb.base_url)
    assert text.code == 0
    assert "every pair is detached" in text.out


def test_dry_run_lists_the_deletes(tmp_path: Path, sandbox):
    target = "vector-store-files"
    pairs = pairs_for(target, 2, 2)
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    res = run_cli("detach", str(manifest), "--dry-run", key=None)
    assert res.code == 0, res.err
    deletes = [line for line in res.out.splitlines() if line.startswith("DELETE ")]
    assert deletes == [f"DELETE /vector_stores/{o}/files/{f}" for o, f in pairs]
    res = run_cli("detach", str(manifest), "--dry-run", "--json", key=None)
    assert res.json()["detaches"] == len(pairs)
    assert not Path(f"{manifest}.results.jsonl").exists()


def test_a_pair_not_there_is_already_detached(tmp_path: Path, sandbox, target: str):
    sb = sandbox()
    pairs = pairs_for(target, 2, 2)
    manifest = write_csv(tmp_path / "m.csv", pairs, TARGETS[target][0])
    res = run_cli(*args("detach", manifest, target, sb.base_url))
    assert res.code == 0, res.err
    assert res.json()["already_detached"] == len(pairs)
    assert status_of(manifest, target)["already_detached"] == len(pairs)


@pytest.mark.parametrize("fault", ["reset_after", "late_apply", "http_5xx"])
def test_uncertain_deletes_are_checked_never_repeated_blind(tmp_path: Path, sandbox,
                                                            fault: str):
    """DELETEs that land but whose answer is lost (reset after applying), that land late
    (after the client's --timeout), or answered 500/502 (not applied): each is parked, checked
    by a GET after --settle, and sent again only when the pair is still there. So no pair that
    a DELETE removed ever gets a second one (deletes_when_absent stays 0)."""
    target = "vector-store-files"
    sb = sandbox()
    pairs = pairs_for(target, 2, 8)
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    assert run_cli(*args("run", manifest, target, sb.base_url)).code == 0
    faults: dict[str, Any] = {
        "reset_after": {"reset_after_rate": 0.4},
        "late_apply": {"late_apply_rate": 0.4, "late_apply_ms": 800},
        "http_5xx": {"fail_rate": 0.4},
    }[fault]
    sb.update(fault_methods=("DELETE",), seed=5, **faults)
    res = run_cli(*args("detach", manifest, target, sb.base_url, "--timeout", "0.3",
                        "--settle", "1.2" if fault == "late_apply" else "0.2",
                        "--max-attempts", "20"))
    record = wait_for_held_writes(sb)  # every held DELETE has landed: all are judged
    assert res.code == 0, res.err
    assert sum(record["faults"].values()) >= 2, record["faults"]
    summary = res.json()
    assert summary["detached"] == len(pairs)
    assert summary["checks"] >= 1
    assert held(sb, target, pairs) == []
    for o, f in pairs:
        e = record["pairs"][f"{o}/{f}"]
        assert (e["detached"], e["deletes_when_absent"]) == (1, 0), (o, f, e)


@pytest.mark.parametrize("terse", [False, True], ids=["404-names-the-file", "terse-404"])
def test_a_missing_store_is_refused_not_already_detached(tmp_path: Path, sandbox, terse: bool):
    """SPEC's 404 rule. A 404 that names the file says the store exists; one that does not
    (the real API's terse "Not found.", or a missing store's own 404) is settled by one GET of
    the store: 200 -> already detached, 404 -> refused."""
    target = "vector-store-files"
    sb = sandbox(terse_404=terse)
    pairs = [("vs_missing1", "file-a"), ("vs_1", "file-b")]
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    res = run_cli(*args("detach", manifest, target, sb.base_url))
    assert res.code == 1, res.err
    summary = res.json()
    assert summary["already_detached"] == 1
    assert summary["failed"] == 1
    assert summary["failed_by_reason"][0]["status"] == 404
    done = {e["vector_store_id"]: e for e in read_events(Path(f"{manifest}.results.jsonl"))
            if e["event"] == "done"}
    assert done["vs_missing1"]["outcome"] == "failed"
    assert done["vs_missing1"]["retryable"] is False
    st = status_of(manifest, target)
    assert (st["refused"], st["already_detached"]) == (1, 1)
    # One owner GET for the missing store; with terse 404s, one for vs_1 as well.
    assert sb.record()["by_route"].get("GET store") == (2 if terse else 1)


def test_a_wrong_base_url_trips_the_breaker(tmp_path: Path, sandbox, target: str):
    sb = sandbox()
    pairs = pairs_for(target, 8, 8)
    manifest = write_csv(tmp_path / "m.csv", pairs, TARGETS[target][0])
    res = run_cli(*args("detach", manifest, target, sb.base_url + "/nope",
                        "--concurrency", "8"))
    assert res.code == 4, res.err
    assert "the first 20 detach requests were all refused the same way (404)" in res.err
    rec = sb.record()
    assert 20 <= rec["requests"] <= 28
    fixed = run_cli(*args("detach", manifest, target, sb.base_url))
    assert fixed.code == 0, fixed.err
    assert fixed.json()["already_detached"] == len(pairs)


def test_attach_detach_attach_does_what_it_says(tmp_path: Path, sandbox, target: str):
    """One manifest, one log: each step does what it says (by the sandbox's record), and
    `status` says so after each."""
    sb = sandbox()
    pairs = pairs_for(target, 2, 3)
    n = len(pairs)
    manifest = write_csv(tmp_path / "m.csv", pairs, TARGETS[target][0])
    first = run_cli(*args("run", manifest, target, sb.base_url))
    assert first.code == 0, first.err
    assert first.json()["attached"] == n
    assert held(sb, target, pairs) == pairs
    assert status_of(manifest, target)["attached"] == n
    out = run_cli(*args("detach", manifest, target, sb.base_url))
    assert out.code == 0, out.err
    assert out.json()["detached"] == n
    assert held(sb, target, pairs) == []
    st = status_of(manifest, target)
    assert (st["attached"], st["detached"]) == (0, n)
    back = run_cli(*args("run", manifest, target, sb.base_url))
    assert back.code == 0, back.err
    assert back.json()["attached"] == n
    assert held(sb, target, pairs) == pairs
    assert all(entry(sb, p)["attached"] == 2 and entry(sb, p)["detached"] == 1 for p in pairs)
    st = status_of(manifest, target)
    assert (st["attached"], st["detached"]) == (n, 0)
    # and settled: a rerun of run sends nothing
    assert run_cli(*args("run", manifest, target, sb.base_url)).json()["requests"] == 0


def test_failed_after_a_detach_writes_op_and_run_refuses_it(tmp_path: Path, sandbox):
    target = "vector-store-files"
    sb = sandbox()
    pairs = [("vs_missing1", "file-a"), ("vs_missing2", "file-b"), ("vs_1", "file-c")]
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    assert run_cli(*args("detach", manifest, target, sb.base_url)).code == 1
    failed = run_cli("failed", str(manifest))
    assert failed.code == 0, failed.err
    lines = failed.out.splitlines()
    header = lines[0].split(",")
    assert "op" in header
    at = header.index("op")
    assert [line.split(",")[at] for line in lines[1:]] == ["detach", "detach"]
    retry = tmp_path / "retry.csv"
    retry.write_text(failed.out)
    before = sb.record()["requests"]
    res = run_cli(*args("run", retry, target, sb.base_url))
    assert res.code == 2
    assert len(res.err.splitlines()) == 1
    assert "attach-runner detach" in res.err
    assert sb.record()["requests"] == before
    # the same CSV is what `detach` takes
    again = run_cli(*args("detach", retry, target, sb.base_url, "--retry-failed"))
    assert again.code == 1
    assert again.json()["failed"] == 2


def test_a_detach_left_uncertain_by_a_killed_run_is_checked_first(tmp_path: Path, sandbox):
    """A log whose last word on two pairs is a detach `sent` (a run killed mid-DELETE): the
    rerun GETs each first; the one still there is DELETEd once, the one gone is detached
    without a DELETE."""
    target = "vector-store-files"
    sb = sandbox()
    sb.preload("vector_store", "vs_1", ["file-there"])
    pairs = [("vs_1", "file-there"), ("vs_1", "file-gone")]
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    log = Path(f"{manifest}.results.jsonl")
    stamp = {"ts": "2026-01-01T00:00:00.000Z", "run": "r1"}
    log.write_text("".join(json.dumps({"event": "sent", "op": "detach", "vector_store_id": o,
                                       "file_id": f, **stamp}) + "\n" for o, f in pairs))
    log.chmod(0o600)
    dry = run_cli("detach", str(manifest), "--dry-run", "--json", key=None)
    assert dry.json()["checks"] == 2
    res = run_cli(*args("detach", manifest, target, sb.base_url))
    assert res.code == 0, res.err
    assert res.json()["detached"] == 2
    assert res.json()["checks"] == 2
    record = sb.record()
    assert record["by_route"]["GET check"] == 2
    assert record["by_route"]["DELETE file"] == 1
    assert record["pairs"]["vs_1/file-there"]["detached"] == 1
    assert held(sb, target, pairs) == []


def test_kill_9_during_a_detach_then_rerun_removes_each_pair_once(tmp_path: Path, sandbox):
    """kill -9 at random moments of a detach (the server also applies some DELETEs late),
    then reruns to exit 0: every pair is gone, and no pair got a second DELETE after its
    first had landed (an uncertain DELETE is checked, after --settle, never repeated blind)."""
    import random

    sb = sandbox(latency_ms=30, late_apply_rate=0.1, late_apply_ms=800, seed=3)
    pairs = pairs_for("vector-store-files", 3, 25)
    for owner in {o for o, _ in pairs}:
        sb.preload("vector_store", owner, [f for o, f in pairs if o == owner])
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    argv = args("detach", manifest, "vector-store-files", sb.base_url, "--concurrency", "4",
                "--timeout", "0.4", "--settle", "1", "--store-rpm", "60000")
    rng = random.Random(14)
    kill_9_at_random_moments(argv, rng, between=(0.4, 1.0))
    rerun_until_exit_0(argv, runs=3)
    wait_for_held_writes(sb)  # a DELETE still held by the server has landed
    assert held(sb, "vector-store-files", pairs) == []
    record = sb.record()["pairs"]
    assert all(record[f"{o}/{f}"]["detached"] == 1 for o, f in pairs)
    assert all(record[f"{o}/{f}"]["deletes_when_absent"] == 0 for o, f in pairs)
