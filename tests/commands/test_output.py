"""What users see: the bar on a terminal, plain lines for cron, the summary, --json, status,
--help and unknown flags. The real CLI against the sandbox; terminals are real pseudo-terminals."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from runner.cli import build_parser, parse
from runner.commands.demo import _mark_temporary
from runner.log.lock import RunLock
from runner.run.progress import Snapshot, _Bar, bar_layout, duration, is_terminal, plain_line
from runner.run.summary import format_summary
from tests.cli import FAST, cli_env, make_pairs, run_cli, write_csv

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Any C0 control character but the newline, and DEL: what must never reach cron mail.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
PLAIN_LINE = re.compile(
    r"attach-runner: \d+(s|m\d\ds): [\d,]+/[\d,]+ pairs \(\d+%\), ([\d.]+|-)/s"
    r"(, ETA \w+)?(; [\d,]+ failed)?(, [\d,]+ retried|; [\d,]+ retried)?"
    r"(; paused by 429 until \d\d:\d\d:\d\d \(\w+\))?")
COMMANDS = ("run", "validate", "status", "failed", "sandbox", "demo")


def run_in_pty(*args: str, cols: int = 120, rows: int = 30,
               timeout: float = 60) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on one pseudo-terminal, as in a terminal
    window; return its exit code and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = cli_env({"TERM": "xterm-256color"})
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "runner", *args], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every copy of the terminal's other side is closed
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def screen_lines(output: str) -> list[str]:
    """Terminal output as the lines left on screen: a redraw (carriage return, or erase line)
    replaces the line; colours and cursor codes are dropped."""
    lines = []
    for raw in output.replace("\r\n", "\n").split("\n"):
        text = ANSI.sub("", raw.replace("\x1b[2K", "\r"))
        lines.append(text.split("\r")[-1] if "\r" in text.rstrip("\r") else text.rstrip("\r"))
    return lines


# --- the bar, on a terminal -------------------------------------------------------------------

def test_terminal_run_draws_the_bar_then_the_summary(tmp_path: Path, sandbox):
    """On a terminal: a live bar on stderr (redrawn in place, cursor hidden and shown again)
    that ends at N/N, then the summary."""
    sb = sandbox(latency_ms=150)
    pairs = make_pairs(4, 10)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    # 20 requests a second: the run lasts about 2 s, long enough for a few redraws.
    code, out = run_in_pty("run", str(manifest), "--base-url", sb.base_url, "--concurrency", "4",
                           "--rpm", "1200", *FAST)
    assert code == 0, out
    assert "\x1b[?25l" in out
    assert out.rindex("\x1b[?25h") > out.rindex("\x1b[?25l")
    plain = ANSI.sub("", out)
    draws = re.findall(r"attach-runner\s+\S*\s*(\d+)/40\s+(\d+)%", plain)
    assert len(draws) >= 3, plain  # drawn at the start, while running, and at the end
    assert "━" in plain
    assert draws[-1] == ("40", "100")
    assert [int(done) for done, _ in draws] == sorted(int(done) for done, _ in draws)
    lines = [line for line in screen_lines(out) if line.strip()]
    summary_at = next(i for i, line in enumerate(lines)
                      if line.startswith("attach-runner: every pair is attached"))
    assert re.search(r"40/40 +100%", lines[summary_at - 1]), lines
    assert lines[-1].split() == ["next", "nothing:", "every", "pair", "is", "attached"]


def test_bar_shows_failures_and_a_429_pause(monkeypatch: pytest.MonkeyPatch):
    """On a terminal the bar names failed and retried counts and, during a 429 pause, until
    when; it is sized to the terminal it is drawn on."""
    monkeypatch.setenv("TERM", "xterm-256color")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 160, 0, 0))
    until = time.time() + 30
    with os.fdopen(slave, "w", encoding="utf-8") as stream:
        assert is_terminal(stream)
        bar = _Bar(1000, stream)
        bar.draw(Snapshot(elapsed=60.0, done=400, total=1000, rate=10.0, failed=7, retried=12,
                          paused_until=until))
        bar.stop()
    chunks = []
    with contextlib.suppress(OSError):  # EIO once all is read: the other side is closed
        while data := os.read(master, 65536):
            chunks.append(data)
    os.close(master)
    out = ANSI.sub("", b"".join(chunks).decode())
    clock = time.strftime("%H:%M:%S", time.localtime(until))
    last = [line for line in screen_lines(out) if line.strip()][-1]
    assert last == (f"attach-runner {'━' * 16}{'╺'}{'━' * 23} 400/1,000  40%  10/s  ETA 1m00s  "
                    f"7 failed  12 retried  paused by 429 until {clock} (30s)"), out


def test_bar_fits_a_narrow_terminal():
    """A narrow terminal keeps the counts, failures and a pause, and drops the label, retries,
    rate and ETA, in that order, before the bar goes under 10 columns."""
    now = time.time()
    snap = Snapshot(elapsed=60.0, done=400, total=1000, rate=10.0, failed=7, retried=12,
                    paused_until=now + 30)
    wide = bar_layout(snap, now, 200)
    assert wide[:2] == (True, 40)
    assert [p.text.split()[-1] for p in wide[2]] == ["40%", "10/s", "1m00s", "failed",
                                                     "retried", "(30s)"]
    for width, kept in ((101, ["40%", "10/s", "1m00s", "failed", "retried", "(30s)"]),
                        (90, ["40%", "10/s", "1m00s", "failed", "(30s)"]),
                        (85, ["40%", "1m00s", "failed", "(30s)"]),
                        (80, ["40%", "failed", "(30s)"])):
        label, bar, parts = bar_layout(snap, now, width)
        assert not label
        assert [p.text.split()[-1] for p in parts] == kept
        assert bar + 1 + sum(len(p.text) + 2 for p in parts) - 2 <= width - 1
        assert bar >= 10
    calm = Snapshot(elapsed=60.0, done=400, total=1000, rate=10.0, failed=0, retried=0,
                    paused_until=None)
    label, width, parts = bar_layout(calm, now, 80)
    assert label
    assert len("attach-runner") + 1 + width + 1 + sum(len(p.text) + 2 for p in parts) - 2 == 79


@pytest.mark.parametrize(("flags", "text_summary"), [
    (["--quiet"], False),
    (["--no-progress"], True),
    (["--quiet", "--json"], False),
])
def test_quiet_and_no_progress_draw_no_bar(tmp_path: Path, sandbox, flags: list[str],
                                            text_summary: bool):
    """--quiet and --no-progress: no bar even on a terminal; --quiet drops the summary text
    but keeps --json's object."""
    sb = sandbox(latency_ms=150)
    manifest = write_csv(tmp_path / "m.csv", make_pairs(2, 6))
    code, out = run_in_pty("run", str(manifest), "--base-url", sb.base_url, "--concurrency", "2",
                           *flags, *FAST)
    assert code == 0, out
    assert "━" not in out
    assert "/12" not in out
    assert "\x1b[?25l" not in out
    assert ("attach-runner: every pair is attached" in out) is text_summary
    if "--json" in flags:
        assert json.loads(out.strip())["attached"] == 12
    elif not text_summary:
        assert out.strip() == ""


