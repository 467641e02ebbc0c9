"""What the log says of each pair, and so what this run must do with it (send, check, skip).

Memory is the point here: a million pairs must fit in a small machine. Each pair the log knows is
kept as a 128-bit int key (items.pair_key, 48 bytes) and a small-int state (shared objects);
only failed pairs keep their details (for `status` and `failed`), and only unfinished batches
keep their file lists. (pair_key hashes any str, so an edited log with "\ud800" in an ID
cannot crash the reader.)

Speed matters too: a rerun over a million done pairs reads two million log lines. `load_log`
takes the common lines in bulk from reader.scan_log and folds them with C-level map/zip/update,
never a Python statement per line; the rare others go through `load` one by one.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import add, itemgetter
from typing import Any

from runner.items import Item, ascii_pair_keys, pair_key, pair_keys, pin_mmap_threshold
from runner.log.plans import SEEN, Planning
from runner.log.reader import FastRow, scan_log
from runner.log.states import FailedInfo, State
from runner.log.uploads import UPLOAD_EVENTS, UploadIndex
from runner.log.versions import DELETE_EVENTS, DETACHED_OUTCOMES, VersionIndex, VersionQueries

# A fast log row's outcome (empty for "sent") -> its state: see reader.scan_log. `updated` leaves
# the pair attached (and marked in ResumeIndex.updated): its own code here, ATTACHED after.
_UPDATED = 0
_FAST_STATE = {
    b"": int(State.SENT),
    b"attached": int(State.ATTACHED),
    b"already_attached": int(State.ALREADY_ATTACHED),
    b"updated": _UPDATED,
}
_PAIR_OF = itemgetter(1, 2)
_OWNER_OF = itemgetter(0)
_OUTCOME_OF = itemgetter(3)
_DIGEST_OF = itemgetter(4)
_WRITTEN_OF = itemgetter(5)
_DONE_OF = itemgetter(0)
_IS_ATTACHED = frozenset({int(State.ATTACHED), _UPDATED}).__contains__
_IS_ALREADY = int(State.ALREADY_ATTACHED).__eq__
_IS_SENT = int(State.SENT).__eq__
_IS_UPDATED = _UPDATED.__eq__


@dataclass
class ResumeIndex(Planning, VersionQueries):
    """The last word of the log on each pair. Pairs in place (nearly all of a big log) are
    keys in two sets, which cost a third less than a dict; every other state is in `states`.
    A key is in at most one of the three."""

    owner_column: str
    attached: set[int] = field(default_factory=set)  # State.ATTACHED
    updated: set[int] = field(default_factory=set)  # of `attached`: those whose outcome was updated
    already: set[int] = field(default_factory=set)  # State.ALREADY_ATTACHED
    states: dict[int, int] = field(default_factory=dict)  # pair_key -> other State (| SEEN)
    seen_in_place: set[int] = field(default_factory=set)  # pairs in place the manifest named
    # False when the manifest is known to hold no repeated pair (its check counted none):
    # plan() then needs no mark for a pair the log does not know, and memory stays flat for a
    # new manifest. status and failed keep it True (they count pairs the manifest lacks).
    expect_repeats: bool = True
    owners_named: set[str] = field(default_factory=set)  # with expect_repeats: stores planned
    failed: dict[int, FailedInfo] = field(default_factory=dict)
    batch_of: dict[int, str] = field(default_factory=dict)  # pair -> batch id (State.BATCH)
    # pair -> digest (64-bit int) of the managed attributes its last in-place `done` recorded,
    # with the fingerprint of their text as written above it (`<< 64`) when the line has one;
    # only pairs whose manifest manages attributes have one, so a plain log costs nothing here.
    digests: dict[int, int] = field(default_factory=dict)
    # batch id -> (store, file ids)
    batch_files: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    runs: int = 0
    last_run_end: Mapping[str, Any] | None = None
    # Local files: each path's content as last read, our uploads (log/uploads.py).
    uploads: UploadIndex = field(default_factory=UploadIndex)
    # Local files' versions in their stores, deletes of our file objects (log/versions.py).
    versions: VersionIndex = field(default_factory=VersionIndex)

    def load_log(self, path: str, *, warn: Callable[[str], None]) -> None:
        """Fold the log at `path` (what `load(read_log(path))` does, in bulk)."""
        pin_mmap_threshold()
        # The rows are tuples, which the cyclic garbage collector tracks: two million of them,
        # all freed by reference counting, made it walk the young generation ~3,000 times for
        # nothing (a quarter of the fold's time). It is back on when the log is read.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for part in scan_log(path, self.owner_column, warn=warn):
                if isinstance(part, list):
                    self._load_fast(part)
                else:
                    self.load((part,))
        finally:
            if collecting:
                gc.enable()

    def _load_fast(self, rows: list[FastRow]) -> None:
        """A run of "sent" and "done" (in place) lines: the last word on each pair stands."""
        # Last word per pair within the run first (a pair's "sent" is mostly followed by its
        # "done" a few lines on): half the keys to make.
        last = dict(zip(map(_PAIR_OF, rows), rows, strict=True))
        keys = ascii_pair_keys(list(last))
        words = list(last.values())
        outcomes = list(map(_OUTCOME_OF, words))
        attached: list[int]
        already: list[int] = []
        sent: list[int] = []
        if outcomes.count(b"attached") == len(outcomes):  # a finished run's lines: all done
            self._load_fast_extras(keys, words, ())
            attached = keys
        else:
            codes = list(map(_FAST_STATE.__getitem__, outcomes))
            self._load_fast_extras(keys, words, codes)
            attached = list(compress(keys, map(_IS_ATTACHED, codes)))
            already = list(compress(keys, map(_IS_ALREADY, codes)))
            sent = list(compress(keys, map(_IS_SENT, codes)))
        self.attached.update(attached)
        if self.uploads.claimed:  # a file_id row may name a file object of ours: where?
            self.versions.stores.update(owner.decode() for owner in
                                        set(map(_OWNER_OF, last)))
        if self.already:
            self.already.difference_update(attached)
        self.already.update(already)
        if already and self.attached:
            self.attached.difference_update(already)
        if self.states and (attached or already):
            for key in self.states.keys() & {*attached, *already}:
                del self.states[key]
        if sent:
            self.states.update(zip(sent, repeat(int(State.SENT))))
            self.attached.difference_update(sent)
            self.already.difference_update(sent)
        if self.failed or self.batch_of:
            # A pair in place is no longer failed, nor waiting in a batch.
            done_pairs = set(compress(map(_PAIR_OF, rows), map(_DONE_OF, rows)))
            done = set(ascii_pair_keys(list(done_pairs)))
            for key in done & self.failed.keys():
                del self.failed[key]
            for key in done & self.batch_of.keys():
                del self.batch_of[key]

    def _load_fast_extras(self, keys: list[int], words: list[FastRow],
                          codes: Sequence[int]) -> None:
        """The digests and `updated` marks of a fast run (each pair's last word in it; `codes`
        their states, empty when all are attached)."""
        digests = self.digests
        texts = list(map(_DIGEST_OF, words))
        if any(map(_WRITTEN_OF, words)):  # the fingerprint's hex digits before the digest's
            texts = list(map(add, map(_WRITTEN_OF, words), texts))
        if all(texts):  # every pair's last word in place with a digest: taken in bulk
            digests.update(zip(keys, map(int, texts, repeat(16)), strict=True))
        elif digests or any(texts):
            for key, digest in zip(keys, texts, strict=True):
                if digest:
                    digests[key] = int(digest, 16)
                else:  # a sent line, or in place without one
                    digests.pop(key, None)
        if self.updated or _UPDATED in codes:
            marked = set(compress(keys, map(_IS_UPDATED, codes)))
            self.updated.difference_update(set(keys) - marked)
            self.updated.update(marked)

    def _set(self, key: int, state: State) -> None:
        """The log's new last word on a pair."""
        if state is State.ATTACHED:
            self.attached.add(key)
            self.already.discard(key)
            self.states.pop(key, None)
        elif state is State.ALREADY_ATTACHED:
            self.already.add(key)
            self.attached.discard(key)
            self.states.pop(key, None)
        else:
            self.states[key] = state
            self.attached.discard(key)
            self.already.discard(key)

    def load(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Fold the log's events; for each pair the last word stands."""
        owner_col = self.owner_column
        failed = self.failed
        for ev in events:
            kind = ev.get("event")
            if kind == "done":
                owner, fid = ev.get(owner_col), _identity(ev)
                if not isinstance(owner, str) or not isinstance(fid, str):
                    continue  # written for the other target: not this manifest's pairs
                key = pair_key(owner, fid)
                outcome = ev.get("outcome")
                self._note_extras(key, ev)
                if outcome in ("attached", "updated"):
                    self._set(key, State.ATTACHED)
                    failed.pop(key, None)
                elif outcome == "already_attached":
                    self._set(key, State.ALREADY_ATTACHED)
                    failed.pop(key, None)
                elif outcome == "detached":
                    self._set(key, State.DETACHED)
                    failed.pop(key, None)
                elif outcome == "already_detached":
                    self._set(key, State.ALREADY_DETACHED)
                    failed.pop(key, None)
                else:
                    retryable = bool(ev.get("retryable"))
                    uncertain = bool(ev.get("uncertain"))
                    if not retryable:
                        self._set(key, State.REFUSED)
                    elif uncertain:
                        self._set(key, State.FAILED_UNCERTAIN)
                    else:
                        self._set(key, State.FAILED_RETRYABLE)
                    status = ev.get("status")
                    error = ev.get("error")
                    op = ev.get("op")
                    failed[key] = FailedInfo(
                        owner, fid, status if isinstance(status, int) else None,
                        error if isinstance(error, Mapping) else None, retryable, uncertain,
                        op if isinstance(op, str) else "attach",
                    )
                self.batch_of.pop(key, None)
                if "path" in ev:
                    self._note_path_pair(owner, fid, ev)
                # (A line a tool rewrote may hold anything: a list is no outcome.)
                detached = isinstance(outcome, str) and outcome in DETACHED_OUTCOMES
                if "path" in ev or detached:
                    # The id as our `uploaded` line spelled it, when it is one of ours: one
                    # string for file_of and the versions (100,000 of them in a big folder).
                    sha = ev.get("sha256")
                    same = self.uploads.file_of.get(sha) if isinstance(sha, str) else None
                    self.versions.note_end(key, owner, same if same == fid else fid, outcome,
                                           ev.get("path"), ev.get("file_status"))
                    self.versions.replaced += ev.get("op") == "detach-version" and detached
            elif kind == "sent":
                owner, fid = ev.get(owner_col), _identity(ev)
                if isinstance(owner, str) and isinstance(fid, str):
                    key = pair_key(owner, fid)
                    self._set(key, State.SENT)
                    self._note_extras(key, ev)
                    if "path" in ev:
                        self.uploads.note_path(ev)
            elif kind in UPLOAD_EVENTS:
                self.uploads.load(ev)
                if kind == "uploaded" and isinstance(file_id := ev.get("file_id"), str):
                    self.versions.maybe_unused.add(file_id)  # until a line puts it in place
                if kind in DELETE_EVENTS:
                    self.versions.load_delete(ev)
            elif kind in ("batch-sent", "batch-created"):
                self._load_batch(ev, created=kind == "batch-created")
            elif kind == "run-start":
                self.runs += 1
            elif kind == "run-end":
                self.last_run_end = ev

    def note_done(self, owner: str, file_id: str, outcome: str, *, retryable: bool,
                  uncertain: bool, op: str) -> None:
        """A `done` this run wrote for a pair no manifest row names (a replaced version's
        detach), folded in as the next run will read it: the run's end asks after it."""
        self.load(({"event": "done", self.owner_column: owner, "file_id": file_id,
                    "outcome": outcome, "retryable": retryable, "uncertain": uncertain,
                    "op": op},))

    def _note_path_pair(self, owner: str, identity: str, ev: Mapping[str, Any]) -> None:
        """A path pair's `done`: the file's content as read (the quick check's); once it
        names a file object, an earlier failure of its upload no longer stands."""
        self.uploads.note_path(ev)
        self.versions.note_store(owner)
        path = ev.get("path")
        if (identity and not identity.startswith("\0") and isinstance(path, str)
                and (self.states or self.failed)):
            unsent = pair_key(owner, "\0" + path)
            self.states.pop(unsent, None)
            self.failed.pop(unsent, None)

    def _note_extras(self, key: int, ev: Mapping[str, Any]) -> None:
        """A done line's attributes digest and `updated` mark (a sent line clears both)."""
        digest = ev.get("attributes_digest") if ev.get("event") == "done" else None
        if isinstance(digest, str) and len(digest) == 16:
            written = ev.get("attributes_written")
            if isinstance(written, str) and len(written) == 16:
                digest = written + digest  # the fingerprint above the digest, as in bulk
            try:
                self.digests[key] = int(digest, 16)
            except ValueError:
                self.digests.pop(key, None)
        else:
            self.digests.pop(key, None)
        if ev.get("outcome") == "updated" and ev.get("event") == "done":
            self.updated.add(key)
        else:
            self.updated.discard(key)

    def _load_batch(self, ev: Mapping[str, Any], *, created: bool) -> None:
        store, fids = ev.get(self.owner_column), ev.get("file_ids")
        if not isinstance(store, str) or not isinstance(fids, list):
            return
        batch_id = ev.get("batch_id")
        files = [fid for fid in fids if isinstance(fid, str)]
        # Every file of the line takes the same state, so they are set in bulk: a rerun after
        # a batched run reads two such lines for each file (batch-sent, batch-created).
        keys = pair_keys(list(zip(repeat(store), files)))
        if created and isinstance(batch_id, str):
            self._set_all(keys, State.BATCH)
            self.batch_of.update(dict.fromkeys(keys, batch_id))
            self.batch_files[batch_id] = (store, files)
        else:
            self._set_all(keys, State.SENT)
        if self.uploads.claimed:
            self.versions.note_store(store)

    def _set_all(self, keys: list[int], state: State) -> None:
        """`_set` of each of `keys` to one state that does not leave a pair in place."""
        self.states.update(dict.fromkeys(keys, state))
        self.attached.difference_update(keys)
        self.already.difference_update(keys)

    def last_state(self, owner: str, file_id: str) -> State | None:
        """The log's last word on a pair, without planning it (sync plans from the listing)."""
        key = pair_key(owner, file_id)
        if key in self.attached:
            return State.ATTACHED
        if key in self.already:
            return State.ALREADY_ATTACHED
        raw = self.states.get(key)
        return None if raw is None or not raw & ~SEEN else State(raw & ~SEEN)

    def records_in_place(self, owner: str, file_id: str, digest: int | None) -> bool:
        """Whether the log already says the pair is in place with the manifest's managed
        attributes, whose digest is `digest` (None: not managed); what a `done` line for it
        would say again."""
        key = pair_key(owner, file_id)
        if key not in self.attached and key not in self.already:
            return False
        return digest is None or self._recorded(key) == digest

    def batch_for(self, item: Item) -> str | None:
        return self.batch_of.get(pair_key(item.owner, item.file_id))

    def was_updated(self, item: Item) -> bool:
        """Whether the log's last word on an attached pair was `updated`."""
        return pair_key(item.owner, item.file_id) in self.updated

    def failed_info(self, item: Item) -> FailedInfo | None:
        return self.failed.get(pair_key(item.owner, item.file_id or item.identity))

    def unseen(self) -> Iterator[int]:
        """States of pairs the log knows but this manifest did not name (after planning every
        manifest pair with `expect_repeats` on)."""
        seen = self.seen_in_place
        yield from repeat(int(State.ATTACHED), len(self.attached - seen))
        yield from repeat(int(State.ALREADY_ATTACHED), len(self.already - seen))
        for raw in self.states.values():
            if not raw & SEEN:
                yield raw


def _identity(ev: Mapping[str, Any]) -> object:
    """What a pair line names: its file_id, or for a path pair whose content was never
    uploaded (file_id "") its path, as Item.identity spells it."""
    file_id = ev.get("file_id")
    if file_id == "" and isinstance(path := ev.get("path"), str):
        return "\0" + path
    return file_id
