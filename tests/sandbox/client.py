"""Calling the sandbox over real loopback HTTP from its tests: the headers, one request
and its answer, an error's envelope, a record entry, and the URLs of owners."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from runner.sandbox import SandboxThread

KEY = "sk-sandbox"
V1 = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v1"}
V2 = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
NO_BETA = {"Authorization": f"Bearer {KEY}"}

StartSandbox = Callable[..., SandboxThread]  # the `sandbox` fixture (tests/conftest.py)
Http = aiohttp.ClientSession  # the `http` fixture (conftest.py here)


@dataclass
class Answer:
    """One answer as the tests read it."""

    status: int
    body: Any  # parsed JSON, None for a non-JSON body
    text: str
    headers: CIMultiDictProxy[str]


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] = V1,
    data: Any = None,
    timeout: float = 10,
) -> Answer:
    """Send one request (default headers: V1, the assistants beta) and read its answer.
    `data`: a body as aiohttp takes it (bytes, a FormData, an async iterator of bytes)."""
    async with http.request(
        method,
        url,
        json=body,
        data=data,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as resp:
        text = await resp.text()
        parsed = json.loads(text) if resp.content_type == "application/json" else None
        return Answer(resp.status, parsed, text, resp.headers)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` without blocking this loop (a server in it must go on serving); fail
    the test at `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the sandbox"
        await asyncio.sleep(0.01)


def error_of(answer: Answer) -> dict[str, Any]:
    """The answer's `error`, after checking the envelope is exactly OpenAI's."""
    assert set(answer.body) == {"error"}
    error: dict[str, Any] = answer.body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def pair(**counts: Any) -> dict[str, Any]:
    """A record "pairs" entry: zeros (not preloaded) but for `counts`."""
    entry: dict[str, Any] = {
        "attached": 0,
        "posts_after_attached": 0,
        "preloaded": False,
        "updated": 0,
        "updates_when_absent": 0,
        "detached": 0,
        "deletes_when_absent": 0,
    }
    unknown = set(counts) - set(entry)
    assert not unknown, unknown
    return {**entry, **counts}


def asst(sb: SandboxThread, assistant_id: str = "asst_1") -> str:
    """The assistant's files URL."""
    return f"{sb.base_url}/assistants/{assistant_id}/files"


def store(sb: SandboxThread, store_id: str = "vs_1") -> str:
    """The vector store's own URL."""
    return f"{sb.base_url}/vector_stores/{store_id}"


def owner_url(sb: Any, kind: str, owner_id: str) -> str:
    """The owner's own URL: `/assistants/ID` or `/vector_stores/ID`."""
    return f"{sb.base_url}/{'assistants' if kind == 'assistant' else 'vector_stores'}/{owner_id}"
