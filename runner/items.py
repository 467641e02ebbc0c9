"""Items: one (owner, file_id) pair of a manifest, and the ID rule they obey."""

from __future__ import annotations

import re
from typing import NamedTuple

# IDs go into a URL path: nothing that could change the path or need escaping.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
ID_RULE = "IDs may hold only A-Z a-z 0-9 _ - (1 to 128 characters)"


class Item(NamedTuple):
    """One pair to attach. `owner` is the assistant or vector store id; `line` is where the
    pair stands in the manifest (for messages), 0 when unknown."""

    owner: str
    file_id: str
    line: int = 0


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None
