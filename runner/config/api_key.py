"""The API key: read from the environment variable or a 0600 key file, never shown.

The key is not a setting. `load_api_key` reads it from where the settings name into an
`ApiKey`, whose repr and str show at most its last four characters and which refuses to be
pickled. Every message here names the key's source, never the key.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Mapping
from typing import Any, Final

from runner.config.redact import looks_like_key
from runner.config.resolve import Settings
from runner.errors import UsageError

MAX_KEY_FILE_BYTES: Final = 64 << 10


class ApiKey:
    """The secret. repr and str never show it; only `last4` may be shown."""

    __slots__ = ("_value", "_source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self._source = source

    def reveal(self) -> str:
        """The key itself: for the Authorization header and nothing else."""
        return self._value

    @property
    def last4(self) -> str:
        # A short key (the sandbox's) would be too much revealed by four characters.
        return self._value[-4:] if len(self._value) >= 20 else "****"

    @property
    def source(self) -> str:
        """Where the key came from, for messages: "the OPENAI_API_KEY environment variable"."""
        return self._source

    def __repr__(self) -> str:
        return f"ApiKey(last4={self.last4!r}, source={self._source!r})"

    def __str__(self) -> str:
        return f"the API key ...{self.last4} from {self._source}"

    def __reduce__(self) -> Any:
        raise TypeError("an ApiKey is not to be pickled")


def _checked_key(value: str, where: str, fix: str) -> str:
    """Refuse a key that would break the header; the message never shows the key."""
    if any(c.isspace() for c in value):
        raise UsageError(f"{where}: the key has a space or line break inside; {fix}")
    if not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise UsageError(f"{where}: the key holds non-ASCII or control characters, which cannot "
                         f"go in an HTTP header; {fix}")
    return value


def _key_from_file(path: str, named_by: str) -> ApiKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if looks_like_key(path):
            raise UsageError(f"{named_by}: the value looks like an API key, not a file path; put "
                             "the key in a file (chmod 600) and give its path") from None
        raise UsageError(f"{path}: no such key file; check {named_by}") from None
    except PermissionError:
        raise UsageError(f"{path}: cannot read the key file (permission denied); "
                         "check its owner and permissions") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the key file ({exc.strerror}); "
                         f"check {named_by}") from None
    try:
        # Checked on the open descriptor, so the file cannot be swapped between check and read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path}: not a regular file; give {named_by} a file holding the key")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            how = "readable by others" if mode & 0o044 else "open to others"
            raise UsageError(f"{path}: the key file is {how} (mode {mode:04o}); "
                             f"run chmod 600 {shlex.quote(path)}")
        data = b""
        while len(data) <= MAX_KEY_FILE_BYTES:
            chunk = os.read(fd, MAX_KEY_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    fix = "put only the key in the file"
    if len(data) > MAX_KEY_FILE_BYTES:
        raise UsageError(f"{path}: too large to be a key file; {fix}")
    try:
        value = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the key file is not text; {fix}") from None
    if not value:
        raise UsageError(f"{path}: the key file is empty; put your API key in it")
    return ApiKey(_checked_key(value, path, fix), f"the key file {path}")


def load_api_key(settings: Settings, environ: Mapping[str, str]) -> ApiKey:
    """The key for `run`: from `settings.api_key_file` when set, else the variable named by
    `settings.api_key_env`. A missing, empty or malformed key is a UsageError that never
    shows it; a key file open to group or others is refused."""
    if settings.api_key_file is not None:
        from_config = settings.sources.get("api_key_file") == "config"
        named_by = f"api_key_file in {settings.config}" if from_config else "--api-key-file"
        return _key_from_file(settings.api_key_file, named_by)
    name = settings.api_key_env
    value = environ.get(name, "").strip()
    if not value:
        raise UsageError(f"{name}: not set; export your API key in it "
                         "(or pass --api-key-env NAME or --api-key-file FILE)")
    fix = f"set {name} to the key alone"
    return ApiKey(_checked_key(value, name, fix), f"the {name} environment variable")
