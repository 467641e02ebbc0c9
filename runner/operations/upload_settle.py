"""Settling an uncertain upload (SPEC "Local files", Exactly once): the uploads of this run
and of the log whose outcome is not known, and the listing that settles one. Once the settle
rule allows, the files are listed (newest first, back to the send time less five minutes by
the server's clock, read from its Date headers); an object no line of the log claims, with the
same filename and byte count, created since then, is the upload's. Where two unsettled uploads
share a filename and size (rivals), or several objects match, none can be proven ours: the
content is uploaded again and the candidates are reported as possible duplicates, never
deleted.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from runner.items import LocalFile
from runner.log.uploads import UploadIndex
from runner.log.writer import ResultLog
from runner.requests.client import Answer
from runner.requests.outcomes import GaveUp, Outcome
from runner.requests.sender import Sender
from runner.requests.targets import ApiError, api_error

# SPEC: the listing pages back to the send time less this much (clocks and queues differ).
LISTING_SLACK_SECONDS = 300
LIST_LIMIT = 10_000


@dataclass
class _Uncertain:
    """An upload of this run whose outcome is not known."""

    filename: str
    size: int
    sent_at: float  # epoch seconds, this machine's clock


class UncertainUploads:
    """The unsettled uploads, this run's and the log's, by content; and their settling."""

    def __init__(self, sender: Sender, index: UploadIndex, log: ResultLog,
                 possible_duplicates: list[str]) -> None:
        self.sender = sender
        self.index = index
        self.log = log
        self.possible_duplicates = possible_duplicates  # the run's count of them
        self._mine: dict[str, _Uncertain] = {}  # sha256 -> this run's uncertain upload
        self._contested: set[tuple[str, int]] = set()  # (filename, bytes) met as rivals
        self._clock_offset = 0.0  # the server's Date less this machine's clock, last seen
        self._date_seen: str | None = None  # the Date header that offset was read from

    def sent_at(self, sha: str) -> float | None:
        """When an unsettled upload of this content was sent (None: there is none)."""
        mine = self._mine.get(sha)
        if mine is not None:
            return mine.sent_at
        logged = self.index.unsettled.get(sha)
        return None if logged is None else logged.sent_at

    def has_size(self, size: int) -> bool:
        """Whether an uncertain upload of this run has a content of this size."""
        return any(u.size == size for u in self._mine.values())

    def add(self, local: LocalFile, filename: str, sent_at: float) -> None:
        """This run's upload of `local` may have made a file object."""
        self._mine[local.sha256] = _Uncertain(filename, local.size, sent_at)

    def settled(self, sha: str) -> None:
        """No upload of this content is uncertain any more."""
        self.index.unsettled.pop(sha, None)
        self._mine.pop(sha, None)

    async def find(self, local: LocalFile, filename: str, sent_at: float) -> str | Outcome | None:
        """Settle an uncertain upload of this content: the id of the object it made (to
        adopt), None when it made none (or none can be proven ours: upload again; it is
        settled), or the failure to list (the upload stays uncertain for the next run)."""
        since = sent_at + self._clock_offset - LISTING_SLACK_SECONDS
        try:
            listed = await self._list_since(since)
        except GaveUp as exc:
            return Outcome("failed", exc.status, 0, ApiError(
                "check_failed", "could not list the files to settle an uncertain upload",
                None), retryable=True, uncertain=True, op="upload")
        claimed = self.index.claimed
        matches = [obj["id"] for obj in listed
                   if obj.get("filename") == filename and obj.get("bytes") == local.size
                   and isinstance(obj.get("created_at"), (int, float))
                   and obj["created_at"] >= since and obj["id"] not in claimed
                   and obj["id"] not in self.index.unadoptable]
        group = (filename, local.size)
        if self._has_rival(local.sha256, group):
            self._contested.add(group)
        if len(matches) == 1 and group not in self._contested:
            return str(matches[0])
        if matches:
            self._contested.add(group)
            self.possible_duplicates.extend(matches)
            self.index.unadoptable.update(matches)
            self.log.append("possible-duplicates", path=local.path, sha256=local.sha256,
                            file_ids=matches)
        # Settled: the content is uploaded again (a new upload-sent line follows).
        self.settled(local.sha256)
        return None

    def _has_rival(self, sha: str, group: tuple[str, int]) -> bool:
        """Whether another unsettled upload (this run's or the log's) has the same filename
        and size but another content: either could be the object found."""
        rivals = [(u.filename, u.size) for s, u in self._mine.items() if s != sha]
        rivals += [(u.filename, u.size) for s, u in self.index.unsettled.items() if s != sha]
        return group in rivals

    async def _list_since(self, since: float) -> list[dict[str, Any]]:
        """The file objects created since `since` (server clock), newest first."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            query = {"purpose": "assistants", "order": "desc", "limit": LIST_LIMIT}
            if after is not None:
                query["after"] = after
            answer = await self.sender.request_retrying("GET", "/files?" + urlencode(query),
                                                        kind="list")
            if not 200 <= answer.status < 300 or not isinstance(answer.body, dict):
                error = api_error(answer.status, answer.body, answer.text)
                raise GaveUp(answer.status, error, uncertain=False)
            self.note_clock(answer)
            page = [obj for obj in answer.body.get("data") or [] if isinstance(obj, dict)
                    and isinstance(obj.get("id"), str)]
            found.extend(page)
            oldest = page[-1].get("created_at") if page else None
            if (not page or not answer.body.get("has_more")
                    or (isinstance(oldest, (int, float)) and oldest < since)):
                return found
            after = page[-1]["id"]

    def note_clock(self, answer: Answer) -> None:
        """The server's clock, from an answer's Date header: the listing's bound is on it."""
        if answer.date is None or answer.date == self._date_seen:
            return  # one second's resolution: parsed once a second at most
        self._date_seen = answer.date
        try:
            server = email.utils.parsedate_to_datetime(answer.date).timestamp()
        except (TypeError, ValueError):
            return
        self._clock_offset = server - time.time()