# --- plain lines, for cron ----------------------------------------------------------------------

def test_cron_run_prints_a_plain_line_every_10s_without_control_characters(tmp_path: Path,
                                                                            sandbox):
    """stderr not a terminal (cron): one plain progress line about every 10 s, ASCII text and
    newlines only; stdout holds only the --json object."""
    sb = sandbox()
    pairs = make_pairs(2, 7)
    manifest = write_csv(tmp_path / "m.csv", pairs)
    # --rpm 60 spaces the 14 requests a second apart: the run lasts about 13 s.
    res = run_cli("run", str(manifest), "--base-url", sb.base_url, "--rpm", "60", "--json",
                  *FAST)
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["elapsed_s"] > 10.6, summary
    lines = res.err.splitlines()
    assert len(lines) == int(summary["elapsed_s"] // 10), res.err
    assert not CONTROL.search(res.err)
    assert res.err.isascii()
    for line in lines:
        assert PLAIN_LINE.fullmatch(line), line
        assert "/14 pairs" in line


def test_short_cron_run_prints_only_the_summary(tmp_path: Path, sandbox):
    """A run shorter than 10 s without a terminal: nothing on stderr, the summary on stdout,
    no control characters anywhere."""
    sb = sandbox(fail_rate=0.2, seed=5)
    manifest = write_csv(tmp_path / "m.csv", make_pairs(3, 4))
    res = run_cli("run", str(manifest), "--base-url", sb.base_url, "--max-attempts", "20",
                  "--rpm", "6000", *FAST)
    assert res.code == 0, res.err
    assert res.err == ""
    assert not CONTROL.search(res.out)
    assert res.out.startswith("attach-runner: every pair is attached (12 pairs, assistant-files")


def test_plain_line_says_counts_rate_eta_and_a_429_pause():
    """The plain line: done/total, percent, recent rate, ETA, failed and retried, and while a
    429 pause lasts, that it is paused and until when (local time)."""
    now = time.time()
    snap = Snapshot(elapsed=100.0, done=1234, total=10000, rate=20.0, failed=3, retried=5,
                    paused_until=now + 12.2)
    until = time.strftime("%H:%M:%S", time.localtime(now + 12.2))
    assert plain_line(snap, now) == (
        "attach-runner: 1m40s: 1,234/10,000 pairs (12%), 20/s, ETA 7m18s; 3 failed, 5 retried; "
        f"paused by 429 until {until} (13s)")
    assert PLAIN_LINE.fullmatch(plain_line(snap, now))
    calm = Snapshot(elapsed=5.0, done=0, total=3, rate=None, failed=0, retried=0,
                    paused_until=None)
    assert plain_line(calm, now) == "attach-runner: 5s: 0/3 pairs (0%), -/s"
    assert plain_line(snap, now + 20).endswith("5 retried")  # the pause is over


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59.9, "59s"), (60, "1m00s"), (438, "7m18s"), (7500, "2h05m"),
    (3 * 86400 + 4 * 3600, "3d04h"),
])
def test_duration_is_short(seconds: float, text: str):
    """Durations in progress lines are short and fixed in shape."""
    assert duration(seconds) == text


