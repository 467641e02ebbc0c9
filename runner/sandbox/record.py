"""The sandbox's own record: what happened on the server, which no client can fake.

`Record.snapshot()` (also `Sandbox.record()`, `SandboxThread.record()` and
`GET /__sandbox/record`) returns this JSON-able dict; every key is always present:

    {
      "requests": 1234,              # /v1 requests received (admin routes never count),
                                     # every one: retries, refused and faulted ones too
      "in_flight": 0,                # /v1 requests being handled now (from arrival, through
                                     # latency_ms and slow_ms, to the answer or the drop)
      "peak_in_flight": 16,          # most /v1 requests handled at once
      "held_writes": 0,              # writes a late_apply fault holds now, from the draw
                                     # until each is applied or dropped (see below)
      "receiving_uploads": 0,        # uploads whose file part is being read now
      "peak_per_1s": 25,             # most requests started within any 1 s (sliding)
      "peak_per_60s": 600,           # most requests started within any 60 s (sliding)
      "by_status": {"200": 1200, "429": 30, "502": 4},   # answers sent, by status code;
                                     # a dropped connection has no status (see "faults")
      "by_route": {"POST attach": 1000, "GET check": 12, "POST batch": 3, "GET batch": 9,
                   "GET batch_files": 2, "POST batch_cancel": 0, "GET list": 1,
                   "POST update": 0, "DELETE file": 0, "GET store": 1, "GET assistant": 0,
                   "POST upload": 3, "GET file_list": 1, "GET file_object": 0,
                   "DELETE file_object": 1,   # the Files API's
                   "POST unknown": 0},   # received by method and route kind, as
                                     # "requests"; only kinds seen ("GET store" and
                                     # "GET assistant": retrieves of the owner itself)
      "faults": {"http_500": 1, "http_502": 4, "http_503": 2,
                 "reset_before": 3, "reset_after": 2, "slow": 1, "late_apply": 1,
                 "error_after": 1},  # late_apply only once a write was held, error_after
                                     # only once a write was applied and answered 500
      "rate_limited": {"requests": 30, "store": 2, "uploads": 1},
                                     # 429s of `rps` / of `store_rpm` / of `upload_rpm`
                                     # ("uploads" only once an upload was refused by it)
      "rate_limited_by_store": {"vs_abc": 2},              # the store 429s, by store
      "store_attach_peak_per_60s": {"vs_abc": 300},        # per vector store: most writes
                                     # (adds, file_batches, updates, deletes) started within
                                     # 60 s: what `store_rpm` limits
      "max_store_attach_per_60s": 300,                     # the largest of those, 0 if none
      "writes_by_store": {"vs_abc": 1210},                 # per vector store: every write
                                     # (adds, file_batches, updates, deletes) received, as
                                     # "requests": refused, faulted and retried ones too; a
                                     # store never written to is absent
      "org_project": [{"organization": "org-abc", "project": "proj_1", "requests": 1234}],
                                     # /v1 requests by the OpenAI-Organization and
                                     # OpenAI-Project headers they carried, as "requests"
      "attached_total": 1000,        # sum of "attached" over all pairs
      "pairs": {"vs_abc/file-1": {"attached": 1, "posts_after_attached": 0,
                                  "preloaded": false, "updated": 1, "updates_when_absent": 0,
                                  "detached": 0, "deletes_when_absent": 0}},
      "vector_store_files": {"vs_abc": {"file-1": {"status": "completed",
                                                   "attributes": {"lang": "en"},
                                                   "chunking_strategy": {"type": "static",
                                                       "static": {"max_chunk_size_tokens": 800,
                                                                  "chunk_overlap_tokens": 400}},
                                                   "last_error": null}}},
      "uploads": {"applied": 3, "by_status": {"200": 3, "400": 1, "dropped": 1}},
      "file_deletes": {"applied": 1, "not_found": 0},
      "files": {"file-00000000000000000000000001": {"filename": "guide.md", "bytes": 5120,
                "sha256": "9f86d0...", "purpose": "assistants", "created_at": 1767225600,
                "deleted": false, "stores": ["vs_abc"], "stores_when_deleted": []}},
    }

A pair's key is `f"{owner}/{file_id}"` (see `pair_key`); owner is the assistant or vector store
id. `attached` counts the POSTs (single or in a batch) that attached it: 1 is right, 2 a
duplicate (or a delete and re-attach). `posts_after_attached` counts POSTs for it that came
while it was already attached: the "already attached" answers, a retry after a reset-after.
`preloaded` pairs were put in place by `preload` and are not counted in `attached`. `updated`
counts attribute updates applied to it (`POST /vector_stores/{id}/files/{file_id}`), whether or
not they changed anything; `updates_when_absent` the updates answered 404 because it was not in
the store. `detached` counts DELETEs that removed it; `deletes_when_absent` DELETEs answered 404
because it was not there (a second detach, a retry after a delete that landed). A pair appears
once any of these happened to it.

"writes_by_store" is a total where "store_attach_peak_per_60s" is a peak: every write request
that named the store (`POST .../files`, `POST .../file_batches`, `POST .../files/{file_id}`,
`DELETE .../files/{file_id}`; batch cancels are not writes), counted on arrival before any
check, so 401s, 429s, 400s, 404s, faulted and dropped ones count too. A store absent from it
received no write: what a test reads to confirm a run left a store alone (a sync on a
converged set, a store the manifest does not name).

"vector_store_files" is the stores' content now, not a count: every file in every vector store
(preloaded ones included, deleted ones gone) with its status at the time of the snapshot, its
current attributes, the chunking_strategy it reports and its last_error (null unless failed).
It is not part of `Record` itself (the state is the server's): `SandboxApi.snapshot()` adds it,
and a reset empties it with the rest.

"held_writes" is, like "vector_store_files", the server's state now rather than a count of the
past, and not part of `Record` itself: `SandboxApi.snapshot()` adds it. A write drawn
`late_apply` counts from the moment of the draw until it has been applied (the record and the
stores show its effect by the time it stops counting), or dropped: its client left before the
body arrived, or the server stopped with it still held (never applied). A reset leaves it as it
is: a write held across a reset still lands, in the reset record. It is 0 when no write can
still change the stores behind a client's back: what a test waits for (polling, with a
timeout) before it judges a run by the record, where "in_flight" would miss a held write whose
client has gone (its handler may be over).

"uploads" counts `POST /files`: "applied" the file objects made (an upload dropped by a
reset_after fault, or held by late_apply and applied after its client left, included);
"by_status" the answers sent to uploads, by status code, and "dropped" for an upload whose
connection was dropped before any answer (a reset fault, or a client that left: it may still
have been applied, see "applied"). "file_deletes" counts `DELETE /files/{id}`: "applied" the
file objects deleted, "not_found" the 404s (an unknown or already deleted id: a retry after
a delete that landed).

"files" is, like "vector_store_files", the server's state now (`SandboxApi.snapshot()` adds
it; a reset empties it): every file object uploaded, deleted ones included, by id, with its
filename, size, the SHA-256 of its content (hex), purpose, created_at, whether it is deleted,
the vector stores holding it now ("stores", in the order the stores were first used) and, once
deleted, the stores the delete took it out of ("stores_when_deleted"). A file object's removal
from a store by its delete is not a detach: the pair's "detached" does not count it. The
stores' pairs hold any file id (the attach routes take ids never uploaded): "files" lists only
the objects `POST /files` made.

"org_project" has one entry for each distinct (OpenAI-Organization, OpenAI-Project) pair of
header values seen, in the order first seen; a header a request did not carry is null (an empty
one is ""). The "requests" of its entries add up to "requests": a client that sends both headers
on every request shows as one entry, one that never sends them as
`{"organization": null, "project": null, ...}`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

from runner.sandbox.faults import FAULT_KINDS, WRITE_ONLY_KINDS


def pair_key(owner: str, file_id: str) -> str:
    """The key of a pair in the record's "pairs"."""
    return f"{owner}/{file_id}"


