"""sync's plan for one vector store: the manifest's pairs for it, what its listing showed, and
so what this run adds, updates, checks and detaches (SPEC "sync").

Memory: a manifest pair costs its file id (a key of `index_of`) and a few bytes in arrays
(what the listing said of it, its attributes' digest, its chunking); its Item, with the
attributes the manifest gives, is kept only if this run writes it (`writes`, filled by a
second read of the manifest: `read_writes`). A listed file the manifest does not name keeps
only its id (it is to be detached). A listed file costs nothing more, and the listing's JSON
is dropped page by page (runner/operations/listing.py).

The listing is the truth of the run, except for a pair with an unsettled write in the log
(`sent` with no `done`, a batch never followed, a `done` that is failed and uncertain): such a
pair is not written to until the settle rule allows and a GET says what is there (a CHECK).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from runner.attributes import Options, chunking_matches, digest_value
from runner.errors import UsageError
from runner.items import Item
from runner.log.resume import ResumeIndex, State
from runner.manifest import ManifestSource, iter_items
from runner.requests.outcomes import Outcome
from runner.requests.targets import ApiError, Target

# found[i]: what the listing said of the manifest's i-th pair of the store.
NOT_LISTED, IN_PLACE, STALE = 0, 1, 2
# Log states whose write may have landed (or not): check before writing (SPEC's settle rule).
UNSETTLED = frozenset({State.SENT, State.FAILED_UNCERTAIN, State.BATCH})
# How the plan printed by --dry-run shows each list: the first few ids.
SHOW_IDS = 5
@dataclass
class StorePlan:
    """One named store: its manifest pairs, its listing, its plan and what the run did.

    The plan's lists hold file ids; `writes` maps the ids this run writes to their Item."""

    store: str
    # The manifest's pairs, in order: id -> place; per place, in the arrays below, what the
    # listing said (`found`), whether the manifest gives attributes and their digest, and
    # which of `chunkings` it asks for (0: none given).
    index_of: dict[str, int] = field(default_factory=dict)
    found: bytearray = field(default_factory=bytearray)  # NOT_LISTED | IN_PLACE | STALE
    managed: bytearray = field(default_factory=bytearray)  # 1: attributes given
    digests: array[int] = field(default_factory=lambda: array("Q"))
    chunking_of: array[int] = field(default_factory=lambda: array("I"))
    chunkings: list[Mapping[str, Any] | None] = field(default_factory=lambda: [None])
    listed: int = 0  # files the listing showed (every status), before this run's writes
    extras: dict[str, None] = field(default_factory=dict)  # listed, not in the manifest (ordered)
    failed_files: list[tuple[str, str]] = field(default_factory=list)  # (file id, last_error)
    chunking_mismatch: int = 0
    chunking_examples: list[str] = field(default_factory=list)  # a few, for the warning
    listing_error: tuple[int | None, ApiError] | None = None
    run_refused: bool = False  # every store's listing refused alike: its pairs are not done
    # The plan, once listed (see plan()): file ids.
    adds: list[str] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # manifest pairs: check, then write
    detaches: list[str] = field(default_factory=list)
    detach_checks: list[str] = field(default_factory=list)  # extras with an unsettled write
    to_record: list[str] = field(default_factory=list)  # in place; the log does not say so
    writes: dict[str, Item | None] = field(default_factory=dict)  # adds, updates, checks
    in_place: int = 0
    refused_earlier: int = 0
    # What the run did.
    added: int = 0
    updated: int = 0
    detached: int = 0
    failed: int = 0  # adds, updates and checks of manifest pairs that failed in this run
    detach_failed: int = 0
    full: list[Item] = field(default_factory=list)  # adds refused because the store is full
    full_outcomes: list[Outcome] = field(default_factory=list)  # and how they were refused
    pruned: bool = False
    not_pruned: str | None = None  # why its detaches did not go
    _chunking_index: dict[str, int] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return len(self.index_of)

    @property
    def unlisted_failed(self) -> int:
        """Pairs failed because the store could not be listed (none if the run was refused)."""
        return self.pairs if self.listing_error is not None and not self.run_refused else 0

    def want(self, item: Item) -> bool:
        """Add a manifest pair; False if the manifest named it already (a repeat)."""
        if item.file_id in self.index_of:
            return False
        self.index_of[item.file_id] = len(self.found)
        self.found.append(NOT_LISTED)
        options = item.options or Options()
        attributes = options.attributes
        self.managed.append(attributes is not None)
        self.digests.append(digest_value(attributes) if attributes is not None else 0)
        self.chunking_of.append(self._chunking(options.chunking_strategy))
        return True

    def _chunking(self, strategy: Mapping[str, Any] | None) -> int:
        """Strategies are few: each distinct one is kept once."""
        if strategy is None:
            return 0
        spelled = json.dumps(strategy, sort_keys=True)
        at = self._chunking_index.get(spelled)
        if at is None:
            at = self._chunking_index[spelled] = len(self.chunkings)
            self.chunkings.append(strategy)
        return at

    def digest_at(self, at: int) -> int | None:
        """The digest of the attributes the manifest gives the pair, None if it gives none."""
        return self.digests[at] if self.managed[at] else None

    # --- the listing (runner/operations/listing.py calls these) ---

    def take(self, entry: Mapping[str, Any]) -> None:
        """One listed file."""
        self.listed += 1
        file_id = entry["id"]
        at = self.index_of.get(file_id)
        if at is None:
            self.extras[file_id] = None
            return
        if self.found[at] != NOT_LISTED:
            return  # listed twice (the store changed between pages): seen already
        stale = self.managed[at] and self.digests[at] != digest_value(_attributes(entry))
        self.found[at] = STALE if stale else IN_PLACE
        if not chunking_matches(self.chunkings[self.chunking_of[at]],
                                entry.get("chunking_strategy")):
            self.chunking_mismatch += 1
            if len(self.chunking_examples) < 3:
                self.chunking_examples.append(f"{self.store}/{file_id}")
        if entry.get("status") == "failed":
            self.failed_files.append((file_id, _last_error(entry.get("last_error"))))

    def listing_failed(self, status: int | None, error: ApiError) -> None:
        self.listing_error = (status, error)

    # --- the plan -------------------------------------------------------------------------

    def plan(self, index: ResumeIndex, *, retry_failed: bool) -> None:
        """From the listing and the log: what to add, update, check and detach."""
        if self.listing_error is not None:
            return
        store = self.store
        for at, (file_id, found) in enumerate(zip(self.index_of, self.found, strict=True)):
            state = index.last_state(store, file_id)
            if state in UNSETTLED:
                self.checks.append(file_id)
            elif found == STALE:
                self.updates.append(file_id)
            elif found == IN_PLACE:
                self.in_place += 1
                if not index.records_in_place(store, file_id, self.digest_at(at)):
                    self.to_record.append(file_id)
            elif (state == State.REFUSED and not retry_failed
                  and _refused_attach(index, store, file_id)):
                self.refused_earlier += 1
            else:
                self.adds.append(file_id)
        for file_id in self.extras:
            if index.last_state(store, file_id) in UNSETTLED:
                self.detach_checks.append(file_id)
            else:
                self.detaches.append(file_id)
        self.extras = {}  # the plan holds them now
        self.writes = dict.fromkeys(self.checks + self.updates + self.adds)

    def write_items(self, file_ids: list[str]) -> list[Item]:
        """The Items of planned writes (after `read_writes`)."""
        writes = self.writes
        return [item for item in map(writes.__getitem__, file_ids) if item is not None]

    @property
    def to_detach(self) -> int:
        return len(self.detaches) + len(self.detach_checks)

    def over_guard(self) -> bool:
        """SPEC's half-store guard: 2 x detaches > files listed."""
        return 2 * self.to_detach > self.listed

    # --- what the run did -------------------------------------------------------------------

    def count(self, outcome: Outcome, *, detaching: bool) -> None:
        kind = outcome.outcome
        if detaching:
            if kind in ("detached", "already_detached"):
                self.detached += 1
            else:
                self.detach_failed += 1
        elif kind == "attached":
            self.added += 1
        elif kind == "updated":
            self.updated += 1
        elif kind == "failed":
            self.failed += 1

    def report(self) -> dict[str, Any]:
        """The store's entry in `--json`'s `stores`."""
        error = self.listing_error
        return {
            "vector_store_id": self.store,
            "listed": self.listed if error is None else None,
            "manifest_files": self.pairs,
            "in_place": self.in_place,
            "added": self.added,
            "updated": self.updated,
            "detached": self.detached,
            "failed": self.failed + self.detach_failed + self.unlisted_failed,
            "to_add": len(self.adds), "to_update": len(self.updates),
            "to_check": len(self.checks), "to_detach": self.to_detach,
            "pruned": self.pruned,
            "not_pruned": self.not_pruned,
            "failed_files": [{"file_id": f, "last_error": e} for f, e in self.failed_files],
            "listing_error": None if error is None else {"status": error[0],
                                                         **error[1].as_log()},
        }

    def plan_lines(self) -> list[str]:
        """The store's plan as --dry-run prints it."""
        if self.listing_error is not None:
            status, error = self.listing_error
            return [f"{self.store}: could not be listed ({status or 'no answer'}: "
                    f"{error.message}); nothing would be written to it"]
        parts = [f"{self.store}: listed {self.listed}, in place {self.in_place}"]
        for word, items in (("add", self.adds), ("update", self.updates),
                            ("check first", self.checks + self.detach_checks),
                            ("detach", self.detaches)):
            if items:
                shown = ", ".join(items[:SHOW_IDS])
                more = ", ..." if len(items) > SHOW_IDS else ""
                parts.append(f"  {word} {len(items)}: {shown}{more}")
        for file_id, last_error in self.failed_files:
            parts.append(f"  failed processing: {file_id} ({last_error})")
        return parts


