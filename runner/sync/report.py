"""What a sync says: its exit code, the `--json` fields it adds to run's (`stores`,
`failed_files`, `guard`, `list_requests`), the per-store lines of the text summary and of the
dry run's plan, and the one line of a stop by the guard or of a refusal met while listing.
Formatting only: the stores' sets and results and the tallies come in, text and JSON go out.
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
# How the plan printed by --dry-run shows each set: the first few ids.
SHOW_IDS = 5


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
    unmatched = any(p.listing.failed_files or not p.result.pruned for p in plans)
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
    summary["stores"] = [store_entry(plan) for plan in plans]
    summary["failed_files"] = [{"vector_store_id": p.store, "file_id": f, "last_error": e}
                               for p in plans for f, e in p.listing.failed_files]
    summary["guard"] = guard or None
    if guard:
        summary["stopped_by"] = "guard"
        summary["next"] = (f"{rerun_command(['sync', '--dry-run', *argv[1:]])}   (see the "
                           "plan; if it is right, rerun with --max-delete N)")
    elif summary["exit"] == EXIT_OK:
        summary["next"] = "nothing: every named store matches the manifest"


def store_entry(plan: StorePlan) -> dict[str, Any]:
    """The store's entry in `--json`'s `stores` (and in the dry run's)."""
    listing, sets, result = plan.listing, plan.sets, plan.result
    error = listing.error
    return {
        "vector_store_id": plan.store,
        "listed": listing.listed if error is None else None,
        "manifest_files": len(plan.pairs) + len(plan.uploads),
        "in_place": sets.in_place,
        "added": result.added,
        "updated": result.updated,
        "detached": result.detached,
        "failed": result.failed + result.detach_failed + plan.unlisted_failed,
        "to_add": len(sets.adds), "to_update": len(sets.updates),
        "to_check": len(sets.checks), "to_detach": sets.to_detach,
        # Local files: contents to upload first, listed old versions their replace takes out.
        "to_upload": len(plan.uploads), "to_replace": len(sets.replacing),
        "pruned": result.pruned,
        "not_pruned": result.not_pruned,
        "failed_files": [{"file_id": f, "last_error": e} for f, e in listing.failed_files],
        "listing_error": None if error is None else {"status": error[0],
                                                     **error[1].as_log()},
    }


def plan_lines(plan: StorePlan) -> list[str]:
    """The store's plan as --dry-run prints it."""
    listing, sets = plan.listing, plan.sets
    if listing.error is not None:
        status, error = listing.error
        return [f"{plan.store}: could not be listed ({status or 'no answer'}: "
                f"{error.message}); nothing would be written to it"]
    parts = [f"{plan.store}: listed {listing.listed}, in place {sets.in_place}"]
    uploads = [item.local.path for item in plan.uploads if item.local is not None]
    for word, items in (("upload and add", uploads), ("add", sets.adds),
                        ("update", sets.updates),
                        ("check first", sets.checks + sets.detach_checks),
                        ("replace (old version out)", sets.replacing),
                        ("detach", sets.detaches)):
        if items:
            shown = ", ".join(items[:SHOW_IDS])
            more = ", ..." if len(items) > SHOW_IDS else ""
            parts.append(f"  {word} {len(items)}: {shown}{more}")
    for file_id, last_error in listing.failed_files:
        parts.append(f"  failed processing: {file_id} ({last_error})")
    return parts


def store_lines(plans: Sequence[StorePlan]) -> str:
    """The stores in a few lines: what each got, and why one was not pruned."""
    lines = ["stores:"]
    for plan in plans[:SHOWN_STORES]:
        result = plan.result
        done = (f"listed {plan.listing.listed}, added {result.added}, updated "
                f"{result.updated}, detached {result.detached}")
        state = "matches the manifest" if result.pruned and not result.failed else (
            f"not pruned: {result.not_pruned}" if result.not_pruned else "not finished")
        lines.append(f"  {plan.store}: {done}; {state}")
        for file_id, last_error in plan.listing.failed_files[:3]:
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
