"""What a run did (the Tally, by outcome) and how it ended (RunResult), and the exit code that
ending means (SPEC "Exit codes"). Shared by the engine, the work planner, the summary and sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    SIGNAL_EXITS,
)
from runner.requests.outcomes import RunRefused
from runner.requests.targets import ApiError, generic_message

# Distinct failure reasons kept for the summary; the rest are counted together.
MAX_REASONS = 200
OTHER_REASONS = (None, None, "other reasons (see attach-runner status)")


@dataclass
class Tally:
    """What this run did, by outcome, plus what it skipped because of the log."""

    pairs: int = 0
    attached: int = 0
    already_attached: int = 0
    updated: int = 0
    detached: int = 0
    already_detached: int = 0
    failed: int = 0
    done_earlier: int = 0  # per the log: attached earlier (run), detached earlier (detach)
    refused_earlier: int = 0
    duplicates: int = 0
    failed_reasons: dict[tuple[int | None, str | None, str], int] = field(default_factory=dict)

    @property
    def handled(self) -> int:
        return (self.attached + self.already_attached + self.updated + self.detached
                + self.already_detached + self.failed + self.done_earlier + self.refused_earlier)

    @property
    def pending(self) -> int:
        return max(0, self.pairs - self.handled)

    def fail(self, status: int | None, error: ApiError | None, count: int = 1) -> None:
        """Count `count` failures of one reason (status, code, the message with its IDs
        generic); past MAX_REASONS distinct ones, they are counted together, so memory stays
        bounded even when every message differs."""
        self.failed += count
        reasons = self.failed_reasons
        reason = _reason(status, error)
        if reason not in reasons and len(reasons) >= MAX_REASONS:
            reason = OTHER_REASONS
        reasons[reason] = reasons.get(reason, 0) + count

    def unfail(self, status: int | None, error: ApiError | None) -> None:
        """Take back one failure counted by `fail` (sync: a full store's refused add, sent
        again)."""
        self.failed -= 1
        reasons = self.failed_reasons
        reason = _reason(status, error)
        if reason not in reasons:
            reason = OTHER_REASONS
        if reasons.get(reason, 0) > 1:
            reasons[reason] -= 1
        else:
            reasons.pop(reason, None)


def _reason(status: int | None, error: ApiError | None) -> tuple[int | None, str | None, str]:
    if error is None:
        return status, None, ""
    return status, error.code, generic_message(error.message)


@dataclass
class RunResult:
    tally: Tally
    stop: str | None  # None | "SIGINT" | "SIGTERM" | "max-runtime" | "refused"
    refusal: RunRefused | None
    elapsed: float
    exit_code: int = 0


def exit_code_for(result: RunResult) -> int:
    if result.stop == "log-write":  # SPEC: 2 wins over everything but 70
        return EXIT_USAGE
    if result.refusal is not None:
        return EXIT_REFUSED
    if result.stop in SIGNAL_EXITS:
        return SIGNAL_EXITS[result.stop]
    if result.stop == "max-runtime":
        return EXIT_RUNTIME
    tally = result.tally
    return EXIT_OK if not (tally.failed or tally.refused_earlier or tally.pending) else EXIT_FAILED