# --- the summary and --json -----------------------------------------------------------------

def test_json_summary_matches_the_sandbox_record(tmp_path: Path, sandbox):
    """--json: one object whose counts are what the server saw: attached = the record's
    attached_total, requests and requests by status = the record's; refusals are grouped by
    cause, not by file."""
    sb = sandbox(fail_rate=0.15, reset_after_rate=0.05, seed=11)
    pairs = [*make_pairs(3, 6), ("asst_missing1", "file-x"), ("asst_missing2", "file-y")]
    manifest = write_csv(tmp_path / "m.csv", pairs)
    res = run_cli("run", str(manifest), "--base-url", sb.base_url, "--max-attempts", "20",
                  "--rpm", "6000", "--json", *FAST)
    assert res.code == 1, res.err
    assert len(res.out.splitlines()) == 1
    summary = json.loads(res.out)
    rec = sb.record()
    assert summary["attached"] == rec["attached_total"] == 18
    assert summary["requests"] == rec["requests"]
    assert summary["by_status"] == rec["by_status"]
    assert summary["checks"] == rec["by_route"].get("GET check", 0)
    assert summary["failed"] == 2
    assert summary["failed_by_reason"] == [
        {"status": 404, "code": None, "message": "No assistant found with id '<id>'.",
         "count": 2}]
    assert summary["exit"] == 1
    assert summary["log"] == str(manifest) + ".results.jsonl"
    assert summary["next"].startswith(f"attach-runner failed {manifest}")
    events = [json.loads(line) for line in Path(summary["log"]).read_text().splitlines()]
    assert summary["run_id"] == events[-1]["run"]
    assert events[-1]["counts"]["requests"] == summary["requests"]


