"""Which 429s belong to one vector store: SPEC, "Behaviour under trouble".

OpenAI limits every write to a vector store (add, batch, update, detach) to 300 a minute, apart
from the organisation's own limit. A 429 from the store's limit says nothing about the run's
rate: fed to the run's limiter it would pause every worker and teach the whole run the store's
300 a minute (a run over 6 stores crawled at one store's pace). So a 429 to a write is the
store's when its message names the store, or when its `x-ratelimit-limit-requests` is at or
under `--store-rpm` (a limit that low cannot be the run's own for a run that paces stores at
it); it then pauses and slows that store alone and its headers feed that store's pacing only.
Any other 429 is the run's.
"""

from __future__ import annotations

import re

# An ID is [A-Za-z0-9_-]+ (manifest rule): the store is named when no ID character borders it.
_ID_CHAR = rb"[A-Za-z0-9_-]"


def binds_store(limit: int | None, body: bytes, store: str, store_rpm: float) -> bool:
    """Whether a 429 to a write to `store` comes from that store's own limit, from the
    answer's `x-ratelimit-limit-requests` (`limit`) and its raw body."""
    if limit is not None and limit <= store_rpm:
        return True
    name = re.escape(store.encode())
    return re.search(rb"(?<!" + _ID_CHAR + rb")" + name + rb"(?!" + _ID_CHAR + rb")",
                     body) is not None
