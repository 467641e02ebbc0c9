"""The result log: append-only JSON Lines, one line an event, mode 0600.

Every line is `{"event": ..., "ts": ..., "run": ..., **fields}`, written in that key order as
compact ASCII JSON (non-ASCII text is escaped, so a line is always valid UTF-8, even for a lone
surrogate in a server's message) by ONE `os.write`: nothing is buffered in Python, so a killed
process loses nothing it wrote, and a crash mid-write leaves at most one torn last line.

A torn line is exactly the bytes after the last newline, whether or not they parse: the writer
cuts those bytes off before appending, and the reader warns about them and ignores them. A
newline-terminated line that does not parse is never torn (our newline is the last byte of one
write), so it is a corrupt log wherever it stands. The torn bytes must look like the start of one
of our lines (or be NUL bytes, what some filesystems leave after a power cut); anything else is
not a result log, and the writer refuses to cut it, so a file passed as `--log` by mistake is
never shortened.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import time
from collections.abc import Callable, Generator, Iterator
from itertools import compress
from operator import itemgetter
from types import TracebackType
from typing import IO, Any

from runner.errors import LogError

# Every line the writer makes starts with these bytes (key order is fixed).
LINE_PREFIX = b'{"event":"'

# A torn tail longer than this cannot be a line of ours cut short (the largest, a batch of
# 2,000 file ids, is about 260 KB): stop scanning backwards for a newline.
MAX_TORN_TAIL = 16 * 1024 * 1024

_NOT_OURS = (
    "this file is not an attach-runner log or was edited: move it away or pass another --log"
)

# fdatasync costs milliseconds (3 ms on the bench machine): once a second is the rule (see
# README, "Durability"); the line count only bounds a burst far faster than anything we send.
FSYNC_EVERY = 16384

_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
_encode = _ENCODER.encode


def _field_encoder() -> Callable[[dict[str, object]], str]:
    """`_encode` for a dict of fields, with json's C encoder made once (JSONEncoder.encode
    makes a new one per call, a third of an append's time); the same output."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the plain encoder
        return _encode
    markers: dict[int, object] = {}  # containers being encoded (circular references)
    encoder = make(
        markers, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",", False,
        False, False,
    )

    def encode(fields: dict[str, object]) -> str:
        try:
            return "".join(encoder(fields, 0))
        except BaseException:
            markers.clear()  # a failed encoding leaves its containers marked
            raise

    return encode


_encode_fields = _field_encoder()
_decode = json.JSONDecoder().decode


def _open_error(path: str, exc: OSError) -> LogError:
    """One line for a log or lock file that cannot be opened: where, what, what to do."""
    if isinstance(exc, FileNotFoundError):
        what = "its directory does not exist; create it or pass another --log"
    elif isinstance(exc, IsADirectoryError):
        what = "is a directory; pass a file path to --log"
    elif isinstance(exc, PermissionError):
        what = "permission denied; fix its permissions or pass another --log"
    else:
        what = f"cannot open it ({exc.strerror or exc}); pass another --log"
    return LogError(f"{path}: {what}")


def _looks_torn(tail: bytes) -> bool:
    """Whether bytes after the last newline can be one of our writes cut short."""
    head = tail[: len(LINE_PREFIX)]
    return head == LINE_PREFIX[: len(head)] or not tail.strip(b"\0")


