"""`attach-runner status MANIFEST`: what the log says of a manifest's pairs, as a table or JSON.
Reads only the manifest and the log: no key, no request.
"""

from __future__ import annotations

import json
import os
from typing import Any

from runner.commands.common import load_index, manifest_items, prepare
from runner.config import Settings
from runner.console import Io
from runner.errors import EXIT_OK
from runner.log.lock import holder_pid
from runner.log.states import Plan, State
from runner.run.summary import format_status, group_reasons


def error_text(value: Any) -> str | None:
    """An error field of the log as text: an edited log may hold a list or object there."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def status_report(settings: Settings, io: Io) -> dict[str, Any]:
    target, source, stats = prepare(settings, io)
    index = load_index(settings, target, io)
    counts = {"attached": 0, "already_attached": 0, "updated": 0, "detached": 0,
              "already_detached": 0, "failed": 0, "refused": 0, "uncertain": 0, "pending": 0}
    to_update = 0
    reasons: dict[tuple[Any, Any, Any], int] = {}
    uploads = index.uploads
    named: set[str] = set()  # the local files the manifest names
    changed = 0
    for item in manifest_items(source, target)():
        if item.local is not None:
            local = item.local
            named.add(local.path)
            record = uploads.paths.get(local.path)
            changed += record is not None and (record.size, record.mtime_ns) != (
                local.size, local.mtime_ns)
            item = uploads.resolve(item, racy=True)
        plan, raw = index.plan(item, retry_failed=False)
        if plan is Plan.DUPLICATE:
            continue
        to_update += plan is Plan.UPDATE
        if raw is None:
            counts["pending"] += 1
        elif raw == State.ATTACHED and index.was_updated(item):
            counts["updated"] += 1
        elif raw == State.ATTACHED:
            counts["attached"] += 1
        elif raw == State.ALREADY_ATTACHED:
            counts["already_attached"] += 1
        elif raw == State.DETACHED:
            counts["detached"] += 1
        elif raw == State.ALREADY_DETACHED:
            counts["already_detached"] += 1
        elif raw in (State.SENT, State.BATCH):
            counts["uncertain"] += 1
        else:
            counts["failed"] += 1
            counts["refused"] += raw == State.REFUSED
            counts["uncertain"] += raw == State.FAILED_UNCERTAIN
            info = index.failed_info(item)
            err = info.error if info and info.error else {}
            reason = (info.status if info else None, error_text(err.get("code")),
                      error_text(err.get("message")) or "")
            reasons[reason] = reasons.get(reason, 0) + 1
    return {
        "manifest": source.display,
        "log": settings.log,
        "target": target.name,
        "runs": index.runs,
        "pairs": stats.pairs,
        **counts,
        "not_in_manifest": sum(1 for _ in index.unseen()),
        # Local files (SPEC "Output"): by a stat, never an error.
        "uploaded_contents": len(uploads.file_of),
        "uncertain_uploads": len(uploads.unsettled),
        "possible_duplicates": sorted(uploads.unadoptable),
        "changed": changed,
        "replaced": index.versions.replaced,
        "files_deleted": len(uploads.deleted),
        # What the next run's end would do (run/leftovers.py), as the log and manifest tell.
        "replaces_pending": len(index.stale_versions()) if uploads.claimed else 0,
        "file_deletes_pending": len(index.unused_uploads()) if uploads.claimed else 0,
        "missing": sum(1 for path in uploads.paths if path not in named
                       and not os.path.exists(path)),
        "to_update": to_update,
        "failed_by_reason": group_reasons(reasons.items()),
        "locked_by": holder_pid(settings.log),
        "last_exit": index.last_run_end.get("exit") if index.last_run_end else None,
    }


def status(settings: Settings, io: Io, *, as_json: bool) -> int:
    report = status_report(settings, io)
    io.out.write((json.dumps(report) if as_json else format_status(report)) + "\n")
    return EXIT_OK
