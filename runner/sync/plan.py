"""sync's plan per vector store (SPEC "sync"): from the manifest's pairs for a store and what its
listing showed (runner/sync/store.py), the sets this run writes there: what to add, update,
check first and detach (`StoreSets`, made once by `plan_sets`, only read after). `StorePlan`
holds a store's two sides, its sets and its `StoreResult` (runner/sync/result.py), which the
phases write (runner/sync/phases.py).

The listing is the truth of the run, except for a pair with an unsettled write in the log
(`sent` with no `done`, a batch never followed, a `done` that is failed and uncertain): such a
pair is not written to until the settle rule allows and a GET says what is there (a CHECK).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from runner.attributes import Options
from runner.errors import UsageError
from runner.items import Item
from runner.log.resume import ResumeIndex
from runner.log.states import UNSETTLED_STATES, State
from runner.manifest import ManifestSource, iter_items
from runner.operations.hashing import resolve_path
from runner.requests.targets import Target
from runner.sync.result import StoreResult
from runner.sync.store import IN_PLACE, STALE, StoreListing, StorePairs


@dataclass
class StoreSets:
    """What this run does to one store: file ids, manifest pairs in the manifest's order and
    extras in the listing's. Made once from the listing and the manifest (`plan_sets`); the
    phases only read them."""

    adds: list[str] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)  # listed with other attributes
    checks: list[str] = field(default_factory=list)  # manifest pairs: check, then write
    detaches: list[str] = field(default_factory=list)  # listed, not in the manifest
    detach_checks: list[str] = field(default_factory=list)  # extras with an unsettled write
    # Listed old versions of the manifest's local files: taken out by their replace once the
    # new version is attached (run/leftovers.py), never pruned (the guard does not count them).
    replacing: list[str] = field(default_factory=list)
    to_record: list[str] = field(default_factory=list)  # in place; the log does not say so
    in_place: int = 0
    refused_earlier: int = 0
    # The Items of the writes (adds, updates, checks): None until `read_writes` reads them.
    writes: dict[str, Item | None] = field(default_factory=dict)

    @property
    def to_detach(self) -> int:
        return len(self.detaches) + len(self.detach_checks)

    def write_items(self, file_ids: list[str]) -> list[Item]:
        """The Items of planned writes (after `read_writes`)."""
        writes = self.writes
        return [item for item in map(writes.__getitem__, file_ids) if item is not None]


def plan_sets(listing: StoreListing, index: ResumeIndex, *, retry_failed: bool,
              local: Mapping[str, Item] | None = None, paths: set[str] | None = None,
              ) -> StoreSets:
    """From the listing and the log: what to add, update, check and detach (nothing for a
    store that could not be listed). `local`: the path pairs among the manifest's pairs (by
    file id); `paths`: every path of the manifest for this store."""
    sets = StoreSets()
    if listing.error is not None:
        return sets
    store, pairs = listing.store, listing.pairs
    found = listing.found or bytes(len(pairs))  # no manifest pair listed: none found
    for at, (file_id, said) in enumerate(zip(pairs.index_of, found, strict=True)):
        state = index.last_state(store, file_id)
        if state in UNSETTLED_STATES:
            sets.checks.append(file_id)
        elif said == STALE:
            sets.updates.append(file_id)
        elif said == IN_PLACE:
            sets.in_place += 1
            if not index.records_in_place(store, file_id, pairs.digest_at(at)) or (
                    local and file_id in local and _path_unrecorded(index, local[file_id])):
                sets.to_record.append(file_id)
        elif (state == State.REFUSED and not retry_failed
              and _refused_attach(index, store, file_id)):
            sets.refused_earlier += 1
        else:
            sets.adds.append(file_id)
    version_of = _versions_in(index, store) if paths else {}
    for file_id in listing.extras:
        if version_of.get(file_id) in (paths or ()):
            sets.replacing.append(file_id)
        elif index.last_state(store, file_id) in UNSETTLED_STATES:
            sets.detach_checks.append(file_id)
        else:
            sets.detaches.append(file_id)
    listing.extras = {}  # the sets hold them now
    sets.writes = dict.fromkeys(sets.checks + sets.updates + sets.adds)
    return sets


def _path_unrecorded(index: ResumeIndex, item: Item) -> bool:
    """Whether a path pair in place lacks a line for its path: as this version of the
    path in the store, or with the file as read now (the quick check's record)."""
    local = item.local
    if local is None:
        return False
    record = index.uploads.paths.get(local.path)
    return (index.versions.version_of(item.owner, local.path) != item.file_id
            or record is None or (record.size, record.mtime_ns, record.sha256) != (
                local.size, local.mtime_ns, local.sha256))


def _versions_in(index: ResumeIndex, store: str) -> dict[str, str]:
    """file id -> the path it is (or was) the version of in the store, per the log."""
    found = {file_id: path for path, file_id in index.versions.current.get(store, {}).items()}
    found.update((old.file_id, old.path) for old in index.versions.superseded.values()
                 if old.store == store)
    return found


def _refused_attach(index: ResumeIndex, store: str, file_id: str) -> bool:
    """Refused earlier by an attach or update (a detach refused earlier does not stop an add)."""
    info = index.failed_info(Item(store, file_id))
    return info is None or info.op != "detach"


class StorePlan:
    """One named store: the manifest's pairs for it (`pairs`, fed by `store_plans`), its
    listing (`listing`, fed by runner/operations/listing.py), the sets made from the two
    (`plan`), and what the run did there (`result`)."""

    __slots__ = ("store", "pairs", "listing", "sets", "result", "local", "uploads", "paths",
                 "changed")

    def __init__(self, store: str) -> None:
        self.store = store
        self.pairs = StorePairs()
        # Local files (`path` rows): the pairs whose content is uploaded, by file id (the
        # first path of each content); those to upload first; every path, for replace.
        self.local: dict[str, Item] = {}
        self.uploads: list[Item] = []
        self.paths: set[str] = set()
        self.changed: dict[str, str] = {}  # path -> the file object of its old content
        self.listing = StoreListing(store, self.pairs)
        self.sets = StoreSets()  # nothing to do until planned
        self.result = StoreResult()

    def plan(self, index: ResumeIndex, *, retry_failed: bool) -> None:
        """Once listed: make the store's sets."""
        self.sets = plan_sets(self.listing, index, retry_failed=retry_failed,
                              local=self.local, paths=self.paths)

    @property
    def unlisted_failed(self) -> int:
        """Pairs failed because the store could not be listed (none if the run was refused)."""
        listing = self.listing
        return len(self.pairs) if listing.error is not None and not listing.refused_run else 0


def store_plans(source: ManifestSource, target: Target,
                index: ResumeIndex | None = None) -> list[StorePlan]:
    """The manifest's pairs by store, in the order stores first appear (repeats once). A
    path pair is named by its content's file object when the log uploaded that content (the
    quick check, else the file is read now: `index`), else it is to upload."""
    plans: dict[str, StorePlan] = {}
    uploads = index.uploads if index is not None else None
    for item in iter_items(source, target.owner_column, target.group_key):
        plan = plans.get(item.owner)
        if plan is None:
            plan = plans[item.owner] = StorePlan(item.owner)
        if item.local is not None and uploads is not None:
            item = resolve_path(item, uploads)
            local = item.local
            assert local is not None
            if (old := uploads.changed_from(local)) is not None:
                plan.changed[local.path] = old
            plan.paths.add(local.path)
            if not item.file_id:
                plan.uploads.append(item)
            elif plan.pairs.want(item):
                plan.local[item.file_id] = item
            continue
        plan.pairs.want(item)
    return list(plans.values())


def read_writes(plans: Mapping[str, StorePlan], items: Iterable[Item], display: str) -> None:
    """The manifest read a second time, after the plan: the Item (line, attributes, chunking)
    of each pair this run writes, the first time the manifest names it (as `want` kept it).
    A pair to write that is gone, or whose attributes differ from the first read, means the
    file changed while the sync ran: stop before any write (UsageError). Path pairs come
    from the first read (their files were read then)."""
    for named in plans.values():
        for file_id, local in named.local.items():
            if named.sets.writes.get(file_id, False) is None:
                named.sets.writes[file_id] = local
    for item in items:
        plan = plans.get(item.owner)
        if plan is None:
            continue
        writes = plan.sets.writes
        if item.local is not None:  # a path pair: read once, by store_plans (plan.local)
            continue
        if writes.get(item.file_id, False) is not None:
            continue  # not written by this run, or taken already
        pairs = plan.pairs
        if pairs.digest_at(pairs.index_of[item.file_id]) != (
                (item.options or Options()).digest_value()):
            _changed(display, f"line {item.line}: the attributes of {item.file_id}")
        writes[item.file_id] = item
    for plan in plans.values():
        for file_id, written in plan.sets.writes.items():
            if written is None:
                _changed(display, f"{plan.store}/{file_id} is gone")


def _changed(display: str, what: str) -> NoReturn:
    raise UsageError(f"{display}: the manifest changed while sync ran ({what}); nothing was "
                     "written; run the same command again")
