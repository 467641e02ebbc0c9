"""The run, end to end: the real CLI against the sandbox over loopback, judged by its record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import (
    FAST,
    TARGETS,
    WRITERS,
    attached_counts,
    make_pairs,
    owner_of,
    pairs_for,
    read_events,
    run_cli,
    write_csv,
)


@pytest.mark.parametrize("fmt", ["csv", "yaml", "jsonl"])
def test_every_format_attaches_each_pair_once(tmp_path: Path, sandbox, target: str, fmt: str):
    """Each manifest format, each target: exit 0 and the sandbox holds every pair exactly once."""
    sb = sandbox()
    pairs = pairs_for(target)
    manifest = WRITERS[fmt](tmp_path / f"m.{fmt}", pairs, owner_of(target))
    res = run_cli("run", str(manifest), "--target", target, "--base-url", sb.base_url, *FAST)
    assert res.code == 0, res.err
    assert attached_counts(sb.record(), pairs) == [1] * len(pairs)
    events = read_events(Path(str(manifest) + ".results.jsonl"))
    done = [e for e in events if e["event"] == "done"]
    assert {(e[owner_of(target)], e["file_id"]) for e in done} == set(pairs)
    assert all(e["outcome"] == "attached" for e in done)
    assert events[0]["event"] == "run-start"
    assert events[-1]["event"] == "run-end"
    assert events[-1]["exit"] == 0
    assert "attached" in res.out


def test_concurrency_and_rate_bounds_hold(tmp_path: Path, sandbox):
    """Peak in flight <= --concurrency and peak in any 1 s <= rpm/60 + burst, per the record."""
    sb = sandbox(latency_ms=30)
    pairs = make_pairs(4, 10)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    res = run_cli("run", str(manifest), "--base-url", sb.base_url, "--concurrency", "3",
                  "--rpm", "1200", *FAST)
    assert res.code == 0, res.err
    rec = sb.record()
    assert rec["peak_in_flight"] <= 3
    assert rec["peak_per_1s"] <= 1200 / 60 + 2
    assert rec["requests"] == len(pairs)


def test_faults_are_retried_until_attached(tmp_path: Path, sandbox, target: str):
    """500/502/503 and resets are retried; every pair ends attached exactly once."""
    sb = sandbox(fail_rate=0.15, reset_before_rate=0.05, reset_after_rate=0.05, seed=3)
    pairs = pairs_for(target, 4, 10)
    manifest = write_csv(tmp_path / "m.csv", pairs, owner_of(target))
    res = run_cli("run", str(manifest), "--target", target, "--base-url", sb.base_url,
                  "--max-attempts", "20", "--json", *FAST)
    assert res.code == 0, res.err
    rec = sb.record()
    assert attached_counts(rec, pairs) == [1] * len(pairs)
    summary = res.json()
    assert summary["attached"] + summary["already_attached"] == len(pairs)
    # Every uncertain outcome was settled by a check before any resend.
    assert summary["checks"] == rec["by_route"].get("GET check", 0)
    assert summary["checks"] >= rec["faults"]["reset_after"]


def test_refused_pair_is_skipped_then_retried_with_flag(tmp_path: Path, sandbox, target: str):
    """A missing owner fails retryable: false; the rerun skips it; --retry-failed resends it;
    `failed` lists it as a manifest that validates."""
    sb = sandbox()
    prefix = TARGETS[target][1]
    pairs = [(f"{prefix}_1", "file-a"), (f"{prefix}_missing", "file-b")]
    manifest = write_csv(tmp_path / "m.csv", pairs, owner_of(target))
    base = ["--target", target, "--base-url", sb.base_url, *FAST]
    first = run_cli("run", str(manifest), *base)
    assert first.code == 1
    log = Path(str(manifest) + ".results.jsonl")
    bad = [e for e in read_events(log) if e["event"] == "done" and e["outcome"] == "failed"]
    assert len(bad) == 1
    assert bad[0]["status"] == 404
    assert bad[0]["retryable"] is False
    before = sb.record()["requests"]
    second = run_cli("run", str(manifest), *base)
    assert second.code == 1
    assert sb.record()["requests"] == before  # nothing sent: the refused pair is skipped
    third = run_cli("run", str(manifest), "--retry-failed", *base)
    assert third.code == 1
    assert sb.record()["requests"] == before + 1
    failed = run_cli("failed", str(manifest), "--target", target)
    assert failed.code == 0
    assert failed.out.splitlines()[0].startswith(f"{owner_of(target)},file_id")
    assert f"{prefix}_missing,file-b,404" in failed.out
    retry = tmp_path / "retry.csv"
    retry.write_text(failed.out)
    assert run_cli("validate", str(retry), "--target", target).code == 0


def test_rerun_with_nothing_to_do_sends_nothing(tmp_path: Path, sandbox):
    """A second run of a finished manifest makes zero requests and exits 0."""
    sb = sandbox()
    pairs = make_pairs(2, 3)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    assert run_cli("run", str(manifest), "--base-url", sb.base_url).code == 0
    before = sb.record()["requests"]
    again = run_cli("run", str(manifest), "--base-url", sb.base_url, "--json")
    assert again.code == 0
    assert sb.record()["requests"] == before
    assert again.json()["attached_earlier"] == len(pairs)


def test_sent_without_done_is_checked_not_resent(tmp_path: Path, sandbox, target: str):
    """`sent` with no `done`: a pair the server holds is settled by GET (no POST); one it does
    not hold is sent once."""
    sb = sandbox()
    prefix, col = TARGETS[target][1], owner_of(target)
    held, absent = (f"{prefix}_1", "file-held"), (f"{prefix}_1", "file-absent")
    sb.preload("assistant" if target == "assistant-files" else "vector_store", held[0],
               [held[1]])
    manifest = write_csv(tmp_path / "m.csv", [held, absent], col)
    log = Path(str(manifest) + ".results.jsonl")
    lines = [{"event": "run-start", "ts": "2026-01-01T00:00:00.000Z", "run": "r0",
              "manifest": str(manifest), "target": target, "items": 2}]
    for o, f in (held, absent):
        lines.append({"event": "sent", "ts": "2026-01-01T00:00:00.000Z", "run": "r0", col: o,
                      "file_id": f})
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    log.chmod(0o600)
    res = run_cli("run", str(manifest), "--target", target, "--base-url", sb.base_url, "--json")
    assert res.code == 0, res.err
    rec = sb.record()
    assert rec["pairs"][f"{held[0]}/{held[1]}"]["posts_after_attached"] == 0
    assert rec["pairs"][f"{absent[0]}/{absent[1]}"]["attached"] == 1
    assert rec["by_route"].get("GET check") == 2
    assert rec["by_route"].get("POST attach") == 1


def test_torn_last_line_is_cut_and_run_resumes(tmp_path: Path, sandbox):
    """A log ending in a torn line: warned, cut off, and the run finishes the job."""
    sb = sandbox()
    pairs = make_pairs(1, 4)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    log = Path(str(manifest) + ".results.jsonl")
    assert run_cli("run", str(manifest), "--base-url", sb.base_url).code == 0
    with log.open("a") as f:
        f.write('{"event":"done","ts":"2026-')
    res = run_cli("run", str(manifest), "--base-url", sb.base_url)
    assert res.code == 0
    assert "incomplete" in res.err
    for line in log.read_text().splitlines():
        json.loads(line)
