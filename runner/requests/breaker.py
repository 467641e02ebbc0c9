"""The breaker: stops a run whose first answers are all one permanent refusal."""

from __future__ import annotations

from runner.items import Item
from runner.requests.targets import ApiError, Verdict


class Breaker:
    """Stops a run whose first answers are all one permanent refusal (a wrong base URL, say).

    Trips when the first `size` answers to first attach requests are all the same refusal
    (status and code), with no success, spanning at least `min_owners` owners (or every owner
    the manifest has, if fewer). Disarmed for good by any other answer. When the first `size`
    answers name too few owners (the opening is interleaved by owner, so only a manifest
    with few owners in its first 256 pairs), it keeps watching up to `limit` answers, then
    disarms: a bounded cost, never a whole manifest."""

    def __init__(self, *, size: int = 20, min_owners: int = 3, manifest_owners: int,
                 limit: int = 100) -> None:
        self.size = size
        self.limit = limit
        self.need_owners = max(1, min(min_owners, manifest_owners))
        self.armed = True
        self.signature: tuple[int | None, str | None] | None = None
        self.owners: set[str] = set()
        self.seen = 0
        self.items: list[Item] = []  # the refused items of the window (re-logged retryable)

    def observe(self, item: Item, verdict: Verdict, status: int | None, error: ApiError | None,
                ) -> bool:
        """Record a first attach answer; True when the breaker trips."""
        if not self.armed:
            return False
        if verdict is not Verdict.REFUSED:
            self.armed = False
            return False
        sig = (status, error.code if error else None)
        if self.signature is None:
            self.signature = sig
        elif sig != self.signature:
            self.armed = False
            return False
        self.seen += 1
        self.items.append(item)
        if len(self.owners) < self.need_owners:
            self.owners.add(item.owner)
        if self.seen >= self.size and len(self.owners) >= self.need_owners:
            self.armed = False
            return True
        if self.seen >= self.limit:
            self.armed = False
            self.items.clear()
        return False
