"""The vector-store-files target and file_batches, end to end: the real CLI against the sandbox,
judged by the sandbox's record and the result log."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.items import Item
from runner.log.states import Plan
from runner.pacing.store_limiter import KeyedLimiter
from runner.run.work import FreeStoresFirst, Single, Work
from runner.sandbox import SandboxThread
from tests.cli import FAST, attached_counts, log_of, read_events, run_cli, spawn, write_csv

TARGET = ["--target", "vector-store-files"]
OWNER = "vector_store_id"
# The sandbox's last_error for a file id containing `fail` (runner/sandbox/state.py).
PARSE_ERROR = "The file {} could not be parsed: it has no text content."


def store_pairs(files_per_store: list[int], prefix: str = "file") -> list[tuple[str, str]]:
    return [(f"vs_{s}", f"{prefix}-{s}x{f}") for s, n in enumerate(files_per_store)
            for f in range(n)]


def run_args(sb: SandboxThread, manifest: Path, *extra: str) -> list[str]:
    # --rpm: a known limit, so the run does not open with auto's slow probe.
    return ["run", str(manifest), *TARGET, "--base-url", sb.base_url, "--rpm", "30000",
            *FAST, *extra]


def done_lines(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The last `done` line of each pair (the one that stands)."""
    return {(e[OWNER], e["file_id"]): e for e in events if e["event"] == "done"}


def wait_for_events(log: Path, event: str, count: int, timeout: float = 20) -> None:
    """Until the log holds `count` lines of `event` (whole lines only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            whole = log.read_text().rsplit("\n", 1)[0]
            if whole.count(f'"event":"{event}"') >= count:
                return
        time.sleep(0.02)
    raise AssertionError(f"no {count} {event} lines in {log} after {timeout}s")


def post(sb: SandboxThread, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(
        sb.base_url + path, data=data, method="POST",
        headers={"Authorization": "Bearer sk-sandbox", "Content-Type": "application/json",
                 "OpenAI-Beta": "assistants=v2"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


# -- batches --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 2000])
def test_batch_size_sends_n_files_per_batch(tmp_path: Path, sandbox, size: int):
    """--batch-size N: ceil(files/N) file_batches POSTs per store, no single attach, each pair
    attached once, one `done` line per file after its batch's `batch-sent` and `batch-created`."""
    sb = sandbox(processing_ms=0)
    counts = [5, 8, 2]
    pairs = store_pairs(counts)
    manifest = write_csv(tmp_path / "m.csv", pairs, OWNER)
    res = run_cli(*run_args(sb, manifest, "--batch-size", str(size)))
    assert res.code == 0, res.err
    record = sb.record()
    assert record["by_route"]["POST batch"] == sum(math.ceil(n / size) for n in counts)
    assert "POST attach" not in record["by_route"]
    assert attached_counts(record, pairs) == [1] * len(pairs)
    events = read_events(log_of(manifest))
    done = [e for e in events if e["event"] == "done"]
    assert Counter((e[OWNER], e["file_id"]) for e in done) == Counter(pairs)
    assert all(e["outcome"] == "attached" for e in done)
    sent_at: dict[tuple[str, str], int] = {}
    created_at: dict[tuple[str, str], int] = {}
    batch_ids = set()
    for n, event in enumerate(events):
        if event["event"] in ("batch-sent", "batch-created"):
            assert 1 <= len(event["file_ids"]) <= size
            marks = sent_at if event["event"] == "batch-sent" else created_at
            marks.update({(event[OWNER], f): n for f in event["file_ids"]})
        if event["event"] == "batch-created":
            assert event["batch_id"].startswith("vsfb_")
            batch_ids.add(event["batch_id"])
    assert len(batch_ids) == record["by_route"]["POST batch"]
    for n, event in enumerate(events):
        if event["event"] == "done":
            pair = (event[OWNER], event["file_id"])
            assert sent_at[pair] < created_at[pair] < n


