"""What an item's attempts come to: its outcome (the `done` line), the run's counters, and
the endings that leave the attempt loop (a run-level refusal, tries run out, a write whose
outcome is unknown). Shared by every operation (attach, update, detach) and by the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.requests.client import TransportError
from runner.requests.targets import ApiError, Judgement, is_quota


@dataclass(slots=True)
class Outcome:
    """An item's end, as its `done` line says it."""

    outcome: str  # attached | already_attached | updated | detached | already_detached | failed
    status: int | None
    attempts: int
    error: ApiError | None = None
    retryable: bool = False
    uncertain: bool = False
    file_status: str | None = None  # vector store file status, when known
    op: str = "attach"  # the operation the pair's last request made: attach | update | detach


@dataclass(slots=True)
class Counters:
    requests: int = 0
    attach_requests: int = 0
    checks: int = 0  # GET requests made to settle an uncertain outcome
    lists: int = 0  # GET requests for a page of a store's files (sync)
    polls: int = 0  # GET requests made while waiting (--wait)
    retries: int = 0  # requests sent again after a transient failure
    throttled: int = 0  # 429 answers (other than quota)
    uncertain: int = 0  # times a request's outcome became unknown (reset or timeout after sending)
    still_in_progress: int = 0  # --wait gave up while a file was still processing
    updates: int = 0  # attribute updates sent (POST .../files/{file_id})
    uploads: int = 0  # POST /files sent
    chunking_mismatch: int = 0  # files found in their store with another chunking strategy
    chunking_examples: list[str] = field(default_factory=list)  # a few of them, for the warning
    statuses: dict[int, int] = field(default_factory=dict)


class RunRefused(Exception):  # noqa: N818 - a stop, not an error of ours
    """The API refused the run as a whole (401, quota, invalid_beta, or the breaker)."""

    def __init__(self, kind: str, status: int | None, error: ApiError | None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.status = status
        self.error = error


class NotSent(TransportError):
    """The run stopped while this request waited for its turn: it never left."""

    def __init__(self) -> None:
        super().__init__("not sent: the run stopped first", sent=False)


NOT_SENT = ApiError("not_sent", "not sent: the run stopped before this pair's turn", None)

# Answers to a write that may have been applied all the same: a proxy or the server failed
# after the write reached it (SPEC: 503 and 429 are not; they refuse before applying).
UNCERTAIN_STATUSES = frozenset({500, 502, 504})


class GaveUp(Exception):  # noqa: N818 - an ending, reported by the caller
    """Tries ran out (or a POST became uncertain) without a lasting answer."""

    def __init__(self, status: int | None, error: ApiError, *, uncertain: bool) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.uncertain = uncertain


class Unsettled(Exception):  # noqa: N818 - a state, handed to the engine
    """A write whose outcome is unknown (the connection dropped or timed out after sending,
    or a 500/502/504 answer): the server may still apply it, seconds later. SPEC's settle
    rule: check it no sooner than `due` (loop time: when the client stopped waiting, plus
    --settle), never resend it blind. The engine parks the item until then and does other
    work meanwhile; `state` carries the item's tries over to the check."""

    def __init__(self, due: float, state: ItemState, status: int | None,
                 error: ApiError, op: str = "attach") -> None:
        super().__init__(error.message)
        self.due = due
        self.state = state
        self.status = status
        self.error = error
        self.op = op

    def outcome(self) -> Outcome:
        """The item's end when the run stops before the check: retryable and uncertain, so
        the next run checks it first."""
        return Outcome("failed", self.status, self.state.sent, self.error, retryable=True,
                       uncertain=True, op=self.op)


@dataclass(slots=True)
class ItemState:
    sent: int = 0  # attach requests sent (the log's `attempts`)
    counted: int = 0  # those that use an attempt (not throttled)
    throttled: int = 0
    uncertain: bool = False
    checks_done: int = 0
    updated: bool = False  # the pair's attributes were updated to the manifest's


def in_place(status: int | None, state: ItemState, file_status: str | None) -> Outcome:
    """The pair is in its store: `updated` when this run set its attributes, else attached."""
    if state.updated:
        return Outcome("updated", status, state.sent, file_status=file_status, op="update")
    return Outcome("attached", status, state.sent, file_status=file_status)


def file_failed(judgement: Judgement, status: int | None, attempts: int) -> Outcome:
    # SPEC: a file that ends `failed` is not retryable; one that ends `cancelled` is.
    return Outcome("failed", status, attempts, judgement.error,
                   retryable=judgement.file_status == "cancelled",
                   file_status=judgement.file_status)


def refusal_kind(status: int | None, error: ApiError | None) -> str:
    if status == 401:
        return "auth"
    if error is not None and is_quota(error):
        return "quota"
    if error is not None and error.code == "invalid_beta":
        return "beta"
    return "refused"
