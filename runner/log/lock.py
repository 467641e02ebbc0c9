"""One run per log: an exclusive `flock` on `<log>.lock`, beside the log.

The lock belongs to the open file, so it dies with the process that holds it: a killed run never
blocks the next one, and its stale PID text is simply overwritten. The file is kept on release
(deleting it would race with a run that has just opened it) and holds the holder's PID, so a
second run and `status` can name it. It is never opened through a symbolic link (O_NOFOLLOW): a
link there, dangling or not, is refused, so taking the lock never creates or writes a file
elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from types import TracebackType

from runner.errors import LockedError, LogError
from runner.log.writer import is_link_error

# A `status` probe holds a shared lock for a few microseconds; a run that starts at that very
# moment tries again for this long before it reports the log as taken.
ACQUIRE_RETRIES = 5
RETRY_PAUSE = 0.02  # seconds


def lock_path_for(log_path: str) -> str:
    return f"{log_path}.lock"


def _open_error(path: str, exc: OSError) -> LogError:
    if isinstance(exc, FileNotFoundError):
        what = "its directory does not exist; create it or pass another --log"
    elif isinstance(exc, PermissionError):
        what = "permission denied; fix the directory's permissions or pass another --log"
    elif is_link_error(path, exc):
        what = ("is a symbolic link, which attach-runner does not follow; remove the link "
                "(the lock file is made anew) or pass another --log")
    else:
        what = f"cannot open it ({exc.strerror or exc}); pass another --log"
    return LogError(f"{path}: {what}")


def _read_pid(fd: int) -> int | None:
    """The PID written in the lock file, or None when there is none (yet) or it is garbled."""
    text = os.pread(fd, 32, 0).split(b"\n", 1)[0]
    return int(text) if text.isdigit() and int(text) > 0 else None


class RunLock:
    """One run per log: an exclusive flock on `<log>.lock` beside the log, taken before
    anything is sent. Also a context manager (acquires and releases)."""

    __slots__ = ("log_path", "path", "_fd")

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self.path = lock_path_for(log_path)
        self._fd: int | None = None

    def __repr__(self) -> str:
        state = "held" if self._fd is not None else "free"
        return f"RunLock({self.log_path!r}, {state})"

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write our PID, or raise LockedError naming the holder's PID."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o600)
        except OSError as exc:
            raise _open_error(self.path, exc) from None
        try:
            self._lock(fd)
            _tighten(fd)
            # Write, then cut: a reader never sees an empty file or a wrong number, since it
            # reads only up to the first newline.
            pid = f"{os.getpid()}\n".encode()
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))
        except BaseException:
            os.close(fd)  # closing drops the lock, if we got it
            raise
        self._fd = fd

    def _lock(self, fd: int) -> None:
        for attempt in range(ACQUIRE_RETRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if attempt + 1 < ACQUIRE_RETRIES:
                    time.sleep(RETRY_PAUSE)
        pid = _read_pid(fd)
        if pid is None:  # the holder may have locked but not yet written its PID
            time.sleep(RETRY_PAUSE)
            pid = _read_pid(fd)
        holder = f"PID {pid}" if pid is not None else "PID unknown"
        raise LockedError(
            f"{self.log_path}: another run ({holder}) is using this log; "
            "wait for it to finish, or stop it"
        )

    def release(self) -> None:
        """Unlock and close; the file stays. Releasing twice is harmless."""
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _tighten(fd: int) -> None:
    """Make the lock file 0600 when we own it; someone else's file we leave as it is."""
    mode = os.fstat(fd).st_mode & 0o777
    if mode & 0o077:
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, 0o600)


def holder_pid(log_path: str) -> int | None:
    """The PID of a live run holding the log's lock, or None when no run holds it.

    Probes with a shared lock on a separate open file, released at once, so a running holder
    is never disturbed. None also when the holder's PID cannot be read (it writes it right
    after locking; we look again a few times first). A lock file that is a symbolic link is
    refused (LogError), as a run refuses it.
    """
    path = lock_path_for(log_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        if is_link_error(path, exc):
            raise _open_error(path, exc) from None
        return None  # no lock file: no run ever took this log (or we cannot see it)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            for _ in range(ACQUIRE_RETRIES):
                pid = _read_pid(fd)
                if pid is not None:
                    return pid
                time.sleep(RETRY_PAUSE)
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
