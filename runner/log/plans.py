"""How the log's last word on a pair plans it (send, check, update, skip, upload), and on a
block of pairs settles it whole: the planning half of the resume index (resume.py's
ResumeIndex, which holds the state these methods read and mixes them in)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress, repeat
from operator import is_not, rshift

from runner.items import Item, pair_key, pair_keys
from runner.log.states import DETACHED_STATES, UNSETTLED_STATES, FailedInfo, Plan, State

_DIGEST_BITS = (1 << 64) - 1  # of a `digests` value: the digest; above it, the fingerprint

# Marks a key as met in this run's manifest (for de-duplication and "not in the manifest").
SEEN = 64


class Planning:
    """The planning methods of ResumeIndex, over the state it declares (see resume.py)."""

    attached: set[int]
    already: set[int]
    states: dict[int, int]
    seen_in_place: set[int]
    expect_repeats: bool
    failed: dict[int, FailedInfo]
    digests: dict[int, int]
    owners_named: set[str]

    def plan(self, item: Item, *, retry_failed: bool) -> tuple[Plan, int | None]:
        """What to do with a manifest pair, and what the log said of it (None: nothing).
        Marks the pair seen, so a repeat of it in the manifest is a DUPLICATE (with
        `expect_repeats` False, only pairs the log knows are marked)."""
        if self.expect_repeats:
            self.owners_named.add(item.owner)
        if not item.file_id:  # a local file whose content is not known uploaded
            return self._plan_upload(item, retry_failed=retry_failed)
        key = pair_key(item.owner, item.file_id)
        if key in self.attached:
            return self._in_place(key, State.ATTACHED, item)
        if key in self.already:
            return self._in_place(key, State.ALREADY_ATTACHED, item)
        states = self.states
        raw = states.get(key)
        if raw is not None and raw & SEEN:
            return Plan.DUPLICATE, raw & ~SEEN or None
        if raw is None:
            if self.expect_repeats:
                states[key] = SEEN
            return Plan.SEND, None
        states[key] = raw | SEEN
        if raw == State.REFUSED:
            if self._refused_by_other(key, "attach"):
                return Plan.SEND, raw
            return (Plan.SEND if retry_failed else Plan.SKIP_REFUSED), raw
        if raw in (State.SENT, State.FAILED_UNCERTAIN):
            return Plan.CHECK, raw
        if raw == State.BATCH:
            return Plan.FOLLOW, raw
        # Failed and retryable, or detached (attach -> detach -> attach does what it says).
        return Plan.SEND, raw

    def _plan_upload(self, item: Item, *, retry_failed: bool) -> tuple[Plan, int | None]:
        """A path pair whose content is not known uploaded: UPLOAD, unless the manifest
        named it before (DUPLICATE) or its upload was refused for this very content (the
        quick check found the file as the refused line recorded it): SKIP_REFUSED."""
        key = pair_key(item.owner, item.identity)
        raw = self.states.get(key)
        if raw is not None and raw & SEEN:
            return Plan.DUPLICATE, raw & ~SEEN or None
        if raw is not None or self.expect_repeats:
            self.states[key] = (raw or 0) | SEEN
        local = item.local
        if raw == State.REFUSED and local is not None and local.sha256 and not retry_failed:
            return Plan.SKIP_REFUSED, raw
        return Plan.UPLOAD, raw

    def plan_detach(self, item: Item, *, retry_failed: bool) -> tuple[Plan, int | None]:
        """plan() for `detach`: a pair whose last word is detached or already detached is
        DONE; one the log has in place (or never sent) is sent (DELETE); an uncertain one
        (a write of any op may have landed, or a batch holds it) is checked first."""
        key = pair_key(item.owner, item.file_id)
        in_place = (State.ATTACHED if key in self.attached
                    else State.ALREADY_ATTACHED if key in self.already else None)
        if in_place is not None:
            if self.expect_repeats:
                if key in self.seen_in_place:
                    return Plan.DUPLICATE, in_place
                self.seen_in_place.add(key)
            return Plan.SEND, in_place
        states = self.states
        raw = states.get(key)
        if raw is not None and raw & SEEN:
            return Plan.DUPLICATE, raw & ~SEEN or None
        if raw is None:
            if self.expect_repeats:
                states[key] = SEEN
            return Plan.SEND, None
        states[key] = raw | SEEN
        if raw in DETACHED_STATES:
            return Plan.DONE, raw
        if raw == State.REFUSED:
            if self._refused_by_other(key, "detach"):
                return Plan.SEND, raw
            return (Plan.SEND if retry_failed else Plan.SKIP_REFUSED), raw
        if raw in UNSETTLED_STATES:
            return Plan.CHECK, raw
        return Plan.SEND, raw

    def _refused_by_other(self, key: int, op: str) -> bool:
        """A refusal of another operation (an attach refused, then a detach) does not stop
        this one: it is sent (a missing owner is refused again, and says so)."""
        info = self.failed.get(key)
        if info is None:
            return False
        return (info.op == "detach") != (op == "detach")

    def _in_place(self, key: int, state: State, item: Item) -> tuple[Plan, int | None]:
        if self.expect_repeats:
            seen = self.seen_in_place
            if key in seen:
                return Plan.DUPLICATE, state
            seen.add(key)
        options = item.options
        if options is not None and options.manages_attributes and (
                self._recorded(key) != options.digest_value()):
            # SPEC: managed attributes that differ from the recorded digest (or a line that
            # recorded none) get exactly one update; the file is not added again.
            return Plan.UPDATE, state
        return Plan.DONE, state

    def _recorded(self, key: int) -> int | None:
        """The digest of the managed attributes the pair's last in-place `done` recorded."""
        value = self.digests.get(key)
        return None if value is None else value & _DIGEST_BITS

    def all_in_place(self, pairs: Sequence[tuple[str, str]],
                     digests: Callable[[], list[int | None]] | None = None) -> bool:
        """True when the log has every one of `pairs` attached (or already attached), with the
        attributes `digests` gives, and the manifest repeats no pair: plan() would say DONE for
        each, so a rerun skips the block with a few C-level set operations instead of one
        plan() per pair."""
        return not self.expect_repeats and self.settles(pairs, digests)

    def settles(self, pairs: Sequence[tuple[str, str]],
                digests: Callable[[], list[int | None]] | None = None) -> bool:
        """Whether the log has every pair in place and, where `digests` (made only if they
        are) gives one, recorded that digest of its managed attributes (None: not managed)."""
        if (keys := self._keys_in_place(pairs)) is None:
            return False
        if digests is None:
            return True
        wanted = digests()
        recorded = [None if value is None else value & _DIGEST_BITS
                    for value in map(self.digests.get, keys)]
        if None in wanted:  # rows that manage no attributes match whatever was recorded
            managed = list(map(is_not, wanted, repeat(None)))
            return list(compress(recorded, managed)) == list(compress(wanted, managed))
        return recorded == wanted

    def vouches(self, pairs: Sequence[tuple[str, str]], written: Callable[[], list[int]],
                *earlier: Callable[[], list[int]]) -> bool:
        """`settles`, told by the fingerprints of the attributes as written (`written`, made
        only if every pair is in place; 0 where a row gives none), or else by those earlier
        versions made of the same texts (`earlier`, made only if `written` fails): a pair whose
        last `done` recorded its row's very text was left with these attributes. Nothing is
        parsed; a block with a row whose line recorded no fingerprint (a log older still, a row
        the line reader read) or one of another kind fails it, and is left to `settles`."""
        if not self.digests or (keys := self._keys_in_place(pairs)) is None:
            return False
        recorded = list(map(rshift, map(self.digests.get, keys, repeat(0)), repeat(64)))
        return recorded == written() or any(recorded == made() for made in earlier)

    def _keys_in_place(self, pairs: Sequence[tuple[str, str]]) -> list[int] | None:
        """The keys of `pairs` if the log's last word on every one leaves it in place, else
        None. A log with nothing in place (a first run) makes no key: the check and the plan
        each asked it of every block, 7% of a fresh plain batched run's client CPU."""
        if not (self.attached or self.already):
            return None
        keys = pair_keys(pairs)
        if self.attached.issuperset(keys) or self.already.issuperset(
                set(keys).difference(self.attached)):
            return keys
        return None
