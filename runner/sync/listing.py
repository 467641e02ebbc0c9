"""sync's first step: list every named store (each page folded into the store's plan by
runner/operations/listing.py), saying how it goes on stderr; stop on a signal or
--max-runtime (nothing is written yet); and decide whether the listings' errors refuse the
whole run (SPEC "sync").
"""

from __future__ import annotations

import asyncio

from runner.config import Settings
from runner.console import Io
from runner.operations.listing import list_stores, listing_progress
from runner.requests.outcomes import RunRefused
from runner.requests.sender import Sender
from runner.requests.targets import ApiError, refuses_for_good
from runner.run.progress import PLAIN_EVERY, is_terminal
from runner.run.signals import stopping_on_signals
from runner.sync.plan import StorePlan


async def list_with_progress(settings: Settings, io: Io, sender: Sender,
                             plans: list[StorePlan]) -> None:
    """List every named store, saying how it goes on stderr (not with --quiet or
    --no-progress)."""
    quiet = settings.quiet or settings.no_progress
    listings = [plan.listing for plan in plans]
    async with listing_progress(listings, lambda: sender.counters.lists,
                                None if quiet else io.err, tty=is_terminal(io.err),
                                every=PLAIN_EVERY):
        await list_stores(sender, [(listing.store, listing) for listing in listings],
                          settings.concurrency)


async def list_named_stores(settings: Settings, io: Io, sender: Sender,
                            plans: list[StorePlan]) -> tuple[str | None, RunRefused | None]:
    """List every named store; a signal or --max-runtime stops the listing (nothing was
    written yet), a refusal (a bad key, the quota, every store's listing refused alike) stops
    the run. Returns why the run stops (None: it goes on) and the refusal."""
    listing = asyncio.create_task(list_with_progress(settings, io, sender, plans))
    stopped: str | None = None
    refusal: RunRefused | None = None

    def stop(name: str) -> None:
        nonlocal stopped
        stopped = name
        listing.cancel()

    try:
        with stopping_on_signals(stop, max_runtime=settings.max_runtime):
            await listing
    except asyncio.CancelledError:
        if stopped is None:
            raise
    except RunRefused as refused_run:
        refusal = refused_run
        stopped = "refused"
    if stopped is None and (refused := listing_refusal(plans)) is not None:
        refusal = RunRefused("listing", *refused)
        stopped = "refused"
        for plan in plans:
            plan.listing.refused_run = True
            plan.result.not_pruned = "its files could not be listed (the run was refused)"
    return stopped, refusal


def listing_refusal(plans: list[StorePlan]) -> tuple[int, ApiError] | None:
    """The run's refusal when every named store's listing was refused the same way (status
    and code): a wrong --base-url, not a missing store (as run's breaker, which stops a run
    whose first answers are all one refusal). One store that cannot be listed among stores
    that can is that store's failure."""
    errors = [plan.listing.error for plan in plans]
    first = errors[0] if errors else None
    # A 2xx whose body is not a listing (no `data`, no cursor) is that store's failure, never a
    # refusal: only an HTTP error the API repeats for good can say the run itself is wrong.
    if first is None or first[0] is None or first[0] < 400 or not refuses_for_good(first[0]):
        return None
    if any(e is None or (e[0], e[1].code) != (first[0], first[1].code) for e in errors):
        return None
    return first[0], first[1]
