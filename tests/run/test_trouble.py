"""Under trouble: faults, kills, signals, rate-limit storms, refusals and overlapping runs.

Every test drives the real CLI (`python -m runner`, often as a subprocess it signals or kills)
against the sandbox on loopback, and judges the run by the sandbox's own record: each pair in
place exactly once, and no POST for a pair the server already held unless the answer was
"already attached".
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from runner.sandbox import confirm_attached_once, pair_key
from tests.cli import (
    FAST,
    Result,
    holds_while_running,
    log_of,
    make_pairs,
    owner_kind,
    owner_of,
    pairs_for,
    read_log_events,
    run_cli,
    spawn,
    wait_until,
    write_csv,
)

# A fixed rate well above what these tests send, so the limiter is no bottleneck and no test
# waits on auto mode's ramp-up (the sandbox enforces no rate unless a test sets `rps`).
QUICK = ["--rpm", "6000", "--store-rpm", "6000", "--no-progress", *FAST]
# Reruns a test allows before it calls the job unfinishable.
MAX_RUNS = 5


def run_args(manifest: Path, target: str, base_url: str, *extra: str) -> list[str]:
    return ["run", str(manifest), "--target", target, "--base-url", base_url, *QUICK, *extra]


def sent_lines(log: Path) -> int:
    """`sent` lines written so far (each line is one write, starting with this prefix)."""
    try:
        return log.read_bytes().count(b'{"event":"sent"')
    except FileNotFoundError:
        return 0


def signal_pending(pid: int, sig: signal.Signals) -> bool:
    """Whether `sig` is pending (sent, not yet delivered) for process `pid` (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = [int(line.split()[1], 16) for line in status.splitlines()
             if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask >> (sig - 1) & 1 for mask in masks)


def rerun_until_done(args: list[str]) -> list[Result]:
    """Run the same command until it exits 0 (at most MAX_RUNS times)."""
    results: list[Result] = []
    for _ in range(MAX_RUNS):
        res = run_cli(*args)
        results.append(res)
        assert res.code in (0, 1), res.err
        if res.code == 0:
            return results
    raise AssertionError(f"not done after {MAX_RUNS} runs: {results[-1].out}")


def last_done(events: list[dict[str, Any]], owner_col: str) -> dict[tuple[str, str], Any]:
    """For each pair, its last `done` line: the one that stands."""
    return {(e[owner_col], e["file_id"]): e for e in events if e["event"] == "done"}


def posts_after_attached(record: dict[str, Any]) -> dict[str, int]:
    """Pairs the server was POSTed while it already held them, and how often."""
    return {key: entry["posts_after_attached"] for key, entry in record["pairs"].items()
            if entry["posts_after_attached"]}


# --- faults -------------------------------------------------------------------------------------

def test_fault_mix_is_finished_by_reruns_exactly_once(tmp_path: Path, sandbox, target: str):
    """5xx, resets, answers past --timeout: reruns attach each pair once; checks as recorded."""
    sb = sandbox(fail_rate=0.05, reset_before_rate=0.02, reset_after_rate=0.02,
                 slow_rate=0.02, slow_ms=1500, seed=4)
    pairs = pairs_for(target, 8, 20)
    held = pairs[::16]  # the server holds these already: their POST is answered "already"
    for owner, file_id in held:
        sb.preload(owner_kind(target), owner, [file_id])
    manifest = write_csv(tmp_path / "m.csv", pairs, owner_of(target))
    # One attempt: every faulted item ends failed (uncertain when it may have been applied),
    # so the reruns must finish the job, checking first.
    args = run_args(manifest, target, sb.base_url, "--timeout", "0.5", "--concurrency", "8",
                    "--max-attempts", "1", "--json")
    results = rerun_until_done(args)
    rec = sb.record()
    assert confirm_attached_once(rec, pairs) == []
    faults = rec["faults"]
    assert min(faults.values()) >= 1, faults  # every kind of fault really happened
    # A held pair is POSTed once (answered "already attached", or dropped and then checked);
    # a pair this run attached is never POSTed again (an uncertain one is checked first).
    extra = posts_after_attached(rec)
    assert set(extra) <= {pair_key(o, f) for o, f in held}
    assert max(extra.values(), default=0) <= 1
    checks = sum(res.json()["checks"] for res in results)
    assert checks == rec["by_route"].get("GET check", 0)
    assert checks >= faults["reset_after"] + faults["slow"]
    print(f"fault mix {target}: {len(results)} run(s), {rec['requests']} requests, {faults}")


def test_sigkill_at_random_moments_then_reruns_attach_each_pair_once(
        tmp_path: Path, sandbox, target: str):
    """SIGKILL at >= 5 random moments, then reruns: each pair once; the log never torn mid-file."""
    sb = sandbox(latency_ms=20, fail_rate=0.02, reset_after_rate=0.01, seed=9)
    pairs = pairs_for(target, 15, 20)
    manifest = write_csv(tmp_path / "m.csv", pairs, owner_of(target))
    log = log_of(manifest)
    # --timeout 3: a rerun checks a killed run's uncertain pairs --timeout + --settle after
    # its last line (the settle rule), not the default 60 s + 0.3 s.
    args = run_args(manifest, target, sb.base_url, "--concurrency", "8", "--timeout", "3")
    rng = random.Random(1125)
    kills = torn = 0
    while kills < 6:
        before = sent_lines(log)
        proc = spawn(*args)
        at = rng.randint(1, 30)
        if not holds_while_running(lambda: sent_lines(log) >= before + at, proc):  # noqa: B023
            proc.communicate()
            break  # it finished first: the reruns below have nothing to do
        time.sleep(rng.uniform(0, 0.05))  # not a sync: lands the kill at a random moment
        proc.kill()
        proc.communicate()
        kills += 1
        _, warnings = read_log_events(log)  # a line torn in the middle would raise LogError
        assert len(warnings) <= 1
        torn += len(warnings)
    assert kills >= 5
    # The parts a run keeps beside its log are in a file without a name: a kill leaves none.
    assert not list(log.parent.glob(".attach-runner-parts-*"))
    results = rerun_until_done(args)
    rec = sb.record()
    assert confirm_attached_once(rec, pairs) == []
    assert posts_after_attached(rec) == {}
    events, warnings = read_log_events(log)
    assert warnings == []  # every torn line was cut off by the run after it
    assert sum(e["event"] == "run-start" for e in events) == kills + len(results) + (
        kills < 6)
    assert len(last_done(events, owner_of(target))) == len(pairs)
    print(f"chaos {target}: {kills} kills, {torn} torn lines, {len(results)} reruns, "
          f"{rec['requests']} requests")


# --- signals and --max-runtime ------------------------------------------------------------------

@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_drains_writes_run_end_and_the_rerun_finishes(
        tmp_path: Path, sandbox, sig: signal.Signals, code: int):
    """SIGINT/SIGTERM: in-flight requests finish, run-end written, 130/143; the rerun finishes."""
    sb = sandbox(latency_ms=200)
    pairs = make_pairs(3, 20)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    log = log_of(manifest)
    args = run_args(manifest, "assistant-files", sb.base_url, "--concurrency", "4", "--json")
    proc = spawn(*args)
    wait_until(lambda: sent_lines(log) >= 8, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["exit"] == code
    assert summary["interrupted"] is True
    assert f"stopped by {sig.name}" in err
    events, warnings = read_log_events(log)
    assert warnings == []
    end = events[-1]
    assert (end["event"], end["interrupted"], end["exit"]) == ("run-end", True, code)
    assert 0 < end["counts"]["pending"] < len(pairs)
    # The drain let every request in flight finish: each pair sent has its `done`.
    sent = {(e["assistant_id"], e["file_id"]) for e in events if e["event"] == "sent"}
    assert sent == set(last_done(events, "assistant_id"))
    rerun = run_cli(*args)
    assert rerun.code == 0, rerun.err
    rec = sb.record()
    assert confirm_attached_once(rec, pairs) == []
    assert posts_after_attached(rec) == {}
    assert "GET check" not in rec["by_route"]


def test_second_signal_stops_at_once(tmp_path: Path, sandbox):
    """A second SIGINT stops at once, log readable; the rerun checks the abandoned pairs first."""
    sb = sandbox(latency_ms=8000)  # a drain would wait for these
    pairs = make_pairs(2, 6)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    log = log_of(manifest)
    args = run_args(manifest, "assistant-files", sb.base_url, "--concurrency", "4")
    proc = spawn(*args)
    wait_until(lambda: sb.record()["in_flight"] >= 4, proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    # Two signals sent back to back merge into one in the kernel: send the second once the
    # first has been delivered, as a user's second Ctrl-C would be.
    wait_until(lambda: not signal_pending(proc.pid, signal.SIGINT), proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 4.0
    events, warnings = read_log_events(log)
    assert warnings == []
    assert events[-1]["event"] == "run-end"
    assert events[-1]["interrupted"] is True
    assert not any(e["event"] == "done" for e in events)  # all 4 left uncertain
    sb.update(latency_ms=0)
    rerun = run_cli(*args, "--json")
    assert rerun.code == 0, rerun.err
    assert rerun.json()["checks"] == 4
    # The abandoned POSTs may still land after their latency: "already attached", not twice.
    assert confirm_attached_once(sb.record(), pairs) == []


def test_stop_during_a_429_pause_ends_at_once_with_nothing_uncertain(tmp_path: Path, sandbox):
    """SIGTERM while workers wait out a 10 s 429 pause: exit 143 at once, every pair settled."""
    sb = sandbox(rps=0.1, burst=2)  # two answers, then 429s saying "retry after 10 s"
    pairs = make_pairs(1, 8)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    log = log_of(manifest)
    args = run_args(manifest, "assistant-files", sb.base_url, "--concurrency", "4")
    proc = spawn(*args)
    wait_until(lambda: sb.record()["by_status"].get("429", 0) >= 1, proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert time.monotonic() - started < 3  # neither the pause nor the 10 s drain
    events, _ = read_log_events(log)
    sent = {(e["assistant_id"], e["file_id"]) for e in events if e["event"] == "sent"}
    stands = last_done(events, "assistant_id")
    assert set(stands) == sent  # the waiting ones end too: none is left uncertain
    assert not any(e["uncertain"] for e in stands.values())
    sb.update(rps=None)
    rerun = run_cli(*args)
    assert rerun.code == 0, rerun.err
    rec = sb.record()
    assert confirm_attached_once(rec, pairs) == []
    assert "GET check" not in rec["by_route"]


def test_max_runtime_stops_with_exit_5_and_the_rerun_finishes(tmp_path: Path, sandbox):
    """--max-runtime: start nothing new, drain, write run-end, exit 5; the rerun finishes."""
    sb = sandbox(latency_ms=100)
    pairs = make_pairs(3, 20)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    log = log_of(manifest)
    args = run_args(manifest, "assistant-files", sb.base_url, "--concurrency", "2", "--json")
    started = time.monotonic()
    res = run_cli(*args, "--max-runtime", "1")
    assert res.code == 5, res.err
    assert time.monotonic() - started < 5
    summary = res.json()
    assert summary["exit"] == 5
    assert summary["error"] == "stopped at --max-runtime 1s"
    events, _ = read_log_events(log)
    end = events[-1]
    assert (end["event"], end["interrupted"], end["exit"]) == ("run-end", True, 5)
    assert 0 < end["counts"]["pending"] < len(pairs)
    rerun = run_cli(*args)
    assert rerun.code == 0, rerun.err
    rec = sb.record()
    assert confirm_attached_once(rec, pairs) == []
    assert posts_after_attached(rec) == {}
    assert "GET check" not in rec["by_route"]  # the drain left nothing uncertain


# --- rate limits ----------------------------------------------------------------------------------

# The limiter is the same for both targets: each target meets one --rpm mode.
@pytest.mark.parametrize(("target", "rpm"), [("assistant-files", "auto"),
                                             ("vector-store-files", "6000")])
def test_429_storm_is_ridden_out_without_hammering(tmp_path: Path, sandbox, target: str,
                                                    rpm: str):
    """20 rps (burst 5) and --concurrency 32: exit 0, few 429s, no second far above the limit."""
    sb = sandbox(rps=20, burst=5)
    pairs = pairs_for(target, 3, 20)
    manifest = write_csv(tmp_path / "m.csv", pairs, owner_of(target))
    res = run_cli("run", str(manifest), "--target", target, "--base-url", sb.base_url,
                  "--concurrency", "32", "--rpm", rpm, "--store-rpm", "6000", "--json", *FAST)
    assert res.code == 0, res.err
    rec = sb.record()
    assert confirm_attached_once(rec, pairs) == []
    limited = rec["by_status"].get("429", 0)
    print(f"429 storm {target} rpm={rpm}: {limited} of {rec['requests']} requests were 429, "
          f"peak {rec['peak_per_1s']}/s, {res.json()['elapsed_s']} s")
    if rpm == "auto":
        # One probe, then the rate follows x-ratelimit-limit-requests (0.97 x 20/s): no 429
        # is expected; 5% leaves room for the two clocks.
        assert limited <= 0.05 * rec["requests"]
    else:
        # --rpm 6000 opens with its burst (6000/600 = 10 requests) before any answer; the
        # server's burst of 5 lets 5 through and the rest are 429s. From then on the headers
        # rule (and each 429 pauses every worker), so at most one more.
        assert limited <= 10 - 5 + 1
    # The server's bucket passes at most 20 + 5 in any second; a client that hammered would
    # have its 429s counted here too (40 and more). By design the worst second holds the
    # --rpm 6000 opening burst (10) and then the paced rate after the first 429 (0.7 x 19.8/s,
    # burst 1): 25; the rest is arrival jitter on a loaded 2-core machine (28 seen once).
    assert rec["peak_per_1s"] <= 20 + 5 + 5
    assert res.json()["throttled"] == limited


# --- run-level refusals ---------------------------------------------------------------------------

def test_wrong_key_stops_at_once_and_is_never_shown(tmp_path: Path, sandbox):
    """401: exit 4 after one request, one line naming the variable, the key shown nowhere."""
    sb = sandbox()
    wrong = "sk-proj-" + "Wr0ngKeyText" * 4
    pairs = make_pairs(3, 5)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    log = log_of(manifest)
    args = ["run", str(manifest), "--base-url", sb.base_url, "--no-progress", *FAST]
    started = time.monotonic()
    res = run_cli(*args, "--json", key=wrong)
    assert res.code == 4
    assert time.monotonic() - started < 5  # not held by the workers queued behind the probe
    assert sb.record()["requests"] <= 2  # auto: one probe first, never a burst into a 401
    assert res.err == ("attach-runner: error: the API refused the key (401) from the "
                       "OPENAI_API_KEY environment variable; put a valid key there and run "
                       "again\n")
    for text in (res.out, res.err, log.read_text()):
        assert wrong not in text
        assert wrong[3:-4] not in text
    events, _ = read_log_events(log)
    assert all(e["retryable"] for e in events if e["event"] == "done")
    assert run_cli(*args).code == 0
    assert confirm_attached_once(sb.record(), pairs) == []


@pytest.mark.parametrize(("setting", "says"), [
    ({"quota_exhausted": True}, "quota is used up (429 insufficient_quota)"),
    ({"retire_v1": True}, "Assistants v1 is retired: use --target vector-store-files"),
])
def test_quota_and_retired_beta_stop_the_run(tmp_path: Path, sandbox, setting: dict[str, bool],
                                             says: str):
    """insufficient_quota and invalid_beta: exit 4, one line saying what to do, pairs retryable."""
    sb = sandbox(**setting)
    pairs = make_pairs(3, 5)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    args = run_args(manifest, "assistant-files", sb.base_url, "--concurrency", "4")
    res = run_cli(*args)
    assert res.code == 4
    assert says in res.err
    assert len(res.err.splitlines()) == 1
    assert sb.record()["requests"] <= 4  # those in flight when the refusal came; no more
    events, _ = read_log_events(log_of(manifest))
    assert all(e["retryable"] for e in events if e["event"] == "done")
    sb.update(**{name: False for name in setting})
    assert run_cli(*args).code == 0
    assert confirm_attached_once(sb.record(), pairs) == []


def test_wrong_base_url_trips_the_breaker_and_the_fixed_rerun_sends_all(
        tmp_path: Path, sandbox, target: str):
    """All 404: exit 4 within 20 + concurrency POSTs, all retryable; the fixed rerun sends all."""
    sb = sandbox()
    pairs = pairs_for(target, 8, 8)
    manifest = write_csv(tmp_path / "m.csv", pairs, owner_of(target))
    concurrency = 8
    wrong = run_args(manifest, target, sb.base_url + "/nope", "--concurrency", str(concurrency))
    res = run_cli(*wrong)
    assert res.code == 4, res.err
    assert "the first 20 attach requests were all refused the same way (404)" in res.err
    assert len(res.err.splitlines()) == 1
    rec = sb.record()
    assert 20 <= rec["by_route"]["POST unknown"] <= 20 + concurrency
    assert rec["requests"] == rec["by_route"]["POST unknown"]
    events, _ = read_log_events(log_of(manifest))
    stands = last_done(events, owner_of(target)).values()
    assert all(e["retryable"] and e["outcome"] == "failed" for e in stands)
    # The refused (all of them: the breaker's window re-logged last) and those whose turn
    # never came, stopped unsent.
    assert sum(e["status"] == 404 for e in stands) == rec["requests"]
    assert all(e["error"]["type"] == "not_sent" for e in stands if e["status"] != 404)
    fixed = run_cli(*run_args(manifest, target, sb.base_url, "--json"))
    assert fixed.code == 0, fixed.err
    assert fixed.json()["attached"] == len(pairs)
    assert confirm_attached_once(sb.record(), pairs) == []


def test_breaker_trips_on_a_manifest_sorted_by_owner(tmp_path: Path, sandbox):
    """Owners sorted (20 files each): the opening is interleaved, so 20 + concurrency at most."""
    sb = sandbox()
    pairs = make_pairs(5, 20)  # asst_0 x 20, then asst_1 x 20, ...
    manifest = write_csv(tmp_path / "m.csv", pairs)
    res = run_cli(*run_args(manifest, "assistant-files", sb.base_url + "/nope",
                            "--concurrency", "4"))
    assert res.code == 4, res.err
    assert 20 <= sb.record()["requests"] <= 24


# --- overlapping runs -----------------------------------------------------------------------------

def test_second_run_on_a_busy_log_exits_3_at_once_and_sends_nothing(tmp_path: Path, sandbox):
    """A run on a held log exits 3 naming the PID, sends nothing; a killed run never blocks."""
    slow, other = sandbox(latency_ms=300), sandbox()
    pairs = make_pairs(2, 10)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    log = log_of(manifest)
    first = spawn(*run_args(manifest, "assistant-files", slow.base_url, "--concurrency", "2"))
    try:
        wait_until(lambda: sent_lines(log) >= 1, first)
        started = time.monotonic()
        second = run_cli(*run_args(manifest, "assistant-files", other.base_url, "--json"))
        assert time.monotonic() - started < 5
        assert second.code == 3
        assert f"another run (PID {first.pid}) is using this log" in second.err
        assert second.json()["exit"] == 3
        assert other.record()["requests"] == 0
        status = run_cli("status", str(manifest), "--json")
        assert json.loads(status.out)["locked_by"] == first.pid
    finally:
        first.kill()
        first.communicate()
    slow.update(latency_ms=0)
    third = run_cli(*run_args(manifest, "assistant-files", slow.base_url, "--timeout", "3"))
    assert third.code == 0, third.err
    assert confirm_attached_once(slow.record(), pairs) == []


# --- uncertain outcomes ---------------------------------------------------------------------------

def test_attempts_out_after_a_dropped_connection_end_uncertain_and_are_checked_first(
        tmp_path: Path, sandbox, target: str):
    """Attempts out after a dropped POST: failed, retryable, uncertain; next run checks first."""
    sb = sandbox(reset_before_rate=0.5, reset_after_rate=0.5, fault_methods=("POST",), seed=2)
    pairs = pairs_for(target, 2, 6)
    manifest = write_csv(tmp_path / "m.csv", pairs, owner_of(target))
    args = run_args(manifest, target, sb.base_url, "--max-attempts", "1", "--json")
    first = run_cli(*args)
    assert first.code == 1, first.err
    events, _ = read_log_events(log_of(manifest))
    stands = last_done(events, owner_of(target))
    assert len(stands) == len(pairs)
    for done in stands.values():
        assert (done["outcome"], done["retryable"], done["uncertain"]) == ("failed", True, True)
        assert done["status"] is None
    status = run_cli("status", str(manifest), "--target", target, "--json")
    assert json.loads(status.out)["uncertain"] == len(pairs)
    before = sb.record()
    assert before["by_route"] == {"POST attach": len(pairs)}
    unapplied = before["faults"]["reset_before"]
    assert 0 < unapplied < len(pairs)  # some pairs are held, some not
    sb.update(reset_before_rate=0, reset_after_rate=0)
    second = run_cli(*args)
    assert second.code == 0, second.err
    rec = sb.record()
    assert rec["by_route"]["GET check"] == len(pairs)
    assert rec["by_route"]["POST attach"] == len(pairs) + unapplied
    assert posts_after_attached(rec) == {}
    assert confirm_attached_once(rec, pairs) == []
