"""sync's first step: list every named store (each page folded into the store's plan by
runner/operations/listing.py), saying how it goes on stderr; stop on a signal or
--max-runtime (nothing is written yet); and decide whether the listings' errors refuse the
whole run (SPEC "sync").
"""

from __future__ import annotations

import asyncio
import signal

from runner.config import Settings
from runner.console import Io
from runner.operations.listing import list_stores, listing_progress
from runner.requests.outcomes import RunRefused
from runner.requests.sender import Sender
from runner.requests.targets import ApiError
from runner.run.progress import PLAIN_EVERY, is_terminal
from runner.sync.plan import StorePlan


async def list_with_progress(settings: Settings, io: Io, sender: Sender,
                             plans: list[StorePlan]) -> None:
    """List every named store, saying how it goes on stderr (not with --quiet or
    --no-progress)."""
    quiet = settings.quiet or settings.no_progress
    async with listing_progress(plans, lambda: sender.counters.lists,
                                None if quiet else io.err, tty=is_terminal(io.err),
                                every=PLAIN_EVERY):
        await list_stores(sender, [(p.store, p) for p in plans], settings.concurrency)


async def list_named_stores(settings: Settings, io: Io, sender: Sender,
                            plans: list[StorePlan]) -> tuple[str | None, RunRefused | None]:
    """List every named store; a signal or --max-runtime stops the listing (nothing was
    written yet), a refusal (a bad key, the quota, every store's listing refused alike) stops
    the run. Returns why the run stops (None: it goes on) and the refusal."""
    loop = asyncio.get_running_loop()
    listing = asyncio.create_task(list_with_progress(settings, io, sender, plans))
    stopped: str | None = None
    refusal: RunRefused | None = None

    def stop(name: str) -> None:
        nonlocal stopped
        stopped = name
        listing.cancel()

    installed = []
    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        loop.add_signal_handler(sig, stop, name)
        installed.append(sig)
    runtime = settings.max_runtime
    timer = loop.call_later(runtime, stop, "max-runtime") if runtime else None
    try:
        await listing
    except asyncio.CancelledError:
        if stopped is None:
            raise
    except RunRefused as refused_run:
        refusal = refused_run
        stopped = "refused"
    finally:
        if timer is not None:
            timer.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)
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
    if first is None or first[0] is None or not listing_error_refuses(first[0], first[1]):
        return None
    if any(e is None or (e[0], e[1].code) != (first[0], first[1].code) for e in errors):
        return None
    return first[0], first[1]


def listing_error_refuses(status: int, error: ApiError) -> bool:
    """sync's refusal test: whether a listing's failed answer is a refusal (a 4xx other than
    408, 409 and 429), so that the same answer for every named store refuses the run.

    The same question is answered elsewhere with other bounds: runner/run/summary.py
    (`_is_refusal`: any status below 500 but 408, 409, 429) and runner/requests/targets.py
    (`classify_error`: REFUSED for what is not 401, quota, invalid_beta, 408/409/429 or 5xx).
    They are to become one rule in runner/requests/; this is the one place to swap it in.
    `error` is unused until then."""
    return 400 <= status < 500 and status not in (408, 409, 429)
