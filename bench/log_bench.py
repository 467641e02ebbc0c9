"""The result log's writing and reading, against orjson and a plain json loop (issue 19).

    pip install orjson        # for its arms only; they are skipped with a note without it
    mkdir -p /tmp/before && git archive 9baed14 runner | tar -x -C /tmp/before
    python bench/log_bench.py --lines 1000000 --rounds 3 --before /tmp/before

Three tables, each in the same rounds, each arm in its own process pinned to CPU 1 (fresh
memory, no warm caches from another arm), the order rotating from round to round:

- write: N lines the way a run writes them (each pair's `sent`, its `done` attached/200 up
  to 64 lines later; one `os.write` a line, `fdatasync` once a second): ResultLog as it is
  now (`append_sent`/`append_done`), 9baed14's own code (`--before`: its ResultLog and its
  engine's f-string helpers + `append_encoded`), orjson (the whole line as a dict,
  `orjson.dumps`), and the yardstick, the line as a dict through `json.dumps`.
- write failed: N `done` lines of failed pairs with an error message (the lines that need
  an encoder): ResultLog now (f-strings, the error's strings through json's string
  encoder), 9baed14's (`append` through `json.encoder.c_make_encoder`), orjson, `json.dumps`.
- resume: the resume index built from an N-line log (a finished 64-wide run, as
  bench/resume.py makes it) in our compact spelling and in json.dumps's default spacing:
  `ResumeIndex.load_log` (the regex scan; 9baed14's too), an orjson reader (each line
  `orjson.loads`, checked as read_log checks it, folded by `ResumeIndex.load`, the collector off as
  load_log has it), json's line-by-line reader (`load(read_log(...))`), and two loops that
  only parse: `orjson.loads` and the yardstick `json.loads` of every line.

Every arm's process imports the same modules before its clock starts. Ratios are per round
against the yardstick of the same table (its time / the arm's: above 1 is faster), then the
median. Prints the tables and one JSON line.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH_DIR, CLIENT_CPU, PYTHON, pair, pinned  # noqa: E402
from bench.resume import make_log, spaced  # noqa: E402
from bench.run_all import machine  # noqa: E402

# A child measuring the code as it was (--before) imports that `runner` instead of this one
# (first on the path, after the bench modules, which put this repository first on import).
BEFORE = sys.argv[sys.argv.index("--runner") + 1] if "--runner" in sys.argv else None
if BEFORE:
    sys.path.insert(0, BEFORE)

from runner.items import Item  # noqa: E402
from runner.log.reader import read_log  # noqa: E402
from runner.log.resume import ResumeIndex  # noqa: E402
from runner.log.writer import ResultLog  # noqa: E402
from runner.requests.outcomes import Outcome  # noqa: E402
from runner.requests.targets import ApiError  # noqa: E402

if BEFORE:  # 9baed14's engine spelled the pair lines; its helpers are gone since
    from runner.run.engine import (  # type: ignore[attr-defined]  # noqa: E402
        op_members,
        pair_members,
        plain_done_members,
        recorded_digest,
    )

WIDTH = 64  # a done trails its sent by up to this many lines, as in a 64-wide run
RUN = "0123456789ab"
COLUMN = "assistant_id"
MESSAGE = 'No file with id "file-000000001" found in this organization.'

try:
    import orjson
except ImportError:  # pragma: no cover - the arms say so
    orjson = None


# ---------------------------------------------------------------- writing


class Stamp:
    """ts as the writer spells it, the whole second formatted once a second (every arm)."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def now(self) -> str:
        second, rest = divmod(time.time_ns(), 1_000_000_000)
        if second != self.second:
            self.second = second
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        return f"{self.prefix}{rest // 1_000_000:03d}Z"


