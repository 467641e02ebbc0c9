"""`sync --dry-run`: list every named store, plan, print the plan per store (adds, updates,
checks, detaches, with the first few ids of each); list requests only (so the key), no lock,
no log, nothing written (SPEC "sync").
"""

from __future__ import annotations

import json

from runner.config import ApiKey, Settings
from runner.console import Io
from runner.errors import EXIT_OK, EXIT_REFUSED
from runner.log.resume import ResumeIndex
from runner.manifest import ManifestStats
from runner.requests.outcomes import RunRefused
from runner.requests.targets import Target
from runner.run.session import api_session
from runner.sync.listing import list_with_progress, listing_refusal
from runner.sync.phases import guard_breaches
from runner.sync.plan import StorePlan
from runner.sync.report import plan_lines, refusal_text, store_entry


async def show_sync_plan(settings: Settings, io: Io, target: Target, stats: ManifestStats,
                  key: ApiKey, index: ResumeIndex, plans: list[StorePlan],
                  manifest: str) -> int:
    """`sync --dry-run`: list, plan, print the plan; nothing written anywhere. A refusal of
    the run (a bad key; every store's listing refused alike) is exit 4, as for a real sync."""
    async with api_session(settings, target, stats, key) as (sender, _):
        try:
            await list_with_progress(settings, io, sender, plans)
        except RunRefused as refusal:
            return _dry_refused(settings, io, refusal_text(refusal, key, target))
        lists = sender.counters.lists
    refused = listing_refusal(plans)
    if refused is not None:
        return _dry_refused(settings, io, refusal_text(RunRefused("listing", *refused), key,
                                                       target))
    for plan in plans:
        plan.plan(index, retry_failed=settings.retry_failed)
    breaches = guard_breaches([p for p in plans if p.listing.error is None],
                              settings.max_delete)
    sets = [plan.sets for plan in plans]
    totals = {"uploads": sum(len(p.uploads) for p in plans if p.listing.error is None),
              "replaces": sum(len(s.replacing) for s in sets),
              "adds": sum(len(s.adds) for s in sets),
              "updates": sum(len(s.updates) for s in sets),
              "checks": sum(len(s.checks) + len(s.detach_checks) for s in sets),
              "detaches": sum(s.to_detach for s in sets),
              "in_place": sum(s.in_place for s in sets)}
    if settings.json:
        io.out.write(json.dumps({"dry_run": True, "exit": EXIT_OK, "op": "sync",
                            "manifest": manifest, "log": settings.log,
                            "list_requests": lists, **totals,
                            "guard": breaches or None,
                            "stores": [store_entry(p) for p in plans]}) + "\n")
        return EXIT_OK
    for plan in plans:
        io.out.write("\n".join(plan_lines(plan)) + "\n")
    io.out.write(f"dry run: {totals['uploads']} upload(s), {totals['adds']} add(s), "
                 f"{totals['updates']} update(s), {totals['replaces']} replace(s), "
                 f"{totals['checks']} check(s) and {totals['detaches']} detach(es) planned in "
                 f"{len(plans)} store(s), {totals['in_place']} in place; {lists} list "
                 "request(s) sent, nothing written\n")
    for breach in breaches:
        io.out.write(f"guard: {breach}: a real sync would stop before any detach (exit 4)\n")
    return EXIT_OK


def _dry_refused(settings: Settings, io: Io, error: str) -> int:
    io.err.write(f"attach-runner: error: {error}\n")
    if settings.json:
        io.out.write(json.dumps({"dry_run": True, "exit": EXIT_REFUSED, "op": "sync",
                                 "error": error}) + "\n")
    return EXIT_REFUSED
