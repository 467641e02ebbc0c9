"""The settle rule (SPEC, Behaviour under trouble): a write whose outcome is unknown is checked
no sooner than --settle seconds after the client stopped waiting for it, because a server may
apply a request seconds after its client gave up. Judged by the sandbox's record: nothing is
added twice."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli import (
    kill_9_at_random_moments,
    log_of,
    pairs_for,
    read_events,
    rerun_until_exit_0,
    run_cli,
    spawn,
    wait_for_held_writes,
    wait_until,
    write_csv,
)

FAST = ["--backoff-initial", "0.01", "--backoff-max", "0.05"]


def added_twice(record: dict[str, Any], pairs: list[tuple[str, str]]) -> list[str]:
    """Pairs the sandbox saw added more than once, or POSTed again once in place."""
    bad = []
    for owner, file_id in pairs:
        entry = record["pairs"].get(f"{owner}/{file_id}")
        if entry is None or entry["attached"] != 1 or entry["posts_after_attached"]:
            bad.append(f"{owner}/{file_id}: {entry}")
    return bad


def run_args(manifest: Path, base_url: str, *extra: str) -> list[str]:
    return ["run", str(manifest), "--base-url", base_url, "--json", "--no-progress", *FAST,
            *extra]


@pytest.mark.parametrize("settle", ["1.5", "0"])
def test_a_late_applied_write_is_checked_after_it_lands(tmp_path: Path, sandbox, settle: str):
    """Writes the server applies 1 s after the client gave up (--timeout 0.3): with --settle
    1.5 each is found by its check and never added twice; with --settle 0 the check comes too
    early, finds nothing, and the file is added again (the control: this test can fail)."""
    sb = sandbox(late_apply_rate=0.25, late_apply_ms=1000, seed=3)
    pairs = pairs_for("vector-store-files", 2, 10)
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    res = run_cli(*run_args(manifest, sb.base_url, "--timeout", "0.3", "--settle", settle,
                            "--max-attempts", "10"))
    record = wait_for_held_writes(sb)  # every held write has landed: all are judged
    late = record["faults"].get("late_apply", 0)
    assert late >= 2
    if settle == "0":
        assert added_twice(record, pairs) != []
        return
    assert res.code == 0, res.err
    assert added_twice(record, pairs) == []
    summary = res.json()
    assert summary["uncertain"] >= late
    assert summary["checks"] >= late
    assert res.json()["elapsed_s"] >= 1.5  # the checks waited


def test_500_502_504_answers_to_a_write_are_checked_not_resent(tmp_path: Path, sandbox):
    """A 500/502/504 may have been applied: checked (after --settle), never resent blind.
    (The sandbox's 5xx faults are not applied, so each check finds the file absent and the
    run adds it: once.)"""
    sb = sandbox(fail_rate=0.3, fault_methods=("POST",), seed=4)
    pairs = pairs_for("vector-store-files", 2, 8)
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    res = run_cli(*run_args(manifest, sb.base_url, "--settle", "0.2", "--max-attempts", "20"))
    assert res.code == 0, res.err
    record = sb.record()
    failed = sum(record["faults"].get(k, 0) for k in ("http_500", "http_502"))
    assert failed >= 2
    # every 500/502 was followed by a check of that pair (a 503 is not uncertain)
    assert res.json()["checks"] >= failed
    assert added_twice(record, pairs) == []


@pytest.mark.parametrize("batch", ["0", "5"])
def test_late_applies_and_kill_9_then_reruns_add_nothing_twice(tmp_path: Path, sandbox,
                                                               batch: str):
    """A server that applies some writes 1.2 s late, clients with --timeout 0.5, kill -9 at
    random moments, then reruns to exit 0: by the sandbox's record, every pair was added
    exactly once (an earlier run's `sent`/`batch-sent` is checked only after --settle)."""
    sb = sandbox(late_apply_rate=0.15, late_apply_ms=1200, latency_ms=10, seed=int(batch) + 7)
    rng = random.Random(int(batch))
    pairs = pairs_for("vector-store-files", 3, 30)
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    args = run_args(manifest, sb.base_url, "--timeout", "0.5", "--settle", "1",
                    "--batch-size", batch, "--concurrency", "4", "--max-attempts", "20")
    kill_9_at_random_moments(args, rng, between=(0.4, 1.5))
    rerun_until_exit_0(args, runs=4)
    record = wait_for_held_writes(sb)  # anything held has landed: it must not make a duplicate
    assert record["faults"].get("late_apply", 0) >= 1
    assert added_twice(record, pairs) == []


def test_a_stop_while_waiting_leaves_the_pairs_uncertain(tmp_path: Path, sandbox):
    """SIGTERM while uncertain pairs wait out --settle: exit 143 at once; each ends failed,
    retryable, uncertain; the next run checks them and adds nothing twice."""
    sb = sandbox(late_apply_rate=1.0, late_apply_ms=800)
    pairs = pairs_for("vector-store-files", 1, 4)
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    log = log_of(manifest)
    args = run_args(manifest, sb.base_url, "--timeout", "0.3", "--settle", "60")
    proc = spawn(*args)
    wait_until(lambda: sb.record()["faults"].get("late_apply", 0) >= len(pairs), proc)
    # All four writes land 0.8 s after they arrived, long after their clients gave up (0.3 s):
    # each run's pair now waits for its check (--settle 60), and the rerun's checks find them.
    wait_for_held_writes(sb)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert time.monotonic() - started < 3
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["checks"] == 0
    done = [e for e in read_events(log) if e["event"] == "done"]
    assert len(done) == len(pairs)
    assert all((d["outcome"], d["retryable"], d["uncertain"]) == ("failed", True, True)
               for d in done)
    sb.update(late_apply_rate=0)
    rerun = run_cli(*run_args(manifest, sb.base_url, "--timeout", "0.3", "--settle", "0.5"))
    assert rerun.code == 0, rerun.err
    assert rerun.json()["checks"] == len(pairs)
    assert added_twice(sb.record(), pairs) == []


def test_an_earlier_runs_uncertain_pair_waits_for_timeout_plus_settle(tmp_path: Path, sandbox):
    """A `sent` line with no `done`, written just now by a run that died: the rerun checks it
    no sooner than that line's time plus --timeout plus --settle, doing its other work first."""
    sb = sandbox()
    manifest = write_csv(tmp_path / "m.csv", [("vs_1", "file-a"), ("vs_1", "file-b")],
                         "vector_store_id")
    log = log_of(manifest)
    now = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    log.write_text(json.dumps({"event": "sent", "ts": ts, "run": "dead", "op": "attach",
                               "vector_store_id": "vs_1", "file_id": "file-a"}) + "\n")
    log.chmod(0o600)
    res = run_cli(*run_args(manifest, sb.base_url, "--timeout", "1", "--settle", "1.5"))
    assert res.code == 0, res.err
    assert time.time() - now >= 2.5
    summary = res.json()
    assert (summary["checks"], summary["attached"]) == (1, 2)
    events = read_events(log)
    done_at = {e["file_id"]: e["ts"] for e in events if e["event"] == "done"}
    assert done_at["file-b"] < done_at["file-a"]  # the other work went first
