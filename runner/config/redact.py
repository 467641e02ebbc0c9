"""Keeping the API key out of messages: spotting key-shaped text and secret-asking names.

Every other settings module quotes what the user gave through `quote_value`, so a key pasted
in the wrong place is named, never shown.
"""

from __future__ import annotations

import json
import os
import re
from typing import Final

KEY_STANDIN: Final = "(a value that looks like an API key)"

_KEY_NOT_PATH = re.compile(r"sk-[A-Za-z0-9_-]{16,}")  # a key has no dot or slash; a path may
# "sk-...", not "task-..."; a key holds no colon (so `--api-key=sk-x: no such file` keeps its)
_KEY_SHAPED = re.compile(r"(?<![A-Za-z0-9_-])sk-[^\s'\":]*")


def looks_like_key(text: str) -> bool:
    return text.strip().startswith("sk-")


def is_key_not_path(text: str) -> bool:
    """A value given as a path that is surely a key: it must not become a file's name."""
    return _KEY_NOT_PATH.fullmatch(text.strip()) is not None and not os.path.exists(text)


def quote_value(text: str, limit: int = 60) -> str:
    """A value quoted for a message: one line, cut short, and never something key-shaped."""
    if looks_like_key(text):
        return KEY_STANDIN
    cut = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(cut)


def hide_keys(text: str) -> str:
    """`text` with every key-shaped word ("sk-...") replaced, for messages that quote input."""
    return _KEY_SHAPED.sub(KEY_STANDIN, text)


def is_secret_name(name: str) -> bool:
    """Whether a config key or flag name asks for a secret (api_key, token, ...)."""
    normal = name.strip().lower().replace("-", "_")
    if normal in ("api_key_env", "api_key_file"):
        return False
    exact = {"key", "token", "password", "bearer", "authorization", "apikey"}
    return normal in exact or any(
        part in normal for part in ("api_key", "apikey", "secret", "token", "password"))
