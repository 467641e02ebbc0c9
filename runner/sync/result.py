"""What sync's phases did to one vector store (SPEC "sync"): its adds, updates and detaches,
its failures, the adds refused because it is full, and whether it was pruned (or why not).
runner/sync/phases.py writes it; runner/sync/report.py reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.items import Item
from runner.requests.outcomes import Outcome


@dataclass
class StoreResult:
    """What this run did to one store."""

    added: int = 0
    updated: int = 0
    detached: int = 0  # detached, or already gone
    failed: int = 0  # adds, updates and checks of manifest pairs that failed in this run
    detach_failed: int = 0
    # Adds refused because the store is full, and how: sent again once its detaches made room.
    full: list[tuple[Item, Outcome]] = field(default_factory=list)
    pruned: bool = False  # every detach of the store went (or it had none)
    not_pruned: str | None = None  # why its detaches did not go

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
