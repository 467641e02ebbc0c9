"""What the log's last word on a pair can be (`State`), what a run does with a pair given that
word (`Plan`), and what the log keeps of a failed pair (`FailedInfo`). The resume index
(resume.py) holds a State per pair; the operations and `status` read them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class State(enum.IntEnum):
    """The last word of the log on a pair."""

    ATTACHED = 1
    ALREADY_ATTACHED = 2
    FAILED_RETRYABLE = 3
    FAILED_UNCERTAIN = 4  # failed, retryable, and the last try may have been applied
    REFUSED = 5  # failed, retryable: false
    SENT = 6  # "sent" with no "done" after it: uncertain
    BATCH = 7  # in a created batch whose outcome was never written: follow the batch
    DETACHED = 8  # taken out of its owner (detach)
    ALREADY_DETACHED = 9  # not there when detached: nothing to remove


DONE_STATES = frozenset({State.ATTACHED, State.ALREADY_ATTACHED})


DETACHED_STATES = frozenset({int(State.DETACHED), int(State.ALREADY_DETACHED)})
# A write may have landed, or not: check before writing again (SPEC's settle rule).
UNSETTLED_STATES = frozenset({int(State.SENT), int(State.FAILED_UNCERTAIN), int(State.BATCH)})


class Plan(enum.Enum):
    SEND = "send"
    CHECK = "check"  # uncertain: GET the pair before sending it again
    FOLLOW = "follow"  # a created batch holds it
    DONE = "done"  # attached earlier
    UPDATE = "update"  # attached earlier, with other managed attributes than the manifest's
    SKIP_REFUSED = "skip_refused"  # refused earlier; needs --retry-failed
    DUPLICATE = "duplicate"  # met earlier in this manifest
    UPLOAD = "upload"  # a local file whose content is not known uploaded: hash, upload, attach


@dataclass(slots=True)
class FailedInfo:
    owner: str
    file_id: str
    status: int | None
    error: Mapping[str, Any] | None
    retryable: bool
    uncertain: bool
    op: str = "attach"  # the operation of the failed `done` line
