"""The HTTP client against a real sandbox: the proxy from the environment, read once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runner.client import ApiClient
from runner.sandbox import SandboxThread


def client(base_url: str) -> ApiClient:
    return ApiClient(base_url, api_key="sk-sandbox", beta_header="assistants=v1", org=None,
                     project=None, concurrency=4, timeout=10)


async def test_http_proxy_from_the_environment_carries_every_request(
    sandbox: Callable[..., SandboxThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY names where requests go (here the sandbox, standing in for a proxy): a host
    that does not resolve is reached through it, request after request."""
    server = sandbox()
    proxy = server.base_url.removesuffix("/v1")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with client("http://api.example.invalid/v1") as api:
        for i in range(3):
            answer = await api.request("POST", "/assistants/asst_p/files",
                                       b'{"file_id":"file-%d"}' % i)
            assert answer.status == 200
    assert server.record()["by_route"]["POST attach"] == 3


async def test_no_proxy_sends_directly(
    sandbox: Callable[..., SandboxThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_PROXY naming the host skips HTTP_PROXY (here a port where nothing listens)."""
    server = sandbox()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with client(server.base_url) as api:
        answer = await api.request("POST", "/assistants/asst_p/files", b'{"file_id":"file-1"}')
    assert answer.status == 200
