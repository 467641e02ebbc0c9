"""The result log: append-only JSON Lines, one line an event, mode 0600.

Each line is written by ONE `os.write`: nothing is buffered in Python, so a killed process
loses nothing it wrote, and a crash mid-write leaves at most one torn last line. How a line is
spelled is `runner.log.lines`; callers hand values to the `append_*` methods, never JSON.

A torn line is exactly the bytes after the last newline, whether or not they parse: the writer
cuts those bytes off before appending, and the reader warns about them and ignores them. A
newline-terminated line that does not parse is never torn (our newline is the last byte of one
write), so it is a corrupt log wherever it stands. The torn bytes must look like the start of a
line (ours, or one json.dumps spaced; or NUL bytes, what some filesystems leave after a power
cut); anything else is not a result log, and the writer refuses to cut it, so a file passed as
`--log` by mistake is never shortened.

The log is never opened through a symbolic link (O_NOFOLLOW): a link given as `--log`,
dangling or not, is refused, so a run never creates or appends to a file elsewhere.

This module writes the log (`ResultLog`) and holds what the reader shares with the writer (the
messages for a file that cannot be opened or is not ours); reading a log, the exact reader and
the fast scan used by resume, is `runner.log.reader`.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

from runner.errors import LogError
from runner.items import Item, LocalFile
from runner.log.lines import (
    LineSpeller,
    PairEnd,
    batch_members,
    done_members,
    fields_members,
    looks_torn,
    sent_members,
)

# A torn tail longer than this cannot be a line of ours cut short (the largest, a batch of
# 2,000 file ids, is about 260 KB): stop scanning backwards for a newline.
MAX_TORN_TAIL = 16 * 1024 * 1024

_NOT_OURS = (
    "this file is not an attach-runner log or was edited: move it away or pass another --log"
)

# fdatasync costs milliseconds (3 ms on the bench machine): once a second is the rule (see
# docs/log.md, "Durability"); the line count only bounds a burst far faster than anything we send.
FSYNC_EVERY = 16384

# Opening the final component of a path through a symbolic link fails with ELOOP (EMLINK on
# FreeBSD) under O_NOFOLLOW.
_LINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK})


def is_link_error(path: str, exc: OSError) -> bool:
    """Whether `exc`, from opening `path` with O_NOFOLLOW, says that `path` is a link."""
    return exc.errno in _LINK_ERRNOS and os.path.islink(path)


def _open_error(path: str, exc: OSError) -> LogError:
    """One line for a log file that cannot be opened: where, what, what to do."""
    if isinstance(exc, FileNotFoundError):
        what = "its directory does not exist; create it or pass another --log"
    elif isinstance(exc, IsADirectoryError):
        what = "is a directory; pass a file path to --log"
    elif isinstance(exc, PermissionError):
        what = "permission denied; fix its permissions or pass another --log"
    elif is_link_error(path, exc):
        what = ("is a symbolic link, which attach-runner does not follow; pass the path of "
                "the file itself as --log, or remove the link")
    else:
        what = f"cannot open it ({exc.strerror or exc}); pass another --log"
    return LogError(f"{path}: {what}")


def _bad_line(path: str, number: int, reason: str) -> LogError:
    return LogError(f"{path}:{number}: not a valid result log line ({reason}); {_NOT_OURS}")


class ResultLog:
    """Append-only JSON Lines result log of one run.

    `open()` creates the file (0600) or tightens an existing one to 0600, and cuts off a torn
    last line. Each `append_*` writes one line with one `os.write`; lines are fsynced in
    groups: after `fsync_every` lines or when `fsync_interval` seconds have passed since the
    last fsync (checked on append), and always on `close()`. Also a context manager (opens and
    closes). Errors are `LogError`, one line naming the file.

    The lines (SPEC, "The result log"): `append_run_start`, `append_sent`, `append_done`,
    `append_batch_sent`, `append_batch_created`, `append_run_end`; `append` writes any event
    with any fields.
    """

    __slots__ = (
        "path",
        "run_id",
        "_fd",
        "_fsync_every",
        "_fsync_interval",
        "_pending",  # lines written since the last fsync
        "_synced_at",  # time.monotonic() of the last fsync
        "_speller",  # spells this run's lines
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
        self._speller = LineSpeller(run_id)

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
        # O_NOFOLLOW: a link, dangling or not, is refused, never followed (nor its target made).
        flags = (os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
                 | os.O_NOFOLLOW)
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
        if len(tail) > MAX_TORN_TAIL or not looks_torn(tail):
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
        self._write(event, fields_members(fields))

    def append_run_start(self, *, manifest: str, target: str, items: int,
                         op: str | None = None) -> None:
        """`op`: the command, when it is not a plain run's (sync writes "sync")."""
        fields: dict[str, object] = {"manifest": manifest, "target": target, "items": items}
        if op is not None:
            fields["op"] = op
        self._write("run-start", fields_members(fields))

    def append_run_end(self, *, counts: Mapping[str, object], interrupted: bool,
                       exit_code: int) -> None:
        self._write("run-end", fields_members(
            {"counts": counts, "interrupted": interrupted, "exit": exit_code}))

    def append_sent(self, owner_column: str, item: Item, op: str) -> None:
        """Before an item's first request of a run: `op` is attach, update or detach."""
        self._write("sent", sent_members(owner_column, item, op))

    def append_done(self, owner_column: str, item: Item, end: PairEnd,
                    digest: str | None = None) -> None:
        """An item's end. The digest of the managed attributes it was left with is made from
        the item (when its outcome leaves it in place), or given as `digest` (16 hex digits)
        for an item that does not carry its attributes."""
        self._write("done", done_members(owner_column, item, end, digest))

    def append_upload_sent(self, local: LocalFile, filename: str) -> None:
        """Before a `POST /files` of a local file's content: a crash from now on leaves the
        upload uncertain (settled by listing the files, never sent again blind)."""
        self.append("upload-sent", path=local.path, sha256=local.sha256, bytes=local.size,
                    filename=filename)

    def append_uploaded(self, local: LocalFile, file_id: str, *, adopted: bool = False) -> None:
        """The content's file object, made by this log's upload (or found by listing and
        adopted: `adopted`): ours, reused for this content from now on."""
        fields: dict[str, object] = dict(
            path=local.path, sha256=local.sha256, bytes=local.size, mtime_ns=local.mtime_ns,
            hashed_ns=local.hashed_ns, file_id=file_id)
        if adopted:
            fields["adopted"] = True
        self.append("uploaded", **fields)

    def append_upload_failed(self, local: LocalFile) -> None:
        """The upload surely made no file object (refused, or never fully sent)."""
        self.append("upload-failed", path=local.path, sha256=local.sha256, bytes=local.size)

    def append_file_delete_sent(self, file_id: str) -> None:
        self.append("file-delete-sent", file_id=file_id)

    def append_file_deleted(self, file_id: str, status: int | None, *, uncertain: bool) -> None:
        self.append("file-deleted", file_id=file_id, status=status, uncertain=uncertain)

    def append_batch_sent(self, owner_column: str, store: str, file_ids: Sequence[str],
                          op: str = "attach") -> None:
        """Before a `file_batches` POST for `file_ids` in `store`."""
        self._write("batch-sent", batch_members(owner_column, store, file_ids, op))

    def append_batch_created(self, owner_column: str, store: str, batch_id: str,
                             file_ids: Sequence[str], op: str = "attach") -> None:
        """After the POST, with the batch's id: a crash from now on follows this batch."""
        self._write("batch-created", batch_members(owner_column, store, file_ids, op, batch_id))

    def _write(self, event: str, members: str) -> None:
        """One line of `event` with its fields already spelled (`members`, no braces)."""
        fd = self._fd
        if fd is None:
            raise RuntimeError(f"{self!r}: append() before open()")
        data = self._speller.line(event, members, time.time_ns())
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
