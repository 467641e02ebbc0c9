"""What the log says of the versions of local files in their stores (SPEC "Local files":
Replace, Clean-up): which file object holds each path's content in each store now, which older
versions a replace has yet to take out, and which file objects of ours no store holds any more.

Fed by the resume index (resume.py) with a path pair's `done` lines, every detach's `done`
(any `op`: a `detach-version`, a prune, the `detach` command) and the delete lines:

    done (path pair, in place)  store, file_id, path: the path's version in that store is now
                                that file; the one before it, if another, is superseded
    done (detached, already_detached)   that (store, file_id) is out: no longer to take out
    file-delete-sent / file-deleted     a delete of a file object of ours, settled or not

A superseded version stays in its store until its `detach-version` is settled, so a run killed
between the new version's attach and the old one's detach finishes the job next run. A file
object of ours (uploaded or adopted: UploadIndex.claimed) is deleted only once the log shows it
in no store and no line of the run names it (`VersionQueries.unused_uploads`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from runner.items import pair_key
from runner.log.states import DETACHED_STATES, State
from runner.log.uploads import UploadIndex, epoch

IN_PLACE_OUTCOMES = frozenset({"attached", "already_attached", "updated"})
DETACHED_OUTCOMES = frozenset({"detached", "already_detached"})
DELETE_EVENTS = frozenset({"file-delete-sent", "file-deleted"})


class OldVersion(NamedTuple):
    """A file object that held a path's content in a store before the path's current one."""

    store: str
    file_id: str
    path: str


@dataclass
class VersionIndex:
    # store -> path -> the file object its last in-place `done` names (strings interned:
    # the same path is a key of UploadIndex.paths too)
    current: dict[str, dict[str, str]] = field(default_factory=dict)
    superseded: dict[int, OldVersion] = field(default_factory=dict)  # pair key -> version
    stores: set[str] = field(default_factory=set)  # where a file object of ours may be
    deletes_unsettled: dict[str, float] = field(default_factory=dict)  # file id -> sent at
    replaced: int = 0  # detach-versions done, over the log (status)
    # File objects that may have left every store: uploaded and not attached since, or
    # detached somewhere, or a delete unsettled. Only these are checked at a run's end, so
    # a converged rerun asks nothing of its 100,000 uploads.
    maybe_unused: set[str] = field(default_factory=set)
    # store -> file id -> how many paths' current version it is: made on the first question
    # (`held_by_a_path`), then kept by note_end (a rerun's fold of 100,000 lines never pays).
    _holders: dict[str, Counter[str]] = field(default_factory=dict)

    def note_end(self, key: int, store: str, file_id: str, outcome: object,
                 path: object, file_status: object = None) -> OldVersion | None:
        """A pair's `done` (a path pair's, or any detach's); `key` is its pair key. A pair
        that failed in its store's processing (`file_status` failed) is in the store too: the
        path's version there, replaced like any once the file changes. Returns the version
        this one superseded, if any."""
        if not isinstance(outcome, str):
            return None
        if outcome in IN_PLACE_OUTCOMES or file_status == "failed":
            if not isinstance(path, str) or not file_id or file_id.startswith("\0"):
                return None
            versions = self.current.get(store)
            if versions is None:
                self.stores.add(store)
                versions = self.current[store] = {}
            old = versions.get(path)
            replaced = None
            if old is not None and old != file_id:
                replaced = self.superseded[pair_key(store, old)] = OldVersion(store, old, path)
            versions[path] = file_id
            holders = self._holders.get(store)
            if holders is not None and old != file_id:
                holders[file_id] += 1
                if old is not None:
                    holders[old] -= 1
            if self.superseded:
                self.superseded.pop(key, None)
            self.maybe_unused.discard(file_id)
            return replaced
        elif outcome in DETACHED_OUTCOMES:
            self.superseded.pop(key, None)
            self.maybe_unused.add(file_id)
            held = self.current.get(store)
            if isinstance(path, str) and held is not None and held.get(path) == file_id:
                del held[path]
                holders = self._holders.get(store)
                if holders is not None:
                    holders[file_id] -= 1
        return None

    def held_by_a_path(self, store: str, file_id: str) -> bool:
        """Whether the file object is some path's current version in the store."""
        holders = self._holders.get(store)
        if holders is None:
            holders = self._holders[store] = Counter(self.current.get(store, {}).values())
        return holders[file_id] > 0

    def version_of(self, store: str, path: str) -> str | None:
        """The file object the path's last in-place `done` in the store names."""
        held = self.current.get(store)
        return None if held is None else held.get(path)

    def note_store(self, store: object) -> None:
        """A store a line of a pair of ours named (a batch's, a path pair's)."""
        if isinstance(store, str):
            self._store(store)

    def _store(self, store: str) -> str:
        if store not in self.stores:
            self.stores.add(store)
        return store

    def load_delete(self, ev: Mapping[str, Any]) -> None:
        """A `file-delete-sent` or `file-deleted` line."""
        file_id = ev.get("file_id")
        if not isinstance(file_id, str):
            return
        if ev.get("event") == "file-delete-sent":
            self.deletes_unsettled[file_id] = epoch(ev.get("ts"))
            self.maybe_unused.add(file_id)
        elif not ev.get("uncertain"):
            self.deletes_unsettled.pop(file_id, None)
            self.maybe_unused.discard(file_id)


