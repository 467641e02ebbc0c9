"""The sandbox tests' client session (the sandboxes themselves: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session for the test, closed after it."""
    async with aiohttp.ClientSession() as session:
        yield session
