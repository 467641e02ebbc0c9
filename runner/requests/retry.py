"""Retrying, shared by the request layer (runner/requests/sender.py) and the operations that retry
an item's write (runner/operations/attach.py): the control-flow exception and the limits."""

from __future__ import annotations

from runner.requests.targets import ApiError

# A 429 storm must not hold one item forever: after this many throttled tries it ends failed
# (retryable) and the next run picks it up.
MAX_THROTTLED = 50
# Longest pause we take from one retry-after header.
MAX_RETRY_AFTER = 120.0


class Retry(Exception):  # noqa: N818 - control flow inside the retry loop
    """A transient failure: try again after a backoff (`wait` overrides it, e.g. 0 after a 429)."""

    def __init__(self, status: int | None, error: ApiError, *, wait: float | None = None) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.wait = wait