def test_text_summary_shows_reasons_log_and_next_command(tmp_path: Path, sandbox):
    """The text summary: headline with the verdict and exit code, counts, reasons under
    "failed", requests against the limit, the log, and the command to run next."""
    sb = sandbox()
    pairs = [("asst_1", "file-1"), ("asst_1", "file-missing1"), ("asst_1", "file-missing2")]
    manifest = write_csv(tmp_path / "m.csv", pairs)
    res = run_cli("run", str(manifest), "--base-url", sb.base_url, "--rpm", "600", *FAST)
    assert res.code == 1
    lines = res.out.splitlines()
    assert re.fullmatch(r"attach-runner: 2 of 3 pairs not attached "
                        r"\(3 pairs, assistant-files, [\d.]+s, exit 1\)", lines[0])
    assert [line.split()[:2] for line in lines[1:6]] == [
        ["attached", "now"], ["already", "attached"], ["attached", "earlier"], ["failed", "2"],
        ["2", "404:"]]
    assert lines[5].endswith("404: No file found with id '<id>'.")
    assert re.fullmatch(r"  requests +3 in [\d.]+s \(limit 600/min\)", lines[6])
    assert lines[8].split() == ["log", f"{manifest}.results.jsonl"]
    assert lines[9].split()[:4] == ["next", "attach-runner", "failed", str(manifest)]


# --- run --dry-run --json ---------------------------------------------------------------------

def log_lines(*events: dict[str, object]) -> str:
    """A result log holding `events` (each given the `ts` and `run` every line has)."""
    stamp = {"ts": "2026-01-01T00:00:00.000Z", "run": "r1"}
    return "".join(json.dumps({**event, **stamp}) + "\n" for event in events)


def done(owner_column: str, owner: str, file_id: str, outcome: str, *, status: int = 200,
         retryable: bool = False) -> dict[str, object]:
    return {"event": "done", owner_column: owner, "file_id": file_id, "outcome": outcome,
            "status": status, "attempts": 1, "error": None, "retryable": retryable,
            "uncertain": False}


def test_dry_run_json_is_one_object_of_counts_and_touches_nothing(tmp_path: Path, sandbox):
    """run --dry-run --json: one JSON object (no request lines) counting what a run would do
    from the manifest and the log: batches made and followed, checks, pairs settled earlier;
    with no key, and no request, lock, log line or file made."""
    sb = sandbox()
    vs = "vector_store_id"
    rows = [("vs_1", "file-1"), ("vs_1", "file-2"), ("vs_1", "file-3"), ("vs_2", "file-4"),
            ("vs_2", "file-5"), ("vs_1", "file-6"), ("vs_1", "file-7"), ("vs_3", "file-8"),
            ("vs_1", "file-6")]
    manifest = write_csv(tmp_path / "m.csv", rows, vs)
    log = tmp_path / "m.csv.results.jsonl"
    log.write_text(log_lines(
        {"event": "run-start", "manifest": "m.csv", "target": "vector-store-files", "items": 8},
        done(vs, "vs_1", "file-1", "attached"),
        done(vs, "vs_1", "file-2", "failed", status=404),
        {"event": "sent", vs: "vs_1", "file_id": "file-3"},
        {"event": "batch-sent", vs: "vs_2", "file_ids": ["file-4", "file-5"]},
        {"event": "batch-created", vs: "vs_2", "batch_id": "vsfb_1",
         "file_ids": ["file-4", "file-5"]}))
    log.chmod(0o600)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    res = run_cli("run", str(manifest), "--target", "vector-store-files", "--batch-size", "2",
                  "--base-url", sb.base_url, "--dry-run", "--json", key=None)
    assert res.code == 0, res.err
    assert len(res.out.splitlines()) == 1
    report = json.loads(res.out)
    assert report == {
        "dry_run": True, "exit": 0, "target": "vector-store-files", "manifest": str(manifest),
        "log": str(log), "pairs": 8,
        "attach_requests": 2,  # file_batches: [file-6, file-7] for vs_1, [file-8] for vs_3
        "batch_requests": 2, "checks": 1, "updates": 0, "detaches": 0, "batches_to_follow": 1,
        "pairs_to_attach": 3,
        "pairs_in_batches_to_follow": 2, "uploads": 0, "upload_bytes": 0,
        "uploads_to_check": 0, "replaces": 0, "file_deletes": 0, "attached_earlier": 1,
        "detached_earlier": 0,
        "refused_earlier": 1,
        "duplicates": 1}
    assert report["pairs"] == sum(report[k] for k in (
        "pairs_to_attach", "checks", "pairs_in_batches_to_follow", "attached_earlier",
        "refused_earlier"))
    assert sb.record()["requests"] == 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    bad = write_csv(tmp_path / "bad.csv", [("vs 1", "file-1")], vs)
    refused = run_cli("run", str(bad), "--target", "vector-store-files", "--dry-run", "--json",
                      key=None)
    assert refused.code == 2
    assert set(refused.json()) == {"exit", "error"}


