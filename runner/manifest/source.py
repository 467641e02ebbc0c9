"""Opening a manifest: the format from --format or the extension, and stdin or a pipe spooled
to a private temporary file, so that the whole manifest can be checked before anything is
sent and read again to send it."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import stat
import sys
import tempfile
from typing import IO

from runner.errors import UsageError
from runner.manifest.common import FORMATS, STDIN_DISPLAY, ManifestSource, show

_EXTENSIONS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml", ".jsonl": "jsonl"}


def open_manifest(path: str, fmt: str | None) -> ManifestSource:
    """Resolve MANIFEST and --format into a readable source, or raise a one-line UsageError."""
    chosen = _normalise_format(fmt)
    if path == "-":
        if chosen is None:
            raise UsageError("-: reading stdin needs --format csv|yaml|jsonl")
        return ManifestSource(STDIN_DISPLAY, _spool_stdin(chosen), chosen)
    mode = _stat_manifest(path)
    if chosen is None:
        chosen = _EXTENSIONS.get(os.path.splitext(path)[1].lower())
        if chosen is None:
            raise UsageError(
                f"{path}: cannot tell the format from the name (.csv, .yaml, .yml, .jsonl); "
                "pass --format csv|yaml|jsonl"
            )
    if stat.S_ISREG(mode):
        _check_readable(path)
        return ManifestSource(path, path, chosen)
    if not stat.S_ISFIFO(mode):
        # A terminal would wait for typing, /dev/zero would fill the disk while spooled.
        raise UsageError(f"{path}: not a file or a pipe (a device or socket); give the path "
                         "of a manifest file, or - for stdin")
    # A pipe such as <(generate) can be read only once, and a manifest is read twice.
    try:
        with open(path, "rb") as stream:
            return ManifestSource(path, _spool(stream, chosen), chosen)
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _normalise_format(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    chosen = "yaml" if fmt.lower() == "yml" else fmt.lower()
    if chosen not in FORMATS:
        raise UsageError(f"--format {show(fmt)} is not known; use csv, yaml or jsonl")
    return chosen


def _stat_manifest(path: str) -> int:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{path}: is a directory; give the path of a manifest file")
    return mode


def _check_readable(path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: str, exc: OSError) -> UsageError:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return UsageError(f"{path}: no such file; check the path")
    if isinstance(exc, PermissionError):
        return UsageError(f"{path}: cannot be read (permission denied); check its permissions")
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"{path}: is a directory; give the path of a manifest file")
    return UsageError(f"{path}: cannot be read ({exc.strerror or exc}); check the path")


def _spool_stdin(fmt: str) -> str:
    stdin = sys.stdin
    if stdin is None:
        raise UsageError("-: there is no standard input; pipe a manifest in or give its path")
    try:
        buffer = getattr(stdin, "buffer", None)
        if buffer is not None:
            return _spool(buffer, fmt)
        return _spool(_TextAsBytes(stdin), fmt)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"-: cannot read stdin ({exc}); give the manifest's path") from None


class _TextAsBytes:
    """A text stream read as UTF-8 bytes (a stdin replaced by something without .buffer)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size).encode("utf-8", "surrogateescape")


def _spool(stream: IO[bytes] | _TextAsBytes, fmt: str) -> str:
    """Copy a stream to a private temporary file, removed when the interpreter exits."""
    fd, spooled = tempfile.mkstemp(prefix="attach-runner-manifest-", suffix=f".{fmt}")
    atexit.register(_remove_quietly, spooled)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 16)
    return spooled


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
