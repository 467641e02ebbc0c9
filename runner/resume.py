"""What the log says of each pair, and so what this run must do with it (send, check, skip).

Memory is the point here: a million pairs must fit in a small machine. Each pair the log knows is
kept as a 12-byte digest key and a small-int state; only failed pairs keep their details (for
`status` and `failed`), and only unfinished batches keep their file lists.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.items import Item


def pair_key(owner: str, file_id: str) -> bytes:
    """A compact, collision-safe key for a pair (96-bit digest: ~1e-17 odds at a million pairs)."""
    return hashlib.blake2b(f"{owner}\x00{file_id}".encode(), digest_size=12).digest()


class State(enum.IntEnum):
    """The last word of the log on a pair."""

    ATTACHED = 1
    ALREADY_ATTACHED = 2
    FAILED_RETRYABLE = 3
    FAILED_UNCERTAIN = 4  # failed, retryable, and the last try may have been applied
    REFUSED = 5  # failed, retryable: false
    SENT = 6  # "sent" with no "done" after it: uncertain
    BATCH = 7  # in a created batch whose outcome was never written: follow the batch


DONE_STATES = frozenset({State.ATTACHED, State.ALREADY_ATTACHED})

# Marks a key as met in this run's manifest (for de-duplication and "not in the manifest").
SEEN = 64


class Plan(enum.Enum):
    SEND = "send"
    CHECK = "check"  # uncertain: GET the pair before sending it again
    FOLLOW = "follow"  # a created batch holds it
    DONE = "done"  # attached earlier
    SKIP_REFUSED = "skip_refused"  # refused earlier; needs --retry-failed
    DUPLICATE = "duplicate"  # met earlier in this manifest


@dataclass(slots=True)
class FailedInfo:
    owner: str
    file_id: str
    status: int | None
    error: Mapping[str, Any] | None
    retryable: bool
    uncertain: bool


@dataclass
class ResumeIndex:
    owner_column: str
    states: dict[bytes, int] = field(default_factory=dict)
    failed: dict[bytes, FailedInfo] = field(default_factory=dict)
    batch_of: dict[bytes, str] = field(default_factory=dict)  # pair -> batch id (State.BATCH)
    # batch id -> (store, file ids)
    batch_files: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    runs: int = 0
    last_run_end: Mapping[str, Any] | None = None

    def load(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Fold the log's events; for each pair the last word stands."""
        owner_col = self.owner_column
        states, failed = self.states, self.failed
        for ev in events:
            kind = ev.get("event")
            if kind == "done":
                owner, fid = ev.get(owner_col), ev.get("file_id")
                if not isinstance(owner, str) or not isinstance(fid, str):
                    continue  # written for the other target: not this manifest's pairs
                key = pair_key(owner, fid)
                outcome = ev.get("outcome")
                if outcome == "attached":
                    states[key] = State.ATTACHED
                    failed.pop(key, None)
                elif outcome == "already_attached":
                    states[key] = State.ALREADY_ATTACHED
                    failed.pop(key, None)
                else:
                    retryable = bool(ev.get("retryable"))
                    uncertain = bool(ev.get("uncertain"))
                    if not retryable:
                        states[key] = State.REFUSED
                    elif uncertain:
                        states[key] = State.FAILED_UNCERTAIN
                    else:
                        states[key] = State.FAILED_RETRYABLE
                    status = ev.get("status")
                    error = ev.get("error")
                    failed[key] = FailedInfo(
                        owner, fid, status if isinstance(status, int) else None,
                        error if isinstance(error, Mapping) else None, retryable, uncertain,
                    )
                self.batch_of.pop(key, None)
            elif kind == "sent":
                owner, fid = ev.get(owner_col), ev.get("file_id")
                if isinstance(owner, str) and isinstance(fid, str):
                    states[pair_key(owner, fid)] = State.SENT
            elif kind in ("batch-sent", "batch-created"):
                self._load_batch(ev, created=kind == "batch-created")
            elif kind == "run-start":
                self.runs += 1
            elif kind == "run-end":
                self.last_run_end = ev

    def _load_batch(self, ev: Mapping[str, Any], *, created: bool) -> None:
        store, fids = ev.get(self.owner_column), ev.get("file_ids")
        if not isinstance(store, str) or not isinstance(fids, list):
            return
        batch_id = ev.get("batch_id")
        for fid in fids:
            if not isinstance(fid, str):
                continue
            key = pair_key(store, fid)
            if created and isinstance(batch_id, str):
                self.states[key] = State.BATCH
                self.batch_of[key] = batch_id
            else:
                self.states[key] = State.SENT
        if created and isinstance(batch_id, str):
            self.batch_files[batch_id] = (store, [f for f in fids if isinstance(f, str)])

    def plan(self, item: Item, *, retry_failed: bool) -> tuple[Plan, int | None]:
        """What to do with a manifest pair, and what the log said of it (None: nothing).
        Marks the pair seen, so a repeat of it in the manifest is a DUPLICATE."""
        key = pair_key(item.owner, item.file_id)
        raw = self.states.get(key)
        if raw is not None and raw & SEEN:
            return Plan.DUPLICATE, raw & ~SEEN or None
        self.states[key] = (raw or 0) | SEEN
        if raw is None:
            return Plan.SEND, None
        if raw in DONE_STATES:
            return Plan.DONE, raw
        if raw == State.REFUSED:
            return (Plan.SEND if retry_failed else Plan.SKIP_REFUSED), raw
        if raw in (State.SENT, State.FAILED_UNCERTAIN):
            return Plan.CHECK, raw
        if raw == State.BATCH:
            return Plan.FOLLOW, raw
        return Plan.SEND, raw

    def batch_for(self, item: Item) -> str | None:
        return self.batch_of.get(pair_key(item.owner, item.file_id))

    def failed_info(self, item: Item) -> FailedInfo | None:
        return self.failed.get(pair_key(item.owner, item.file_id))

    def unseen(self) -> Iterator[int]:
        """States of pairs the log knows but this manifest did not name."""
        for raw in self.states.values():
            if not raw & SEEN:
                yield raw
