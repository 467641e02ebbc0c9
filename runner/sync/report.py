"""What a sync says at the end: its exit code, the `--json` fields it adds to run's (`stores`,
`failed_files`, `guard`, `list_requests`), the per-store lines of the text summary, and the one
line of a stop by the guard or of a refusal met while listing. Formatting only: what the run
did comes in (the plans, the tallies), text and JSON go out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.config import ApiKey
from runner.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED
from runner.requests.outcomes import RunRefused
from runner.requests.targets import Target
from runner.run.summary import group_reasons, refusal_line, rerun_command
from runner.run.tally import RunResult, Tally, exit_code_for
from runner.sync.plan import StorePlan

# Stores shown one a line in the text summary; --json's `stores` has them all.
SHOWN_STORES = 20


def sync_exit_code(result: RunResult, plans: Sequence[StorePlan], detach_tally: Tally,
                   guard: list[str]) -> int:
    """run's exit code, then sync's: 4 when the guard stopped it; 1 when a store does not
    match its manifest (a detach failed, a store left unpruned, a file whose processing
    failed), though every pair of the manifest is in place."""
    code = exit_code_for(result)
    if code not in (EXIT_OK, EXIT_FAILED):
        return code
    if guard:
        return EXIT_REFUSED
    unmatched = any(p.failed_files or not p.pruned for p in plans)
    if code == EXIT_OK and (detach_tally.failed or unmatched):
        return EXIT_FAILED
    return code


def add_sync_fields(summary: dict[str, Any], tally: Tally, detach_tally: Tally,
                    plans: Sequence[StorePlan], guard: list[str], *, lists: int,
                    argv: Sequence[str]) -> None:
    """run's summary, made a sync's: the extras' detaches, the stores, the guard."""
    summary["detached"] = detach_tally.detached
    summary["already_detached"] = detach_tally.already_detached
    summary["failed"] += detach_tally.failed
    summary["failed_by_reason"] = group_reasons(
        [*tally.failed_reasons.items(), *detach_tally.failed_reasons.items()])
    summary["list_requests"] = lists
    summary["stores"] = [plan.report() for plan in plans]
    summary["failed_files"] = [{"vector_store_id": p.store, "file_id": f, "last_error": e}
                               for p in plans for f, e in p.failed_files]
    summary["guard"] = guard or None
    if guard:
        summary["stopped_by"] = "guard"
        summary["next"] = (f"{rerun_command(['sync', '--dry-run', *argv[1:]])}   (see the "
                           "plan; if it is right, rerun with --max-delete N)")
    elif summary["exit"] == EXIT_OK:
        summary["next"] = "nothing: every named store matches the manifest"


def store_lines(plans: Sequence[StorePlan]) -> str:
    """The stores in a few lines: what each got, and why one was not pruned."""
    lines = ["stores:"]
    for plan in plans[:SHOWN_STORES]:
        done = (f"listed {plan.listed}, added {plan.added}, updated {plan.updated}, "
                f"detached {plan.detached}")
        state = "matches the manifest" if plan.pruned and not plan.failed else (
            f"not pruned: {plan.not_pruned}" if plan.not_pruned else "not finished")
        lines.append(f"  {plan.store}: {done}; {state}")
        for file_id, last_error in plan.failed_files[:3]:
            lines.append(f"    failed processing: {file_id} ({last_error})")
    if len(plans) > SHOWN_STORES:
        lines.append(f"  ... and {len(plans) - SHOWN_STORES} more (--json lists all)")
    return "\n".join(lines)


def guard_error(guard: list[str]) -> str:
    """The one line of a sync the guard stopped before its first detach."""
    return ("the guard stopped the sync before any detach: " + "; ".join(guard)
            + " (more than half of a store, or over --max-delete); check the "
            "manifest with --dry-run, then allow it with --max-delete N")


def refusal_text(refusal: RunRefused, key: ApiKey, target: Target) -> str:
    """The one line for a refusal met while listing (a bad key, the quota, TLS, every store's
    listing refused alike); run's breaker does not watch list requests."""
    error = refusal.error
    signature = " ".join(str(x) for x in (refusal.status, error.code if error else None) if x)
    return refusal_line(refusal.kind, key_source=key.source, other_target=target.other_target,
                        signature=signature or "?", detail=error.message if error else "",
                        size=0, owners=0, op="list")