class VersionQueries:
    """The questions a run's end asks of the log (mixed into ResumeIndex, which holds the
    state): which old versions to take out of their stores, which file objects to delete."""

    versions: VersionIndex
    uploads: UploadIndex
    seen_in_place: set[int]
    states: dict[int, int]
    owners_named: set[str]

    def last_state(self, owner: str, file_id: str) -> State | None:
        raise NotImplementedError

    def named_this_run(self, owner: str, file_id: str) -> bool:
        """Whether this run's manifest named the pair (planned with `expect_repeats` on)."""
        key = pair_key(owner, file_id)
        return key in self.seen_in_place or bool(self.states.get(key, 0) & 64)

    def stale_versions(self, wanted: Callable[[str, str], bool] | None = None,
                       ) -> list[OldVersion]:
        """Old versions to take out of their stores: superseded by a version of their path
        that was attached after them, not the current version of another path, and not a
        pair the manifest wants (`wanted`; by default, one named this run, or any in a store
        this run did not name: it writes only to its manifest's stores)."""
        wanted = wanted or self.kept_by_default
        return [old for old in self.versions.superseded.values() if self.is_stale(old, wanted)]

    def kept_by_default(self, store: str, file_id: str) -> bool:
        """Not to take out of its store: a pair this run named, or any in a store this run
        did not name (it writes only to its manifest's stores)."""
        return store not in self.owners_named or self.named_this_run(store, file_id)

    def is_stale(self, old: OldVersion, wanted: Callable[[str, str], bool]) -> bool:
        """A superseded version still to take out: not the current version of another path,
        not a pair the manifest wants, not detached already."""
        return (not self.versions.held_by_a_path(old.store, old.file_id)
                and not wanted(old.store, old.file_id)
                and self.last_state(old.store, old.file_id) not in DETACHED_STATES)

    def unused_uploads(self, stores: Iterable[str] = (),
                       wanted: Callable[[str, str], bool] | None = None) -> list[str]:
        """File objects of ours to delete (SPEC "Clean-up"): uploaded or adopted by this log,
        not deleted, and in no store: every store a line of ours named (and `stores`, the
        manifest's) has its last word on the pair detached, or none; no pair of this run
        names it (`wanted`, by default: named this run). Possible duplicates are never ours."""
        wanted = wanted or self.named_this_run
        uploads, versions = self.uploads, self.versions
        candidates = versions.maybe_unused & uploads.claimed
        candidates -= uploads.deleted | uploads.unadoptable
        candidates |= versions.deletes_unsettled.keys() - uploads.deleted
        if not candidates:
            return []
        every = versions.stores | self.owners_named | set(stores)
        return sorted(file_id for file_id in candidates
                      if self._in_no_store(file_id, every, wanted))

    def is_unused(self, file_id: str, stores: Iterable[str] = (),
                  wanted: Callable[[str, str], bool] | None = None) -> bool:
        """`unused_uploads` for one file object (one a detach just took out)."""
        uploads = self.uploads
        if (file_id not in uploads.claimed or file_id in uploads.deleted
                or file_id in uploads.unadoptable):
            return False
        every = self.versions.stores | self.owners_named | set(stores)
        return self._in_no_store(file_id, every, wanted or self.named_this_run)

    def _in_no_store(self, file_id: str, stores: Iterable[str],
                     wanted: Callable[[str, str], bool]) -> bool:
        return all(self.last_state(store, file_id) in (None, *DETACHED_STATES)
                   and not wanted(store, file_id) for store in stores)
