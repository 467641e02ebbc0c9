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
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from runner.progress import Snapshot, _Bar, bar_layout, duration, is_terminal, plain_line
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


# --- help and unknown flags ---------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str):
    """`attach-runner COMMAND --help` exits 0 with a usage line and examples."""
    res = run_cli(command, "--help")
    assert res.code == 0, res.err
    assert res.out.startswith(f"usage: attach-runner {command}")
    assert re.search(r"^examples?:$", res.out, re.MULTILINE)
    assert f"attach-runner {command}" in res.out.split("example", 1)[1]


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