def confirm_attached_once(record: Mapping[str, Any], pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Problems with "each pair is in place exactly once" (preloaded or attached by one POST),
    one line a pair; an empty list means all is well."""
    known: Mapping[str, Mapping[str, Any]] = record["pairs"]
    problems = []
    for owner, file_id in pairs:
        key = pair_key(owner, file_id)
        entry = known.get(key)
        times = 0 if entry is None else entry["attached"] + (1 if entry["preloaded"] else 0)
        if times != 1:
            problems.append(f"{key}: in place {times} times, expected once")
    return problems


class SlidingWindow:
    """Counts events within the last `span` seconds and remembers the largest count."""

    __slots__ = ("span", "_starts", "peak")

    def __init__(self, span: float) -> None:
        self.span = span
        self._starts: deque[float] = deque()  # event times within the window, oldest first
        self.peak = 0

    def add(self, now: float) -> None:
        starts = self._starts
        starts.append(now)
        cutoff = now - self.span
        while starts[0] <= cutoff:
            starts.popleft()
        if len(starts) > self.peak:
            self.peak = len(starts)


class PairEntry:
    __slots__ = (
        "attached",
        "posts_after_attached",
        "preloaded",
        "updated",
        "updates_when_absent",
        "detached",
        "deletes_when_absent",
    )

    def __init__(self) -> None:
        self.attached = 0
        self.posts_after_attached = 0
        self.preloaded = False
        self.updated = 0
        self.updates_when_absent = 0
        self.detached = 0
        self.deletes_when_absent = 0

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class Record:
    """Counters kept on every /v1 request; cheap enough for thousands of requests a second."""

    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.per_1s = SlidingWindow(1.0)
        self.per_60s = SlidingWindow(60.0)
        self.by_status: Counter[int] = Counter()
        self.by_route: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.store_limited: Counter[str] = Counter()  # store id -> its 429s
        self.store_writes: dict[str, SlidingWindow] = {}
        self.writes_by_store: Counter[str] = Counter()  # store id -> writes received
        self.pairs: dict[str, PairEntry] = {}
        # (OpenAI-Organization, OpenAI-Project) -> requests; None: the header was absent
        self.org_project: Counter[tuple[str | None, str | None]] = Counter()
        self.uploads_applied = 0  # file objects made by POST /files
        self.receiving_uploads = 0  # uploads whose file part is being read now
        self.uploads_by_status: Counter[str] = Counter()  # "200", "400", ..., "dropped"
        self.file_deletes: Counter[str] = Counter()  # "applied", "not_found"

    def request_started(self, route: str, now: float, organization: str | None = None,
                        project: str | None = None) -> None:
        """A /v1 request arrived; `organization` / `project`: its OpenAI-Organization and
        OpenAI-Project headers (None when absent)."""
        self.requests += 1
        self.org_project[organization, project] += 1
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        self.per_1s.add(now)
        self.per_60s.add(now)
        self.by_route[route] += 1

    def request_finished(self, status: int | None) -> None:
        """`status` None: the connection was dropped without an answer."""
        self.in_flight -= 1
        if status is not None:
            self.by_status[status] += 1

    def store_write_started(self, store_id: str, now: float) -> None:
        """A write to a vector store arrived (counted before any check, as the limit is)."""
        self.writes_by_store[store_id] += 1
        window = self.store_writes.get(store_id)
        if window is None:
            window = self.store_writes[store_id] = SlidingWindow(60.0)
        window.add(now)

    def upload_finished(self, status: int | None) -> None:
        """An upload's answer was sent (None: its connection was dropped without one)."""
        self.uploads_by_status["dropped" if status is None else str(status)] += 1

    def upload_reading(self, change: int) -> None:
        """An upload's file part began to be read (+1), or ended (-1)."""
        self.receiving_uploads += change

    def upload_applied(self) -> None:
        self.uploads_applied += 1

    def file_delete(self, applied: bool) -> None:
        self.file_deletes["applied" if applied else "not_found"] += 1

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def limited(self, scope: str, store_id: str | None = None) -> None:
        """A 429 of the global limit (`requests`), of a store's (`store`, naming it) or of
        the uploads' own (`uploads`)."""
        self.rate_limited[scope] += 1
        if store_id is not None:
            self.store_limited[store_id] += 1

    def _pair(self, owner: str, file_id: str) -> PairEntry:
        key = pair_key(owner, file_id)
        entry = self.pairs.get(key)
        if entry is None:
            entry = self.pairs[key] = PairEntry()
        return entry

    def attached(self, owner: str, file_id: str) -> None:
        self._pair(owner, file_id).attached += 1

    def posted_after_attached(self, owner: str, file_id: str) -> None:
        self._pair(owner, file_id).posts_after_attached += 1

    def preloaded(self, owner: str, file_id: str) -> None:
        self._pair(owner, file_id).preloaded = True

    def updated(self, owner: str, file_id: str, present: bool) -> None:
        entry = self._pair(owner, file_id)
        if present:
            entry.updated += 1
        else:
            entry.updates_when_absent += 1

    def detached(self, owner: str, file_id: str, present: bool) -> None:
        entry = self._pair(owner, file_id)
        if present:
            entry.detached += 1
        else:
            entry.deletes_when_absent += 1

    def _faults(self) -> dict[str, int]:
        counts = {kind: self.faults[kind] for kind in FAULT_KINDS if kind not in WRITE_ONLY_KINDS}
        # Only once one happened: readers that check "every kind of fault happened" over
        # the older kinds keep working.
        for kind in WRITE_ONLY_KINDS:
            if self.faults[kind]:
                counts[kind] = self.faults[kind]
        return counts

    def _rate_limited(self) -> dict[str, int]:
        counts = {scope: self.rate_limited[scope] for scope in ("requests", "store")}
        # Only once one happened, as the write-only faults: readers comparing the whole
        # dict of a run without `upload_rpm` keep working.
        if self.rate_limited["uploads"]:
            counts["uploads"] = self.rate_limited["uploads"]
        return counts

    def snapshot(self) -> dict[str, Any]:
        """The record as plain JSON-able data (shape in the module docstring)."""
        store_peaks = {store: window.peak for store, window in self.store_writes.items()}
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "receiving_uploads": self.receiving_uploads,
            "peak_per_1s": self.per_1s.peak,
            "peak_per_60s": self.per_60s.peak,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "by_route": dict(self.by_route),
            "faults": self._faults(),
            "rate_limited": self._rate_limited(),
            "rate_limited_by_store": dict(self.store_limited),
            "store_attach_peak_per_60s": store_peaks,
            "max_store_attach_per_60s": max(store_peaks.values(), default=0),
            "writes_by_store": dict(self.writes_by_store),
            "org_project": [
                {"organization": organization, "project": project, "requests": n}
                for (organization, project), n in self.org_project.items()
            ],
            "attached_total": sum(entry.attached for entry in self.pairs.values()),
            "pairs": {key: entry.to_json() for key, entry in self.pairs.items()},
            "uploads": {
                "applied": self.uploads_applied,
                "by_status": dict(sorted(self.uploads_by_status.items())),
            },
            "file_deletes": {
                kind: self.file_deletes[kind] for kind in ("applied", "not_found")
            },
        }
