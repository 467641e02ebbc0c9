"""The request layer of one sending command: its client, its limiters and its sender, opened
and closed together."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from runner.config import ApiKey, Settings
from runner.manifest import ManifestStats
from runner.pacing.limiter import RateLimiter
from runner.pacing.store_limiter import KeyedLimiter
from runner.requests.breaker import Breaker
from runner.requests.client import ApiClient
from runner.requests.sender import Sender
from runner.requests.targets import Target


@contextlib.asynccontextmanager
async def api_session(settings: Settings, target: Target, stats: ManifestStats,
                      key: ApiKey) -> AsyncIterator[tuple[Sender, RateLimiter]]:
    """The client, limiters and sender of one sending command."""
    limiter = RateLimiter(settings.rpm, auto=settings.rpm is None)
    store_limiter = KeyedLimiter(settings.store_rpm) if target.supports_batches else None
    async with ApiClient(settings.base_url, api_key=key.reveal(),
                         beta_header=target.beta_header, org=settings.org,
                         project=settings.project, concurrency=settings.concurrency,
                         timeout=settings.timeout) as client:
        yield Sender(
            client, target, limiter=limiter, store_limiter=store_limiter,
            max_attempts=settings.max_attempts, backoff_initial=settings.backoff_initial,
            backoff_max=settings.backoff_max, wait=settings.wait,
            wait_timeout=settings.wait_timeout,
            breaker=Breaker(manifest_owners=stats.owners), settle=settings.settle,
            upload_stall=settings.timeout), limiter
