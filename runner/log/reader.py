"""Reading a result log: the exact reader and the fast scan used by resume.

`read_log` yields every event of a log, each line parsed by json and checked; `check_log` refuses
a `--log` that cannot be ours before the lock file is made beside it. `scan_log` reads the same
events with the same checks for the resume index, but hands over the common lines ("sent", and
"done" in place) in bulk, matched by one regular expression instead of parsed. `last_timestamp`
reads the time of the last line, for the settle rule. The format, and which lines are torn or
corrupt, is described in `runner.log.writer`, which writes it; how a line is spelled, and the
patterns that recognise the common ones, in `runner.log.lines`. A log is never read through a
symbolic link (O_NOFOLLOW), as it is never written through one.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
from collections.abc import Callable, Generator, Iterator
from itertools import compress
from operator import itemgetter
from typing import IO, Any

from runner.errors import LogError
from runner.log.lines import SPACED_PREFIX, fast_pattern, line_time, looks_torn
from runner.log.writer import _bad_line, _open_error

_decode = json.JSONDecoder().decode


def check_log(path: str) -> None:
    """Refuse, before the lock file is made beside it, a `--log` that cannot be ours: one in a
    missing directory, a directory or other non-file, or a file whose first line is not an
    event (notes.txt given by mistake). The whole log is read later, under the lock."""
    if not os.path.isdir(os.path.dirname(path) or "."):
        raise _open_error(path, FileNotFoundError())
    for _ in read_log(path, warn=lambda message: None):
        break


def log_identity(path: str) -> tuple[int, int, int] | None:
    """What tells the log changed between two reads (size, mtime_ns, inode); None: none yet."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


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


SCAN_CHUNK = 1 << 18  # bytes read at a time by scan_log
_SPACED = SPACED_PREFIX[:-1]  # how every line json.dumps writes by default starts


_PATTERNS: dict[str, tuple[re.Pattern[bytes], re.Pattern[bytes]]] = {}

# "done" or b"" (sent), owner, file_id, outcome or b"" (sent), attributes digest or b"", their
# fingerprint as written or b"", b"" (the other line's bytes with its newline; empty for a fast
# row). All as read: ASCII bytes.
FastRow = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes]
_OTHER_OF = itemgetter(6)


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
            fast_pattern(owner_column), fast_pattern(owner_column, spaced=True))
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
        yield _event(path, before + at + 1, rows[at][6])
        start = at + 1
    if start < len(rows):
        yield rows[start:] if start else rows
    return len(rows)


def last_timestamp(path: str) -> tuple[float, bool] | None:
    """The `ts` of the log's last complete line, as a Unix time, and whether that line is a
    `run-end` (the run ended normally: every request it sent had been answered or given up
    on by then); None when there is none. The settle rule needs to know when an earlier run
    may have sent its last write: no later than this."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        size = os.lseek(fd, 0, os.SEEK_END)
        start = max(0, size - 65536)
        tail = os.pread(fd, size - start, start)
    except OSError:
        return None
    finally:
        os.close(fd)
    for line in reversed(tail.split(b"\n")[:-1]):
        found = line_time(line)
        if found is not None:
            stamp, ended = found
            when = datetime.datetime.fromisoformat(stamp)
            return when.replace(tzinfo=datetime.timezone.utc).timestamp(), ended
    return None


def _open_log(path: str) -> IO[bytes] | None:
    """The log opened for reading; None when there is none (nothing to read). Opened without
    following a link, and checked on the open file: what is checked is what is read."""
    try:
        # O_NONBLOCK: a FIFO given as --log must fail the regular-file check, not hang here.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _open_error(path, exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise _open_error(path, IsADirectoryError())
        if not stat.S_ISREG(mode):
            raise LogError(f"{path}: not a regular file; pass a file path to --log")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _torn_tail(path: str, number: int, line: bytes, warn: Callable[[str], None]) -> None:
    """The bytes after the last newline: warn if they can be a line of ours cut short."""
    if looks_torn(line):
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