def test_dry_run_json_counts_what_the_run_then_sends(tmp_path: Path, sandbox):
    """The counts of --dry-run --json are the requests the real run then makes (no faults):
    the same attach POSTs and checks, the same pairs skipped as settled earlier."""
    sb = sandbox()
    owner = "assistant_id"
    pairs = [*make_pairs(2, 4), ("asst_9", "file-sent"), ("asst_9", "file-done"),
             ("asst_9", "file-refused")]
    manifest = write_csv(tmp_path / "m.csv", pairs)
    log = tmp_path / "m.csv.results.jsonl"
    log.write_text(log_lines(
        {"event": "run-start", "manifest": "m.csv", "target": "assistant-files", "items": 11},
        {"event": "sent", owner: "asst_9", "file_id": "file-sent"},
        done(owner, "asst_9", "file-done", "attached"),
        done(owner, "asst_9", "file-refused", "failed", status=400)))
    log.chmod(0o600)
    sb.preload("assistant", "asst_9", ["file-sent"])  # the check finds it: no POST follows
    dry = run_cli("run", str(manifest), "--base-url", sb.base_url, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    plan = dry.json()
    assert sb.record()["requests"] == 0
    assert (plan["attach_requests"], plan["checks"]) == (8, 1)
    real = run_cli("run", str(manifest), "--base-url", sb.base_url, "--json", *FAST)
    assert real.code == 1, real.err  # the refused pair still counts as failed
    summary = real.json()
    for field in ("attach_requests", "checks", "attached_earlier", "refused_earlier", "pairs"):
        assert summary[field] == plan[field], field
    sent = plan["attach_requests"] + plan["checks"]
    assert summary["requests"] == sb.record()["requests"] == sent


# --- status -------------------------------------------------------------------------------------

def test_status_before_and_after_a_run(tmp_path: Path, sandbox):
    """status: says plainly when a manifest was never run; afterwards a small table, and
    --json with the same facts."""
    sb = sandbox()
    pairs = [("asst_1", "file-1"), ("asst_1", "file-2"), ("asst_missing", "file-3")]
    manifest = write_csv(tmp_path / "m.csv", pairs)
    never = run_cli("status", str(manifest))
    assert never.code == 0
    assert never.out.splitlines()[:2] == [
        f"{manifest} (assistant-files): never run; no log at {manifest}.results.jsonl",
        f"  3 pairs pending; start with: attach-runner run {manifest}",
    ]
    assert run_cli("run", str(manifest), "--base-url", sb.base_url, *FAST).code == 1
    table = run_cli("status", str(manifest))
    assert table.code == 0
    rows = [re.split(r"\s{2,}", line.strip())[:2] for line in table.out.splitlines()[1:7]]
    assert rows == [["pairs", "3"], ["attached", "2"], ["already attached", "0"],
                    ["failed", "1"], ["uncertain", "0"], ["pending", "0"]]
    assert "1 run(s), the last ended with exit 1" in table.out.splitlines()[0]
    assert "404: No assistant found with id '<id>'." in table.out
    report = run_cli("status", str(manifest), "--json").json()
    assert {k: report[k] for k in ("pairs", "attached", "failed", "refused", "pending")} == {
        "pairs": 3, "attached": 2, "failed": 1, "refused": 1, "pending": 0}
    assert report["runs"] == 1
    assert report["locked_by"] is None


# --- the demo -----------------------------------------------------------------------------------

def test_demo_sends_no_one_to_its_deleted_log(tmp_path: Path):
    """The demo's log lives in a temporary directory deleted when it ends: wherever the output
    names it, it is marked temporary, and the demo says so; every other path it names exists
    afterwards, and the command it suggests next works from any directory."""
    res = run_cli("demo", cwd=tmp_path, key=None)
    assert res.code == 0, res.out + res.err
    lines = res.out.splitlines()
    [log_row] = [line for line in lines if line.split()[:1] == ["log"]]
    log = log_row.split()[1]
    assert log_row.endswith(f"{log} (temporary)")
    assert not Path(log).exists()
    assert not Path(log).parent.exists()
    named = [line for line in lines if log in line]
    assert len(named) == 2  # the summary and the status
    assert all(f"{log} (temporary)" in line for line in named)
    assert "demo: the sandbox and the temporary log are gone now; each demo starts afresh" in lines
    paths = {word.strip("`,()") for line in lines for word in line.split()
             if word.strip("`,(").startswith("/")}
    others = paths - {log}
    assert others, paths  # the manifest, at least
    assert all(Path(p).exists() for p in others), paths
    [suggested] = re.findall(r"^next: try `([^`]+)`", res.out, re.MULTILINE)
    command = shlex.split(suggested)
    assert command[:2] == ["attach-runner", "validate"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    validated = run_cli(*command[1:], cwd=elsewhere, key=None)
    assert validated.code == 0, validated.err
    assert "OK" in validated.out


def test_demo_summary_points_a_failed_demo_at_a_new_demo(tmp_path: Path, sandbox):
    """Were the demo to end with pairs not attached, its summary's "next" row would name the
    demo again (it starts afresh), not a rerun of a log and a sandbox that are gone; a summary
    with nothing left to do keeps its row. Checked on the real summary text of a failed run."""
    sb = sandbox()
    manifest = write_csv(tmp_path / "m.csv", [("asst_1", "file-1"), ("asst_2", "file-missing")])
    res = run_cli("run", str(manifest), "--base-url", sb.base_url, "--json", *FAST)
    assert res.code == 1, res.err
    summary = res.json()
    text = format_summary(summary)
    marked = _mark_temporary(text, summary["log"]).splitlines()
    [next_row] = [line for line in marked if line.split()[:1] == ["next"]]
    assert next_row.split(None, 1)[1] == (
        "attach-runner demo   (it starts afresh: a new sandbox, a new log)")
    assert f"{summary['log']} (temporary)" in "\n".join(marked)
    done = format_summary({**summary, "next": "nothing: every pair is attached"})
    assert _mark_temporary(done, "/nowhere") == done


# --- help and unknown flags ---------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str):
    """`attach-runner COMMAND --help` exits 0 with a usage line and examples."""
    res = run_cli(command, "--help")
    assert res.code == 0, res.err
    assert res.out.startswith(f"usage: attach-runner {command}")
    assert re.search(r"^examples?:$", res.out, re.MULTILINE)
    assert f"attach-runner {command}" in res.out.split("example", 1)[1]


def test_top_level_help_has_examples_that_parse():
    """`attach-runner --help` exits 0 with examples of demo, validate, run (and the same run
    again, to resume), status and failed; each example is a command line the CLI accepts,
    and the examples fit 80 columns."""
    res = run_cli("--help")
    assert res.code == 0, res.err
    assert res.out.startswith("usage: attach-runner")
    assert res.err == ""
    examples = res.out.split("\nexamples:\n", 1)[1]
    lines = [line for line in examples.splitlines() if line.startswith("  attach-runner ")]
    commands = [shlex.split(line.split("#", 1)[0]) for line in lines]
    assert [command[1] for command in commands] == [
        "demo", "validate", "run", "run", "status", "failed", "detach", "sync"]
    first_run, again = (line for line in lines if line.split()[1] == "run")
    assert first_run.split("#")[0] == again.split("#")[0]
    assert "resume" in again
    parser = build_parser()
    for command in commands:
        assert parse(parser, command[1:]).command == command[1]
    assert all(len(line) < 80 for line in examples.splitlines())


@pytest.mark.parametrize(("args", "closest"), [
    (["run", "m.csv", "--concurency", "3"], "--concurrency"),
    (["run", "m.csv", "--retry-faild"], "--retry-failed"),
    (["run", "m.csv", "--max-atempts=3"], "--max-attempts"),
    (["validate", "m.csv", "--taget", "vector-store-files"], "--target"),
    (["status", "m.csv", "--jsn"], "--json"),
    (["failed", "m.csv", "--lgo", "x.jsonl"], "--log"),
    (["sandbox", "--prot", "0"], "--port"),
    (["--verison"], "--version"),
])
def test_unknown_flag_names_the_closest(args: list[str], closest: str):
    """An unknown flag is one error line naming the closest flag of that command; exit 2."""
    res = run_cli(*args)
    assert res.code == 2
    assert res.err.startswith("attach-runner: error: ")
    assert res.err.endswith(f"did you mean {closest}?\n")
    assert res.err.count("\n") == 1
    assert res.out == ""


def test_json_from_a_config_file_also_covers_exits_2_and_3(tmp_path: Path, sandbox):
    """`json: true` in a config file is --json: a refused manifest (exit 2) and a log held by
    another run (exit 3) print the {"exit", "error"} object too; `--no-json` turns it off."""
    config = tmp_path / "cfg.yaml"
    config.write_text("json: true\n")
    bad = write_csv(tmp_path / "bad.csv", [("asst 1", "file-1")], "assistant_id")
    refused = run_cli("run", str(bad), "--config", str(config))
    assert refused.code == 2
    assert refused.json()["exit"] == 2
    assert "bad.csv:2" in refused.json()["error"]
    quiet = run_cli("run", str(bad), "--config", str(config), "--no-json")
    assert (quiet.code, quiet.out) == (2, "")

    sb = sandbox()
    good = write_csv(tmp_path / "m.csv", [("asst_1", "file-1")], "assistant_id")
    with RunLock(str(good) + ".results.jsonl"):
        held = run_cli("run", str(good), "--config", str(config), "--base-url", sb.base_url)
    assert held.code == 3
    assert held.json()["exit"] == 3
    assert sb.record()["requests"] == 0


def test_the_progress_line_counts_the_bytes_of_uploads_in_flight():
    """While large files upload, the line says how far their bytes are (the pairs' count
    moves only when a file is attached)."""
    snap = Snapshot(elapsed=20.0, done=3, total=10, rate=0.5, failed=0, retried=0,
                    paused_until=None, uploading=(120_000_000, 400_000_000))
    assert "; uploading 120/400 MB" in plain_line(snap, time.time())
    idle = Snapshot(elapsed=20.0, done=3, total=10, rate=0.5, failed=0, retried=0,
                    paused_until=None, uploading=(0, 0))
    assert "uploading" not in plain_line(idle, time.time())