class ResultLog:
    """Append-only JSON Lines result log of one run.

    `open()` creates the file (0600) or tightens an existing one to 0600, and cuts off a torn
    last line. `append()` writes one line with one `os.write`; lines are fsynced in groups:
    after `fsync_every` lines or when `fsync_interval` seconds have passed since the last fsync
    (checked on append), and always on `close()`. Also a context manager (opens and closes).
    Errors are `LogError`, one line naming the file.
    """

    __slots__ = (
        "path",
        "run_id",
        "_fd",
        "_fsync_every",
        "_fsync_interval",
        "_pending",  # lines written since the last fsync
        "_synced_at",  # time.monotonic() of the last fsync
        "_ts_second",  # the whole UTC second that _ts_prefix spells
        "_ts_prefix",  # "2026-11-25T11:02:03." for _ts_second: formatted once a second
        "_heads",  # event -> '{"event":"sent","ts":"', encoded once per event name
        "_run_part",  # '","run":"3f2a..."', encoded once
    )

    def __init__(
        self, path: str, run_id: str, *, fsync_every: int = FSYNC_EVERY,
        fsync_interval: float = 1.0,
    ) -> None:
        self.path = path
        self.run_id = run_id
        self._fd: int | None = None
        self._fsync_every = max(1, fsync_every)
        self._fsync_interval = fsync_interval
        self._pending = 0
        self._synced_at = 0.0
        self._ts_second = -1
        self._ts_prefix = ""
        self._heads: dict[str, str] = {}
        self._run_part = '","run":' + _encode(run_id)

    def __repr__(self) -> str:
        state = "open" if self._fd is not None else "closed"
        return f"ResultLog({self.path!r}, run_id={self.run_id!r}, {state})"

    def __enter__(self) -> ResultLog:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open for appending: create 0600 or tighten to 0600, then cut off a torn last line."""
        if self._fd is not None:
            return
        # O_NONBLOCK: a FIFO given as --log must fail the regular-file check, not hang here.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise _open_error(self.path, exc) from None
        try:
            self._prepare(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._pending = 0
        self._synced_at = time.monotonic()

    def _prepare(self, fd: int) -> None:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LogError(f"{self.path}: not a regular file; pass a file path to --log")
        os.set_blocking(fd, True)
        # The log names the user's assistants, stores and files: keep it private.
        if stat.S_IMODE(info.st_mode) & 0o077:
            try:
                os.fchmod(fd, 0o600)
            except OSError as exc:
                raise LogError(
                    f"{self.path}: readable by others and cannot be made private "
                    f"({exc.strerror}); run chmod 600 on it or pass another --log"
                ) from None
        self._cut_torn_tail(fd, info.st_size)

    def _cut_torn_tail(self, fd: int, size: int) -> None:
        """Truncate the bytes after the last newline, so the next line starts clean."""
        tail = b""
        end = size
        while end > 0:
            start = max(0, end - 65536)
            chunk = os.pread(fd, end - start, start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                tail = chunk[newline + 1 :] + tail
                break
            tail = chunk + tail
            end = start
            if len(tail) > MAX_TORN_TAIL:
                break
        if not tail:
            return
        if len(tail) > MAX_TORN_TAIL or not _looks_torn(tail):
            line = _count_lines(fd, size - len(tail)) + 1
            raise _bad_line(self.path, line, "an incomplete line that is not an event")
        try:
            os.ftruncate(fd, size - len(tail))
        except OSError as exc:
            raise LogError(
                f"{self.path}: cannot cut off its incomplete last line ({exc.strerror}); "
                "fix its permissions or pass another --log"
            ) from None

    def append(self, event: str, **fields: object) -> None:
        """Write one event as one line: event, ts, run, then `fields` in the order given."""
        if "ts" in fields or "run" in fields:
            raise TypeError("'ts' and 'run' are set by the log, not by the caller")
        # The same bytes as encoding {"event", "ts", "run", **fields} whole, without building
        # that dict: the fields are encoded as one object and spliced in after "run".
        self.append_encoded(event, _encode_fields(fields)[1:-1])

    def append_encoded(self, event: str, members: str) -> None:
        """`append` with the fields already encoded as JSON members (`"k":v,...`, no braces),
        for the per-pair lines of the hot path: IDs obey the ID rule, so they are valid JSON
        strings as they stand, and a line costs no encoder call."""
        fd = self._fd
        if fd is None:
            raise RuntimeError(f"{self!r}: append() before open()")
        ns = time.time_ns()
        second, rest = divmod(ns, 1_000_000_000)
        if second != self._ts_second:
            self._ts_second = second
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        head = self._heads.get(event)
        if head is None:
            head = self._heads[event] = '{"event":' + _encode(event) + ',"ts":"'
        rest_ms = rest // 1_000_000
        line = (f"{head}{self._ts_prefix}{rest_ms:03d}Z{self._run_part}"
                f"{',' + members if members else ''}}}\n")
        data = line.encode()
        try:
            written = os.write(fd, data)
            while written < len(data):  # only on a full disk or an odd filesystem
                written += os.write(fd, data[written:])
        except OSError as exc:
            raise LogError(
                f"{self.path}: cannot write ({exc.strerror}); free some space or pass another "
                "--log, then run again (the run resumes from what was written)"
            ) from None
        self._pending += 1
        if (
            self._pending >= self._fsync_every
            or time.monotonic() - self._synced_at >= self._fsync_interval
        ):
            self.sync()

    def sync(self) -> None:
        """Flush the lines written so far to the disk now."""
        fd = self._fd
        if fd is None:
            return
        try:
            _fdatasync(fd)
        except OSError as exc:
            raise LogError(f"{self.path}: cannot sync to disk ({exc.strerror})") from None
        self._pending = 0
        self._synced_at = time.monotonic()

    def close(self) -> None:
        """Sync and close; closing twice is harmless."""
        fd = self._fd
        if fd is None:
            return
        try:
            if self._pending:
                self.sync()
        finally:
            self._fd = None
            os.close(fd)


# fdatasync syncs the data and the size, all a reader needs; macOS lacks it.
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


def _count_lines(fd: int, end: int) -> int:
    """Newlines in the first `end` bytes of `fd` (for a message's line number)."""
    count = 0
    offset = 0
    while offset < end:
        chunk = os.pread(fd, min(1 << 20, end - offset), offset)
        if not chunk:
            break
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count


def check_log(path: str) -> None:
    """Refuse, before the lock file is made beside it, a `--log` that cannot be ours: one in a
    missing directory, a directory or other non-file, or a file whose first line is not an
    event (notes.txt given by mistake). The whole log is read later, under the lock."""
    if not os.path.isdir(os.path.dirname(path) or "."):
        raise _open_error(path, FileNotFoundError())
    for _ in read_log(path, warn=lambda message: None):
        break


def read_log(path: str, *, warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """Yield every event of the log at `path`, in order.

    A missing or empty file yields nothing. A torn last line (bytes after the last newline,
    even a complete JSON object: the writer cuts those) is reported through `warn` and ignored.
    Any other line that is not a JSON object with string "event" and "run" raises `LogError`
    naming the file and line.
    """
    file = _open_log(path)
    if file is None:
        return
    with file:
        for number, line in enumerate(file, 1):
            if line[-1:] != b"\n":
                _torn_tail(path, number, line, warn)
                return
            yield _event(path, number, line)


# One line the writer makes for every pair, in its fixed key order, as a regular expression
# that only ever matches valid JSON (IDs, ASCII strings without escapes, numbers, literals):
# "sent", and "done" for a pair in place (attached, already_attached or updated, no error). A
# log is nearly all such lines; scan_log hands them over in bulk, unparsed by json. The same
# lines as `json.dumps` writes them with its default separators (", " and ": ": a log rewritten
# by a script) have a pattern of their own: one pattern admitting both costs a third more on
# our own lines. Every other spacing is still read, by json.
_TEXT = rb'[\x20\x21\x23-\x5b\x5d-\x7e]*'  # a JSON string's inside: printable ASCII, no " or \\
_ID = rb"([A-Za-z0-9_-]{1,128})"
_COUNT = rb"(?:0|[1-9][0-9]{0,8})"  # JSON has no leading zeros
SCAN_CHUNK = 1 << 18  # bytes read at a time by scan_log
_SPACED = b'{"event": '  # how every line json.dumps writes by default starts


def _fast_pattern(owner_column: str, *, spaced: bool = False) -> re.Pattern[bytes]:
    """A whole line: "sent", or "done" (group 1) in place; else any other line (group 6, with
    its newline).
    `op` is attach or update (or absent: an older log's line, which means attach). With
    `spaced`, the line as json.dumps writes it by default: ", " between members, ": " in them."""
    sep, colon = (b", ", b": ") if spaced else (b",", b":")

    def member(name: bytes, value: bytes) -> bytes:
        return b'"' + name + b'"' + colon + value

    owner = re.escape(owner_column.encode())
    head = sep.join([
        b"\\{" + member(b"event", b'"(?:sent|(done))"'),
        member(b"ts", b'"' + _TEXT + b'"'),
        member(b"run", b'"' + _TEXT + b'"'),
        b"(?:" + member(b"op", b'"(?:attach|update)"') + sep + b")?"
        + member(owner, b'"' + _ID + b'"'),
        member(b"file_id", b'"' + _ID + b'"'),
    ])
    # Only when group 1 (done) matched: the outcome fields, in the writer's order, and the
    # digest of the managed attributes the pair was left with (group 5), if any.
    done = b"(?(1)" + sep + sep.join([
        member(b"outcome", b'"(attached|already_attached|updated)"'),
        member(b"status", b"(?:[1-5][0-9][0-9]|null)"),
        member(b"attempts", _COUNT),
        member(b"error", b"null"),
        member(b"retryable", b"(?:true|false)"),
        member(b"uncertain", b"(?:true|false)"),
    ]) + b"(?:" + sep + member(b"file_status", b'"[a-z_]{1,32}"') + b")?"
    done += b"(?:" + sep + member(b"attributes_digest", b'"([0-9a-f]{16})"') + b")?)"
    # Any other line, even an empty one, is group 6 with its newline: one row a line, always.
    return re.compile(b"^" + head + done + rb"\}$|^(.*\n)", re.MULTILINE)


_PATTERNS: dict[str, tuple[re.Pattern[bytes], re.Pattern[bytes]]] = {}

# "done" or b"" (sent), owner, file_id, outcome or b"" (sent), attributes digest or b"", b""
# (the other line's bytes with its newline; empty for a fast row). All as read: ASCII bytes.
FastRow = tuple[bytes, bytes, bytes, bytes, bytes, bytes]
_OTHER_OF = itemgetter(5)


def scan_log(path: str, owner_column: str, *,
             warn: Callable[[str], None]) -> Iterator[list[FastRow] | dict[str, Any]]:
    """`read_log` for the resume index, fast: the same events with the same checks, in order,
    but runs of the common lines ("sent", and "done" in place with no error, for
    `owner_column`, compact or spaced as json.dumps spaces them) come as lists of FastRow
    tuples of bytes matched in bulk by one regular expression instead of parsed line by
    line; every other event comes as read_log's dict."""
    patterns = _PATTERNS.get(owner_column)
    if patterns is None:
        patterns = _PATTERNS[owner_column] = (
            _fast_pattern(owner_column), _fast_pattern(owner_column, spaced=True))
    file = _open_log(path)
    if file is None:
        return
    with file:
        fd = file.fileno()
        before = 0  # lines before the chunk
        offset = 0  # of the chunk in the file
        size = SCAN_CHUNK
        while block := os.pread(fd, size, offset):
            # Whole lines only, matched in place (endpos: no copy); the next read starts at
            # the first byte after them.
            cut = block.rfind(b"\n") + 1
            if not cut:
                if len(block) < size:  # no newline before the end: the torn last line
                    _torn_tail(path, before + 1, block, warn)
                    return
                size *= 2  # a line longer than a chunk
                continue
            # The chunk's first line says which form its lines are in (a line in the other
            # form is taken as any other line: by json).
            pattern = patterns[block.startswith(_SPACED)]
            before += yield from _scan_chunk(path, pattern.findall(block, 0, cut), before)
            offset += cut
            size = SCAN_CHUNK


def _scan_chunk(path: str, rows: list[FastRow], before: int,
                ) -> Generator[list[FastRow] | dict[str, Any], None, int]:
    """The parts of a chunk's rows (one a line), in order; returns how many lines it held."""
    start = 0
    for at in compress(range(len(rows)), map(_OTHER_OF, rows)):  # the other lines
        if at > start:
            yield rows[start:at]
        yield _event(path, before + at + 1, rows[at][5])
        start = at + 1
    if start < len(rows):
        yield rows[start:] if start else rows
    return len(rows)


_TS = re.compile(rb'"ts"\s*:\s*"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3}|\.\d{6})?)Z"')
_RUN_END = re.compile(rb'^\{\s*"event"\s*:\s*"run-end"')


def last_timestamp(path: str) -> tuple[float, bool] | None:
    """The `ts` of the log's last complete line, as a Unix time, and whether that line is a
    `run-end` (the run ended normally: every request it sent had been answered or given up
    on by then); None when there is none. The settle rule needs to know when an earlier run
    may have sent its last write: no later than this."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - 65536))
            tail = file.read()
    except OSError:
        return None
    for line in reversed(tail.split(b"\n")[:-1]):
        found = _TS.search(line)
        if found is not None:
            when = datetime.datetime.fromisoformat(found.group(1).decode())
            ended = _RUN_END.match(line) is not None
            return when.replace(tzinfo=datetime.timezone.utc).timestamp(), ended
    return None


def _open_log(path: str) -> IO[bytes] | None:
    """The log opened for reading; None when there is none (nothing to read)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _open_error(path, exc) from None
    if stat.S_ISDIR(info.st_mode):
        raise _open_error(path, IsADirectoryError())
    if not stat.S_ISREG(info.st_mode):
        raise LogError(f"{path}: not a regular file; pass a file path to --log")
    try:
        return open(path, "rb")  # noqa: SIM115 (the caller holds it in a `with`)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _open_error(path, exc) from None


def _torn_tail(path: str, number: int, line: bytes, warn: Callable[[str], None]) -> None:
    """The bytes after the last newline: warn if they can be a line of ours cut short."""
    if _looks_torn(line):
        warn(
            f"{path}:{number}: the last line is incomplete (a run was cut off "
            "while writing); it is ignored and will be cut off by the next run"
        )
        return
    raise _bad_line(path, number, "an incomplete line that is not an event")


def _event(path: str, number: int, line: bytes) -> dict[str, Any]:
    """One complete line as an event, or LogError naming the file and line."""
    try:
        event = _decode(line.decode())
    except UnicodeDecodeError:
        raise _bad_line(path, number, "not UTF-8") from None
    except ValueError:
        raise _bad_line(path, number, "not JSON") from None
    if type(event) is not dict:
        raise _bad_line(path, number, "not a JSON object")
    if type(event.get("event")) is not str or type(event.get("run")) is not str:
        raise _bad_line(path, number, 'no "event" and "run" strings')
    return event


def _bad_line(path: str, number: int, reason: str) -> LogError:
    return LogError(f"{path}:{number}: not a valid result log line ({reason}); {_NOT_OURS}")
