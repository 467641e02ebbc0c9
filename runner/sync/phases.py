"""sync's phases over the run's engine: the attach and detach operations planned from the
listing (`ListedAttach`, `ListedDetach`), the guard before the first detach, and what a full
store's refused adds mean (SPEC "sync").
"""

from __future__ import annotations

import re

from runner.items import Item, pair_key
from runner.log.resume import Plan, ResumeIndex
from runner.operations.attach import Attach
from runner.operations.detach import Detach
from runner.requests.outcomes import Outcome
from runner.requests.sender import Sender
from runner.requests.targets import generic_message
from runner.run.tally import Tally
from runner.sync.plan import StorePlan


class ListedAttach(Attach):
    """Attach, planned from the listing: a pair is sent (SEND), or checked first (CHECK: an
    unsettled write in the log), or updated (UPDATE: listed with other attributes)."""

    skips_blocks = False

    def __init__(self, sender: Sender, plans: dict[int, Plan]) -> None:
        super().__init__(sender)
        self._plans = plans

    def plan(self, index: ResumeIndex, item: Item, *,  # type: ignore[override]
             retry_failed: bool) -> tuple[Plan, int | None]:
        return self._plans.get(pair_key(item.owner, item.file_id), Plan.SEND), None


class ListedDetach(Detach):
    """Detach the listed files the manifest does not name (CHECK first: an unsettled write)."""

    def __init__(self, sender: Sender, checks: set[int]) -> None:
        super().__init__(sender)
        self._checks = checks

    def plan(self, index: ResumeIndex, item: Item, *,  # type: ignore[override]
             retry_failed: bool) -> tuple[Plan, int | None]:
        key = pair_key(item.owner, item.file_id)
        return (Plan.CHECK if key in self._checks else Plan.SEND), None


# An add refused because the store holds its maximum of files (the real API's wording is not
# documented: any 400 that says the store is full, or names a maximum or limit of files).
_FULL = re.compile(r"\bis full\b|\bmaximum\b.*\bfiles\b|\bfiles?\b.*\blimit\b|too many files",
                   re.IGNORECASE)


def is_store_full(outcome: Outcome) -> bool:
    error = outcome.error
    return (outcome.outcome == "failed" and outcome.status == 400 and error is not None
            and _FULL.search(error.message) is not None)


def guard_breaches(plans: list[StorePlan], max_delete: int | None) -> list[str]:
    """What stops the run before its first detach (SPEC: the guard, or --max-delete)."""
    if max_delete is not None:
        total = sum(plan.to_detach for plan in plans)
        if total > max_delete:
            return [f"{total} detach(es) planned over --max-delete {max_delete} ("
                    + ", ".join(f"{p.store}: {p.to_detach} of {p.listed}"
                                for p in plans if p.to_detach) + ")"]
        return []
    return [f"{plan.store} would detach {plan.to_detach} of its {plan.listed} listed file(s)"
            for plan in plans if plan.over_guard()]


def uncount(tally: Tally, failures: list[Outcome]) -> None:
    """Take failures back out of a tally (adds a full store refused, sent again)."""
    reasons = tally.failed_reasons
    for outcome in failures:
        tally.failed -= 1
        err = outcome.error
        reason = (outcome.status, err.code if err else None,
                  generic_message(err.message) if err else "")
        if reasons.get(reason, 0) > 1:
            reasons[reason] -= 1
        else:
            reasons.pop(reason, None)


