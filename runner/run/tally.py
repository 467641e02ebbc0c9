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
