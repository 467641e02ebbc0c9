"""The request layer: the HTTP client (aiohttp; every foreign error mapped in one place), the
sender (limiters, 429 pauses, retries with tenacity), the breaker, the opening window, what an
answer means for each target, and the outcomes an item's attempts come to.

May import: pacing, log, manifest, config and the core modules. Never operations or above.
"""