def _attributes(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = entry.get("attributes")
    return value if isinstance(value, Mapping) else None


def _last_error(value: Any) -> str:
    if isinstance(value, Mapping):
        code, message = value.get("code"), value.get("message")
        return ": ".join(str(x) for x in (code, message) if x) or "failed"
    return "failed"


def _refused_attach(index: ResumeIndex, store: str, file_id: str) -> bool:
    """Refused earlier by an attach or update (a detach refused earlier does not stop an add)."""
    info = index.failed_info(Item(store, file_id))
    return info is None or info.op != "detach"


def store_plans(source: ManifestSource, target: Target) -> list[StorePlan]:
    """The manifest's pairs by store, in the order stores first appear (repeats once)."""
    plans: dict[str, StorePlan] = {}
    for item in iter_items(source, target.owner_column, target.group_key):
        plan = plans.get(item.owner)
        if plan is None:
            plan = plans[item.owner] = StorePlan(item.owner)
        plan.want(item)
    return list(plans.values())


def read_writes(plans: Mapping[str, StorePlan], items: Iterable[Item], display: str) -> None:
    """The manifest read a second time, after the plan: the Item (line, attributes, chunking)
    of each pair this run writes, the first time the manifest names it (as `want` kept it).
    A pair to write that is gone, or whose attributes differ from the first read, means the
    file changed while the sync ran: stop before any write (UsageError)."""
    for item in items:
        plan = plans.get(item.owner)
        if plan is None or plan.writes.get(item.file_id, False) is not None:
            continue  # not written by this run, or taken already
        given = (item.options or Options()).attributes
        at = plan.index_of[item.file_id]
        if plan.digest_at(at) != (None if given is None else digest_value(given)):
            _changed(display, f"line {item.line}: the attributes of {item.file_id}")
        plan.writes[item.file_id] = item
    for plan in plans.values():
        for file_id, written in plan.writes.items():
            if written is None:
                _changed(display, f"{plan.store}/{file_id} is gone")


def _changed(display: str, what: str) -> NoReturn:
    raise UsageError(f"{display}: the manifest changed while sync ran ({what}); nothing was "
                     "written; run the same command again")
