"""The update operation: set a file's attributes to the manifest's (SPEC: attributes converge).

An update follows any answer that shows a pair in its store with other managed attributes
than the manifest gives: a 200 to an add (a file the store already held keeps its old ones),
a check that finds it, a batch's file list, or a rerun whose manifest changed them. A
chunking strategy that does not match is only counted: it cannot change in place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runner.attributes import chunking_matches, same_as_canonical, same_attributes
from runner.items import Item
from runner.requests.outcomes import GaveUp, ItemState, Outcome, RunRefused, Unsettled, refusal_kind
from runner.requests.targets import Judgement, VectorStoreFiles, Verdict

if TYPE_CHECKING:
    from runner.requests.sender import Sender


class Updater:
    """Updates for one run's sender (its limiters, retries, counters and settle rule).
    `readd` adds a pair again (the attach operation's add: runner/operations/attach.py) when an
    update finds its file gone from the store."""

    def __init__(self, sender: Sender, readd: Callable[[Item], Awaitable[Outcome]]) -> None:
        self.sender = sender
        self.readd = readd

    async def converge(self, item: Item, state: ItemState, judgement: Judgement,
                        ) -> Outcome | None:
        """The pair is in its store, as `judgement.obj` shows it: update its managed
        attributes when they differ (SPEC: a file added again keeps its old ones), and count
        a chunking strategy that does not match (it cannot change in place). None when all
        is well (or the update went through: `state.updated`); an Outcome when the update
        failed."""
        options = item.options
        obj = judgement.obj
        if options is None or obj is None:
            return None
        if not chunking_matches(options.chunking_strategy, obj.get("chunking_strategy")):
            self.note_chunking_mismatch(item)
        if not options.manages_attributes or same_attributes(options.attributes,
                                                             obj.get("attributes")):
            return None
        result = await self.send(item)
        if isinstance(result, Outcome):
            return result
        state.updated = True
        return None

    @staticmethod
    def as_wanted(items: Sequence[Item], objs: Sequence[Mapping[str, Any]]) -> list[bool]:
        """For each pair and the file object that shows it: whether the object shows it as
        its options want it (converge would do nothing, note nothing). The attributes are
        compared in bulk: a batch's read-back compares a page at a time."""
        wanted: list[bool] = []
        managed: list[int] = []  # where the pair manages attributes: compared below
        shown: list[Any] = []
        canonicals: list[str] = []
        for n, (item, obj) in enumerate(zip(items, objs, strict=True)):
            options = item.options
            wanted.append(options is not None and chunking_matches(
                options.chunking_strategy, obj.get("chunking_strategy")))
            if options is not None and options.manages_attributes:
                managed.append(n)
                shown.append(obj.get("attributes"))
                canonicals.append(options.canonical())
        for n, alike in zip(managed, same_as_canonical(shown, canonicals), strict=True):
            wanted[n] = wanted[n] and alike
        return wanted

    async def converge_listed(self, item: Item, obj: Mapping[str, Any], ending: Outcome,
                              ) -> Outcome:
        """A pair a batch put in place, as its file list shows it: converge its attributes;
        `ending` is its outcome when nothing needs changing."""
        state = ItemState(sent=ending.attempts)
        failed = await self.converge(item, state, Judgement(Verdict.ATTACHED, obj=obj))
        if failed is not None:
            return failed
        if state.updated:
            return Outcome("updated", ending.status, ending.attempts,
                           file_status=ending.file_status, op="update")
        return ending

    def note_chunking_mismatch(self, item: Item) -> None:
        counters = self.sender.counters
        counters.chunking_mismatch += 1
        if len(counters.chunking_examples) < 3:
            counters.chunking_examples.append(f"{item.owner}/{item.file_id}")

    async def send(self, item: Item) -> Judgement | Outcome:
        """One attributes update (retried like a check; a dropped connection after sending
        leaves it uncertain, for a check, never a blind resend). The file object on success;
        an Outcome when it failed."""
        target = self.sender.target
        assert isinstance(target, VectorStoreFiles)
        self.sender.counters.updates += 1
        try:
            answer = await self.sender.request_retrying(
                "POST", target.update_path(item.owner, item.file_id), target.update_body(item),
                store=item.owner, kind="update")
        except GaveUp as exc:
            if exc.uncertain:
                # counted as uncertain by request_retrying already
                # Its check finds the attributes as wanted (this update landed) or sends
                # it again: either way the pair, if it ends in place, was updated.
                due = asyncio.get_running_loop().time() + self.sender.settle
                raise Unsettled(due, ItemState(sent=1, counted=1, uncertain=True, updated=True),
                                exc.status, exc.error) from None
            return Outcome("failed", exc.status, 1, exc.error, retryable=True, op="update")
        judgement = target.judge_check(answer, wait=False)
        if judgement.verdict is Verdict.ATTACHED:
            return judgement
        if judgement.verdict is Verdict.RUN_REFUSED:
            raise RunRefused(refusal_kind(answer.status, judgement.error), answer.status,
                             judgement.error)
        return Outcome("failed", answer.status, 1, judgement.error,
                       retryable=judgement.verdict is not Verdict.REFUSED, op="update")

    async def update(self, item: Item) -> Outcome:
        """A pair the log has in place, whose managed attributes the manifest has changed:
        one update. A file no longer in its store (404) is added again, with its options."""
        result = await self.send(item)
        if isinstance(result, Judgement):
            if item.options is not None and not chunking_matches(
                    item.options.chunking_strategy, (result.obj or {}).get("chunking_strategy")):
                self.note_chunking_mismatch(item)
            return Outcome("updated", 200, 1, file_status=result.file_status, op="update")
        if result.status == 404:
            # Gone from its store (or the store is gone: then the add is refused too).
            return await self.readd(item)
        return result


def manages_attributes(item: Item) -> bool:
    return item.options is not None and item.options.manages_attributes