class Sink:
    """One os.write a line, fdatasync once a second: what ResultLog does."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        self.synced = time.monotonic()

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)
        if time.monotonic() - self.synced >= 1.0:
            os.fdatasync(self.fd)
            self.synced = time.monotonic()

    def close(self) -> None:
        os.fdatasync(self.fd)
        os.close(self.fd)


def run_order(items: list[Item]) -> Iterator[tuple[bool, Item]]:
    """(is done, item) in a 64-wide run's order: each item's sent, its done up to 64 on."""
    flight: deque[Item] = deque()
    for item in items:
        yield False, item
        flight.append(item)
        if len(flight) >= WIDTH:
            yield True, flight.popleft()
    for item in flight:
        yield True, item


def write_result_log(path: Path, items: list[Item], failed: bool) -> None:
    end = (Outcome("failed", 404, 1, ApiError("invalid_request_error", MESSAGE, None))
           if failed else Outcome("attached", 200, 1))
    with ResultLog(str(path), RUN) as log:
        if failed:
            for item in items:
                log.append_done(COLUMN, item, end)
            return
        for done, item in run_order(items):
            if done:
                log.append_done(COLUMN, item, end)
            else:
                log.append_sent(COLUMN, item, "attach")


def write_before(path: Path, items: list[Item], failed: bool) -> None:
    """9baed14's own code (--before): its ResultLog, and its engine's calls as `_one` and
    `_write_done` made them: the pair's members made once at `sent` and kept for its `done`,
    f-strings and `append_encoded` for sent and plain done lines, `append` (json's C encoder
    made once, `json.encoder.c_make_encoder`) for the rest."""
    end = (Outcome("failed", 404, 1, ApiError("invalid_request_error", MESSAGE, None))
           if failed else Outcome("attached", 200, 1))

    def write_done(log: Any, item: Item, pair: str | None) -> None:
        digest = recorded_digest(item, end)
        members = plain_done_members(pair, end, digest) if pair is not None else None
        if members is not None:
            log.append_encoded("done", members)
            return
        fields: dict[str, Any] = {
            "op": end.op, COLUMN: item.owner, "file_id": item.file_id,
            "outcome": end.outcome, "status": end.status, "attempts": end.attempts,
            "error": end.error.as_log() if end.error else None,
            "retryable": end.retryable, "uncertain": end.uncertain}
        if end.file_status is not None:
            fields["file_status"] = end.file_status
        if digest is not None:
            fields["attributes_digest"] = digest
        log.append("done", **fields)

    with ResultLog(str(path), RUN) as log:
        if failed:
            for item in items:
                pair = pair_members(COLUMN, item)
                write_done(log, item, pair)
            return
        pairs: dict[Item, str] = {}
        for done, item in run_order(items):
            if done:
                write_done(log, item, pairs.pop(item))
            else:
                pair = pairs[item] = pair_members(COLUMN, item)
                log.append_encoded("sent", op_members("attach", pair))


def write_dicts(dumps: Callable[[dict[str, Any]], bytes],
                ) -> Callable[[Path, list[Item], bool], None]:
    """Each whole line as a dict, through `dumps`."""

    def write(path: Path, items: list[Item], failed: bool) -> None:
        stamp, sink = Stamp(), Sink(path)
        if failed:
            error = {"type": "invalid_request_error", "message": MESSAGE, "code": None}
            for item in items:
                sink.write(dumps({
                    "event": "done", "ts": stamp.now(), "run": RUN, "op": "attach",
                    COLUMN: item.owner, "file_id": item.file_id, "outcome": "failed",
                    "status": 404, "attempts": 1, "error": error, "retryable": False,
                    "uncertain": False}))
        else:
            for done, item in run_order(items):
                line: dict[str, Any] = {"event": "done" if done else "sent", "ts": stamp.now(),
                                        "run": RUN, "op": "attach", COLUMN: item.owner,
                                        "file_id": item.file_id}
                if done:
                    line.update(outcome="attached", status=200, attempts=1, error=None,
                                retryable=False, uncertain=False)
                sink.write(dumps(line))
        sink.close()

    return write


def json_dumps_line(line: dict[str, Any]) -> bytes:
    return (json.dumps(line, separators=(",", ":")) + "\n").encode()


def orjson_line(line: dict[str, Any]) -> bytes:
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)  # type: ignore[no-any-return]


WRITERS: dict[str, Callable[[Path, list[Item], bool], None]] = {
    "ResultLog (now)": write_result_log,
    "before (9baed14's own code)": write_before,
    "orjson (whole line)": write_dicts(orjson_line),
    "json.dumps (yardstick)": write_dicts(json_dumps_line),
}


# ---------------------------------------------------------------- resuming


def resume_load_log(path: Path) -> None:
    ResumeIndex(COLUMN).load_log(str(path), warn=print)


def resume_json_reader(path: Path) -> None:
    gc.disable()  # as load_log has it
    ResumeIndex(COLUMN).load(read_log(str(path), warn=print))


def resume_orjson_reader(path: Path) -> None:
    """What an orjson reader would be: each line parsed and checked as read_log checks it,
    folded event by event."""
    loads = orjson.loads

    def events() -> Iterator[dict[str, Any]]:
        with open(path, "rb") as file:
            for number, line in enumerate(file, 1):
                if line[-1:] != b"\n":
                    return  # torn
                event = loads(line)
                if (type(event) is not dict or type(event.get("event")) is not str
                        or type(event.get("run")) is not str):
                    raise ValueError(f"{path}:{number}: not an event")
                yield event

    gc.disable()
    ResumeIndex(COLUMN).load(events())


def parse_only(loads: Callable[[bytes], Any]) -> Callable[[Path], None]:
    def parse(path: Path) -> None:
        with open(path, "rb") as file:
            for line in file:
                loads(line)

    return parse


READERS: dict[str, Callable[[Path], None]] = {
    "ResumeIndex.load_log (regex scan)": resume_load_log,
    "before (9baed14's load_log)": resume_load_log,
    "orjson reader + ResumeIndex.load": resume_orjson_reader,
    "json reader + ResumeIndex.load": resume_json_reader,
    "orjson.loads loop (parse only)": parse_only(lambda line: orjson.loads(line)),
    "json.loads loop (yardstick)": parse_only(json.loads),
}

YARDSTICK = {"write": "json.dumps (yardstick)", "write failed": "json.dumps (yardstick)",
             "resume": "json.loads loop (yardstick)"}


# ---------------------------------------------------------------- one measurement (child)


def measure(table: str, arm: str, data: Path, lines: int, log: str) -> dict[str, float]:
    # The items a run holds anyway (built before the clock starts): a failed line each, or
    # a sent and a done line each.
    items = [Item(*pair(i)) for i in range(lines if table == "write failed" else lines // 2)]
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    if table == "resume":
        READERS[arm](Path(log))
    else:
        out = data / "log-bench.write.jsonl"
        WRITERS[arm](out, items, table == "write failed")
        with open(out, "rb") as written_file:
            written = sum(1 for _ in written_file)
        assert written == lines, (arm, written, lines)
        out.unlink()
    return {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}


# ---------------------------------------------------------------- the rounds (parent)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default=str(BENCH_DIR / ".data"))
    parser.add_argument("--before", default=None, help=(
        "a directory holding 9baed14's `runner` package (git archive 9baed14 runner | tar -x "
        "-C DIR): its own writer and reader are measured too, in the same rounds"))
    parser.add_argument("--one", nargs=3, metavar=("TABLE", "ARM", "LOG"), help=argparse.SUPPRESS)
    parser.add_argument("--runner", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data = Path(args.data)
    if args.one:
        table, arm, log = args.one
        print(json.dumps(measure(table, arm, data, args.lines, log)))
        return 0
    data.mkdir(parents=True, exist_ok=True)
    compact = make_log(data, args.lines // 2)  # lines // 2 pairs: run-start, N lines, run-end
    logs = {"compact": compact, "spaced": spaced(compact)}
    arms: list[tuple[str, str, str]] = []  # (table, arm, log)
    for table in ("write", "write failed"):
        arms += [(table, arm, "-") for arm in WRITERS]
    for form, log in logs.items():
        arms += [(f"resume {form}", arm, str(log)) for arm in READERS]
    if orjson is None:
        print("orjson is not installed: its arms are skipped (pip install orjson)")
        arms = [a for a in arms if "orjson" not in a[1]]
    if args.before is None:
        print("no --before: 9baed14's arms are skipped")
        arms = [a for a in arms if not a[1].startswith("before")]
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"{machine()}\n{started:%Y-%m-%d %H:%M} UTC, {args.lines:,} lines, rounds "
          f"{args.rounds}, load average {os.getloadavg()[0]:.2f}; each arm pinned to CPU "
          f"{CLIENT_CPU}; command: python bench/log_bench.py {' '.join(argv)}", flush=True)
    runs: dict[tuple[str, str, str], list[dict[str, float]]] = {a: [] for a in arms}
    for round_no in range(args.rounds):
        turn = round_no * 3 % len(arms)
        for table, arm, log in arms[turn:] + arms[:turn]:
            kind = "resume" if table.startswith("resume") else table
            child = pinned(CLIENT_CPU, [PYTHON, __file__, "--lines", str(args.lines),
                                        "--data", str(data), "--one", kind, arm, log])
            if arm.startswith("before"):
                child += ["--runner", str(Path(args.before).resolve())]
            done = subprocess.run(child, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            runs[(table, arm, log)].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  round {round_no + 1} {table} / {arm}: "
                  f"{runs[(table, arm, log)][-1]['wall_s']:.2f} s", flush=True)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for table in dict.fromkeys(a[0] for a in arms):
        kind = "resume" if table.startswith("resume") else table
        mine = [a for a in arms if a[0] == table]
        yard = next(a for a in mine if a[1] == YARDSTICK[kind])
        print(f"\n{table} ({args.lines:,} lines)\n\n| arm | wall (median) | CPU | ns a line | "
              f"yardstick / arm (median of per-round) |\n|---|---|---|---|---|")
        result[table] = {}
        for a in mine:
            wall = statistics.median(r["wall_s"] for r in runs[a])
            cpu = statistics.median(r["cpu_s"] for r in runs[a])
            ratio = statistics.median(y["wall_s"] / r["wall_s"]
                                      for y, r in zip(runs[yard], runs[a], strict=True))
            print(f"| {a[1]} | {wall:.2f} s | {cpu:.2f} s | {wall / args.lines * 1e9:,.0f} | "
                  f"{ratio:.2f} |")
            result[table][a[1]] = {"wall_s": wall, "cpu_s": cpu, "ratio": ratio}
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    print(json.dumps({"started": started.isoformat(), "lines": args.lines,
                      "rounds": args.rounds, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
