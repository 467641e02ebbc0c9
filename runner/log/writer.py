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

This module writes the log (`ResultLog`) and holds what the reader shares with the writer (the
torn-line test, the messages for a file that cannot be opened or is not ours); reading a log,
the exact reader and the fast scan used by resume, is `runner.log.reader`.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from types import TracebackType

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
# docs/log.md, "Durability"); the line count only bounds a burst far faster than anything we send.
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


def _bad_line(path: str, number: int, reason: str) -> LogError:
    return LogError(f"{path}:{number}: not a valid result log line ({reason}); {_NOT_OURS}")


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