@pytest.mark.parametrize("size", [0, 4])
def test_wait_fails_failed_files_and_cancelled_ones_retryably(tmp_path: Path, sandbox,
                                                               size: int):
    """--wait, single and batched: a file that ends failed is failed, retryable: false, with
    the server's last_error; one that ends cancelled is failed, retryable; the rest attached;
    exit 1."""
    sb = sandbox(processing_ms=150)
    good = store_pairs([3, 3])
    bad, gone = ("vs_0", "file-fail-7"), ("vs_1", "file-cancel-8")
    manifest = write_csv(tmp_path / "m.csv", [*good, bad, gone], OWNER)
    res = run_cli(*run_args(sb, manifest, "--wait", "--batch-size", str(size), "--json"))
    assert res.code == 1, res.err
    assert res.json()["failed"] == 2
    done = done_lines(read_events(log_of(manifest)))
    failed = done[bad]
    assert (failed["outcome"], failed["retryable"], failed["file_status"]) == (
        "failed", False, "failed")
    assert failed["error"]["code"] == "invalid_file"
    assert failed["error"]["message"] == PARSE_ERROR.format(bad[1])
    cancelled = done[gone]
    assert (cancelled["outcome"], cancelled["retryable"], cancelled["file_status"]) == (
        "failed", True, "cancelled")
    for pair in good:
        assert (done[pair]["outcome"], done[pair]["file_status"]) == ("attached", "completed")
    record = sb.record()
    assert attached_counts(record, [*good, bad, gone]) == [1] * 8
    if size:
        assert record["by_route"]["POST batch"] == 2
        assert record["by_route"]["GET batch"] >= 2  # polled, not taken on faith
    else:
        assert record["by_route"]["POST attach"] == 8


def test_failed_files_of_a_batch_are_listed_page_by_page(tmp_path: Path, sandbox):
    """A batch with more failed files than one list page (100) names every one of them."""
    sb = sandbox(processing_ms=0)
    pairs = [("vs_0", f"file-fail-{i:03}") for i in range(130)] + store_pairs([20])
    manifest = write_csv(tmp_path / "m.csv", pairs, OWNER)
    res = run_cli(*run_args(sb, manifest, "--wait", "--batch-size", "2000"))
    assert res.code == 1, res.err
    done = done_lines(read_events(log_of(manifest)))
    outcomes = Counter((e["outcome"], e["retryable"]) for e in done.values())
    assert outcomes == {("failed", False): 130, ("attached", False): 20}
    assert sb.record()["by_route"]["GET batch_files"] == 2


def test_batch_cancelled_on_the_server_fails_its_files_retryably(tmp_path: Path, sandbox):
    """A batch cancelled while the run waits: its files end failed, retryable; the rerun
    sends them again and they attach."""
    sb = sandbox(processing_ms=30_000)
    pairs = store_pairs([4])
    manifest = write_csv(tmp_path / "m.csv", pairs, OWNER)
    log = log_of(manifest)
    proc = spawn(*run_args(sb, manifest, "--wait", "--batch-size", "10"))
    try:
        wait_for_events(log, "batch-created", 1)
        batch_id = next(e["batch_id"] for e in read_events(log)
                        if e["event"] == "batch-created")
        status, batch = post(sb, f"/vector_stores/vs_0/file_batches/{batch_id}/cancel")
        assert (status, batch["status"]) == (200, "cancelled")
        assert proc.wait(timeout=20) == 1
    finally:
        proc.kill()
        proc.communicate()
    done = done_lines(read_events(log))
    assert {(e["outcome"], e["retryable"], e["file_status"]) for e in done.values()} == {
        ("failed", True, "cancelled")}
    sb.update(processing_ms=0)
    again = run_cli(*run_args(sb, manifest, "--wait", "--batch-size", "10"))
    assert again.code == 0, again.err
    assert all(e["outcome"] == "attached" for e in done_lines(read_events(log)).values())
    # The sandbox adds a cancelled file anew: its second attach is the rerun's.
    assert attached_counts(sb.record(), pairs) == [2] * len(pairs)


