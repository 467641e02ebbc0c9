"""What a vector store holds: `GET /vector_stores/{id}/files`, every page, every status.

`sync` lists each store the manifest names before it writes anything. A page (at most 100
files) is read, folded into the store's listing (runner/sync/store.py: `StoreListing.take`) and
dropped, so memory grows with what the plan keeps (a flag per manifest pair, the ids of files
to detach), never with the listing's JSON. Stores are listed concurrently, each page under the
run's rate limiter like any request; the pages of one store follow their cursor in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol, TextIO
from urllib.parse import quote

from runner.requests.outcomes import GaveUp
from runner.requests.sender import Sender
from runner.requests.targets import ApiError, api_error

PAGE_SIZE = 100  # the API's most per page
# A listing that pages on past this many files is not a vector store we can sync safely.
MAX_PAGES = 1_000_000
NO_CURSOR = ApiError("bad_listing", "the store's file list said has_more but gave no last_id",
                     None)


class Listed(Protocol):
    """What takes a store's pages (sync's StoreListing)."""

    listed: int  # files taken so far

    def take(self, entry: Mapping[str, Any]) -> None: ...

    def listing_failed(self, status: int | None, error: ApiError) -> None: ...


async def list_store(sender: Sender, store: str, into: Listed) -> None:
    """Every file of `store`, page by page, into `into`. A listing that cannot be finished
    (the store does not exist, tries ran out) is reported to `into.listing_failed`, and the
    store is not written to. RunRefused (a bad key, the quota) goes up to stop the run."""
    path = f"/vector_stores/{store}/files?limit={PAGE_SIZE}"
    after: str | None = None
    for _ in range(MAX_PAGES):
        page = path if after is None else f"{path}&after={quote(after, safe='')}"
        try:
            answer = await sender.request_retrying("GET", page, kind="list")
        except GaveUp as exc:
            into.listing_failed(exc.status, exc.error)
            return
        if not 200 <= answer.status < 300:
            into.listing_failed(answer.status, api_error(answer.status, answer.body,
                                                         answer.text))
            return
        body = answer.body
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, list):
            into.listing_failed(answer.status, ApiError(
                "bad_listing", "the store's file list had no `data` list", None))
            return
        for entry in data:
            if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
                into.take(entry)
        assert isinstance(body, Mapping)
        if not body.get("has_more"):
            return
        last = body.get("last_id")
        if not isinstance(last, str) or not last or last == after:
            last = data[-1].get("id") if data and isinstance(data[-1], Mapping) else None
            if not isinstance(last, str) or last == after:
                into.listing_failed(answer.status, NO_CURSOR)
                return
        after = last


async def list_stores(sender: Sender, plans: Sequence[tuple[str, Listed]],
                      concurrency: int) -> None:
    """List every store, at most `concurrency` at once (each store's pages in order)."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(store: str, into: Listed) -> None:
        async with gate:
            await list_store(sender, store, into)

    tasks = [asyncio.create_task(one(store, into)) for store, into in plans]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


@contextlib.asynccontextmanager
async def listing_progress(plans: Sequence[Listed], pages: Callable[[], int],
                           stream: TextIO | None, *, tty: bool,
                           every: float) -> AsyncIterator[None]:
    """Say how the listing goes while it runs, on `stream` (stderr; None: say nothing): on a
    terminal one line redrawn twice a second and wiped at the end; elsewhere a plain line
    every `every` seconds (cron mail stays short). `pages`: list requests sent so far."""
    if stream is None:
        yield
        return
    out = stream

    def line() -> str:
        files = sum(plan.listed for plan in plans)
        return (f"listing {len(plans)} store(s): {pages():,} page(s) requested, "
                f"{files:,} file(s) listed so far")

    async def report() -> None:
        while True:
            await asyncio.sleep(0.5 if tty else every)
            out.write(f"\r{line()}\x1b[K" if tty else line() + "\n")
            out.flush()

    task = asyncio.create_task(report())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if tty:
            out.write("\r\x1b[K")
            out.flush()
