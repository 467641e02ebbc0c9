"""An operation: what a run does to each pair (attach, detach), beside the target (which
call for which owner). The engine knows only this interface: how the log's last word on a pair
plans it, the `op` its lines carry, and how to start a pair or check a parked one. Each
operation lives in its own module and builds its own parts (attach.py: `Attach`, with its
`Adder` and update.py's `Updater`; detach.py: `Detach`), all sending through the request
layer's `Sender` (runner/requests/sender.py). A new operation is a new module here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from runner.items import Item
from runner.log.resume import ResumeIndex
from runner.log.states import Plan
from runner.requests.outcomes import ItemState, Outcome

if TYPE_CHECKING:
    from runner.requests.sender import Sender


class Operation:
    """One run's operation. Subclasses set `name` and implement the three methods."""

    name: ClassVar[str]
    # New pairs may go in file batches (--batch-size), and a block of the manifest the log
    # has wholly in place may be skipped in bulk (ResumeIndex.all_in_place).
    batches: ClassVar[bool] = False
    skips_blocks: ClassVar[bool] = False

    def __init__(self, sender: Sender) -> None:
        self.sender = sender

    @staticmethod
    def plan(index: ResumeIndex, item: Item, *, retry_failed: bool,
             ) -> tuple[Plan, int | None]:
        raise NotImplementedError

    @staticmethod
    def resolve(index: ResumeIndex, item: Item) -> Item:
        """A path pair named by what the log knows of its file, before it is planned: by
        default the quick check (its content's file object when the log uploaded it)."""
        return index.uploads.resolve(item)

    def op_of(self, plan: Plan) -> str:
        """The `op` of the pair's `sent` line."""
        return self.name

    async def start(self, item: Item, plan: Plan) -> Outcome:
        """Do the pair (SEND, CHECK first, or UPDATE). Raises Unsettled or RunRefused."""
        raise NotImplementedError

    async def settle(self, item: Item, state: ItemState | None) -> Outcome:
        """A parked pair's time has come: check it, and send only if needed."""
        raise NotImplementedError