def test_kill_after_batch_created_follows_the_batch(tmp_path: Path, sandbox):
    """SIGKILL while --wait polls created batches: the rerun follows them (GET), never
    creates them again, and each pair is attached exactly once."""
    sb = sandbox(processing_ms=2500)
    pairs = store_pairs([4, 4])
    manifest = write_csv(tmp_path / "m.csv", pairs, OWNER)
    log = log_of(manifest)
    args = run_args(sb, manifest, "--wait", "--batch-size", "4")
    proc = spawn(*args)
    try:
        wait_for_events(log, "batch-created", 2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert not any(e["event"] == "done" for e in read_events(log))
    assert sb.record()["by_route"]["POST batch"] == 2
    res = run_cli(*args, "--json")
    assert res.code == 0, res.err
    record = sb.record()
    assert record["by_route"]["POST batch"] == 2
    assert "POST attach" not in record["by_route"]
    assert record["by_route"]["GET batch"] >= 2
    assert attached_counts(record, pairs) == [1] * len(pairs)
    events = read_events(log)
    second_run = events[[e["event"] for e in events].index("run-start", 1):]
    assert not any(e["event"] == "batch-sent" for e in second_run)
    done = done_lines(events)
    assert {(e["outcome"], e["file_status"]) for e in done.values()} == {
        ("attached", "completed")}


def test_batch_sent_without_created_checks_each_file(tmp_path: Path, sandbox):
    """A log with `batch-sent` and no `batch-created`: each file is checked (GET) first; the
    one the store holds is not sent again, the absent one is sent once."""
    sb = sandbox(processing_ms=0)
    held, absent = ("vs_1", "file-held"), ("vs_1", "file-absent")
    sb.preload("vector_store", held[0], [held[1]])
    manifest = write_csv(tmp_path / "m.csv", [held, absent], OWNER)
    log = log_of(manifest)
    stamp = {"ts": "2026-01-01T00:00:00.000Z", "run": "r0"}
    lines = [
        {"event": "run-start", **stamp, "manifest": str(manifest),
         "target": "vector-store-files", "items": 2},
        {"event": "batch-sent", **stamp, OWNER: "vs_1", "file_ids": [held[1], absent[1]]},
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    log.chmod(0o600)
    res = run_cli(*run_args(sb, manifest, "--batch-size", "10"))
    assert res.code == 0, res.err
    record = sb.record()
    assert record["by_route"] == {"GET check": 2, "POST attach": 1}
    assert record["pairs"]["vs_1/file-held"]["posts_after_attached"] == 0
    assert attached_counts(record, [held, absent]) == [1, 1]


def test_batch_refused_as_a_whole_falls_back_to_single_attaches(tmp_path: Path, sandbox):
    """A batch refused because one file is missing: the files go one by one, the good ones
    attach once, the missing one fails retryable: false."""
    sb = sandbox(processing_ms=0)
    good = [("vs_1", "file-a"), ("vs_1", "file-b")]
    missing = ("vs_1", "file-missing-1")
    manifest = write_csv(tmp_path / "m.csv", [good[0], missing, good[1]], OWNER)
    res = run_cli(*run_args(sb, manifest, "--batch-size", "10"))
    assert res.code == 1, res.err
    record = sb.record()
    assert record["by_route"] == {"POST batch": 1, "POST attach": 3}
    assert attached_counts(record, good) == [1, 1]
    done = done_lines(read_events(log_of(manifest)))
    assert (done[missing]["outcome"], done[missing]["status"], done[missing]["retryable"]) == (
        "failed", 404, False)
    assert done[missing]["error"]["message"] == "No file found with id 'file-missing-1'."
    assert [done[p]["outcome"] for p in good] == ["attached", "attached"]


# -- the per-store limit --------------------------------------------------------------------


@pytest.mark.parametrize(("size", "files"), [(4, 8), (0, 3)])
def test_many_stores_stay_under_the_store_limit(tmp_path: Path, sandbox, size: int,
                                                files: int):
    """25 stores: batches are made per store, no store sees more than --store-rpm attach
    calls (not even the sandbox's 1 s bucket refuses one), and every pair is attached once."""
    store_rpm = 600
    sb = sandbox(processing_ms=0, store_rpm=store_rpm)
    pairs = store_pairs([files] * 25)
    manifest = write_csv(tmp_path / "m.csv", pairs, OWNER)
    res = run_cli(*run_args(sb, manifest, "--batch-size", str(size), "--store-rpm",
                            str(store_rpm), "--concurrency", "32"))
    assert res.code == 0, res.err
    record = sb.record()
    assert attached_counts(record, pairs) == [1] * len(pairs)
    assert record["max_store_attach_per_60s"] <= store_rpm
    assert record["rate_limited"]["store"] == 0
    assert len(record["store_attach_peak_per_60s"]) == 25
    if size:
        assert record["by_route"]["POST batch"] == 25 * math.ceil(files / size)
        for event in read_events(log_of(manifest)):
            if event["event"] == "batch-sent":
                assert {f.split("x")[0] for f in event["file_ids"]} == {
                    "file-" + event[OWNER].removeprefix("vs_")}
    else:
        assert record["by_route"]["POST attach"] == len(pairs)


def test_a_manifest_grouped_by_store_keeps_every_store_busy(tmp_path: Path, sandbox):
    """Per-file mode, each store's files listed together (as a grouped YAML manifest always
    is), more of them than the opening interleave reorders: the stores are worked at once,
    each at its own limit, not one after the other."""
    store_rpm = 6000  # about 99 calls a second per store (the limiter's 60.5 s minute)
    sb = sandbox(processing_ms=0, store_rpm=store_rpm)
    pairs = store_pairs([300] * 3)
    manifest = write_csv(tmp_path / "m.csv", pairs, OWNER)
    res = run_cli(*run_args(sb, manifest, "--store-rpm", str(store_rpm), "--concurrency", "16",
                            "--json"))
    assert res.code == 0, res.err
    record = sb.record()
    assert attached_counts(record, pairs) == [1] * len(pairs)
    assert record["max_store_attach_per_60s"] <= store_rpm
    assert record["rate_limited"]["store"] == 0
    # Every store was started before the first store was finished...
    sent = [e[OWNER] for e in read_events(log_of(manifest)) if e["event"] == "sent"]
    first_store_done = max(i for i, store in enumerate(sent) if store == "vs_0")
    assert all(sent.index(f"vs_{s}") < first_store_done for s in range(3))
    # ...so 900 files took about one store's 300 at its rate (3 s), not all 900 (9 s).
    assert json.loads(res.out)["elapsed_s"] < 6.0


def test_free_stores_first_keeps_each_stores_order_and_bounds_what_it_holds():
    """Units of a busy store wait aside (at most `lookahead` pairs) while free stores' units
    go; each unit comes out once, each store's in manifest order; when all in sight are busy,
    the store that frees first goes."""
    units = [Single(Item(store, f"file-{store}-{i}"), Plan.SEND)
             for store in ("vs_a", "vs_b", "vs_c") for i in range(4)]
    pulled = 0

    def manifest() -> Iterator[Work]:
        nonlocal pulled
        for unit in units:
            pulled += 1
            yield unit

    busy = {"vs_a": 5.0, "vs_b": 1.0}  # vs_c is free; vs_b frees before vs_a
    order = FreeStoresFirst(manifest(), lambda store: busy.get(store, 0.0), lookahead=9)
    first = [next(order) for _ in range(4)]
    assert [u.item.file_id for u in first] == [f"file-vs_c-{i}" for i in range(4)]
    assert pulled == 12  # vs_a's and vs_b's 8 held aside, under the lookahead of 9
    rest = list(order)
    assert [u.item.owner for u in rest] == ["vs_b"] * 4 + ["vs_a"] * 4
    assert sorted(u.item.file_id for u in first + rest) == sorted(u.item.file_id for u in units)

    busy = {"vs_a": 5.0, "vs_b": 5.0, "vs_c": 5.0}
    order = FreeStoresFirst(iter(units), lambda store: busy[store], lookahead=2)
    out = [next(order)]  # nothing free: 2 held, then the soonest (vs_a, the first in sight)
    assert out[0].item.file_id == "file-vs_a-0"
    out += list(order)
    for store in ("vs_a", "vs_b", "vs_c"):
        assert [u.item.file_id for u in out if u.item.owner == store] == [
            f"file-{store}-{i}" for i in range(4)]


async def test_store_limiter_leaves_slack_for_arrival_jitter():
    """rpm + 1 grants on one store span more than the period, so calls that reach the server a
    little late still fit its count of rpm per period."""
    limiter = KeyedLimiter(20, period=1.0)
    loop = asyncio.get_running_loop()
    grants = []
    for _ in range(21):
        await limiter.acquire("vs_a")
        grants.append(loop.time())
    assert grants[-1] - grants[0] > 1.0 + 0.005


def test_store_limit_lower_than_flag_is_honoured_on_429(tmp_path: Path, sandbox):
    """A store limit lower than --store-rpm: the store's 429s pause and retry; the run ends
    with each pair attached once and no file sent again after it was attached."""
    sb = sandbox(processing_ms=0, store_rpm=300)
    pairs = store_pairs([12])
    manifest = write_csv(tmp_path / "m.csv", pairs, OWNER)
    res = run_cli(*run_args(sb, manifest, "--store-rpm", "6000", "--max-attempts", "20"))
    assert res.code == 0, res.err
    record = sb.record()
    assert record["rate_limited"]["store"] > 0
    assert attached_counts(record, pairs) == [1] * len(pairs)
    assert all(p["posts_after_attached"] == 0 for p in record["pairs"].values())


# -- --wait-timeout -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 3])
def test_wait_timeout_shorter_than_processing_counts_attached_with_warning(
        tmp_path: Path, sandbox, size: int):
    """Files still in_progress when --wait-timeout runs out are attached, with a warning on
    stderr (also under --quiet); exit 0."""
    sb = sandbox(processing_ms=30_000)
    pairs = store_pairs([3])
    manifest = write_csv(tmp_path / "m.csv", pairs, OWNER)
    started = time.monotonic()
    res = run_cli(*run_args(sb, manifest, "--wait", "--wait-timeout", "0.5", "--batch-size",
                            str(size), "--quiet"))
    assert res.code == 0, res.err
    assert time.monotonic() - started < 15
    assert res.out == ""
    assert ("attach-runner: warning: 3 file(s) were still processing when --wait-timeout 0.5s "
            "ran out; counted as attached") in res.err
    done = done_lines(read_events(log_of(manifest)))
    assert {(e["outcome"], e["file_status"]) for e in done.values()} == {
        ("attached", "in_progress")}


# -- the sandbox's shapes -------------------------------------------------------------------


def test_sandbox_batch_takes_file_ids_or_files_objects(sandbox):
    """file_batches takes `file_ids` or `files` objects (their own attributes), not both."""
    sb = sandbox(processing_ms=0)
    status, batch = post(sb, "/vector_stores/vs_1/file_batches", {
        "files": [{"file_id": "file-1", "attributes": {"team": "a"}}, {"file_id": "file-2"}],
        "attributes": {"ignored": True}})
    assert status == 200
    assert batch["file_counts"] == {"in_progress": 0, "completed": 2, "failed": 0,
                                    "cancelled": 0, "total": 2}
    status, file = post(sb, "/vector_stores/vs_1/files", {"file_id": "file-1"})
    assert (status, file["attributes"]) == (200, {"team": "a"})
    status, error = post(sb, "/vector_stores/vs_1/file_batches",
                         {"file_ids": ["file-3"], "files": [{"file_id": "file-4"}]})
    assert (status, error["error"]["param"]) == (400, "files")
    status, error = post(sb, "/vector_stores/vs_1/file_batches", {"files": [{"id": "f"}]})
    assert (status, error["error"]["code"]) == (400, "unknown_parameter")
    assert sb.record()["attached_total"] == 2
