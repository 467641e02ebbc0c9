"""The HTTP client against a real sandbox: the proxy from the environment, read once; the
OpenAI-Organization / OpenAI-Project headers of a real run, as the server recorded them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.requests.client import ApiClient
from runner.sandbox import SandboxThread
from tests.cli import FAST, Result, owner_of, pairs_for, run_cli, write_csv


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


# --- OpenAI-Organization / OpenAI-Project, as the server saw them ----------------------------

ORG, PROJECT = "org-Test123", "proj_test456"


def identity_args(tmp_path: Path, source: str) -> tuple[list[str], dict[str, str]]:
    """The CLI arguments and extra environment that set ORG and PROJECT from `source`."""
    if source == "flags":
        return ["--org", ORG, "--project", PROJECT], {}
    if source == "env":
        return [], {"OPENAI_ORG_ID": ORG, "OPENAI_PROJECT_ID": PROJECT}
    config = tmp_path / "cfg.yaml"
    config.write_text(f"org: {ORG}\nproject: {PROJECT}\n")
    return ["--config", str(config)], {}


def run_against(sb: SandboxThread, tmp_path: Path, target: str, *args: str,
                env: dict[str, str] | None = None) -> Result:
    """A real run of 15 pairs, one request at a time (so the seeded faults fall the same way
    every time)."""
    manifest = write_csv(tmp_path / "m.csv", pairs_for(target), owner_of(target))
    res = run_cli("run", str(manifest), "--target", target, "--base-url", sb.base_url,
                  "--concurrency", "1", "--max-attempts", "20", "--json", *args, *FAST,
                  env=env)
    assert res.code == 0, res.err
    return res


@pytest.mark.parametrize("source", ["flags", "env", "config"])
def test_org_and_project_go_on_every_request(tmp_path: Path, sandbox: Callable[..., SandboxThread],
                                             target: str, source: str) -> None:
    """--org / --project (or OPENAI_ORG_ID / OPENAI_PROJECT_ID, or the config file's org /
    project) reach the server on every request of a run: attaches, retries after 5xx, and
    checks after dropped connections."""
    sb = sandbox(fail_rate=0.2, reset_after_rate=0.2, seed=3)
    args, env = identity_args(tmp_path, source)
    summary = run_against(sb, tmp_path, target, *args, env=env).json()
    record = sb.record()
    assert summary["retries"] > 0
    assert summary["checks"] > 0
    assert record["requests"] == summary["requests"]
    assert record["org_project"] == [
        {"organization": ORG, "project": PROJECT, "requests": record["requests"]}]


def test_without_org_or_project_no_such_header_is_sent(
    tmp_path: Path, sandbox: Callable[..., SandboxThread], target: str
) -> None:
    """Not configured: no request carries OpenAI-Organization or OpenAI-Project (not even
    empty)."""
    sb = sandbox(fail_rate=0.2, seed=3)
    summary = run_against(sb, tmp_path, target).json()
    record = sb.record()
    assert record["requests"] == summary["requests"] > 0
    assert record["org_project"] == [
        {"organization": None, "project": None, "requests": record["requests"]}]


def test_org_alone_sends_no_project_header(tmp_path: Path,
                                           sandbox: Callable[..., SandboxThread]) -> None:
    """Only the organization configured (here from OPENAI_ORG_ID): only its header is sent;
    a flag beats the environment."""
    sb = sandbox()
    run_against(sb, tmp_path, "assistant-files", env={"OPENAI_ORG_ID": "org-fromenv"})
    first = sb.record()
    assert first["org_project"] == [
        {"organization": "org-fromenv", "project": None, "requests": first["requests"]}]
    sb.reset()
    again = tmp_path / "again"  # a fresh log: the same pairs are sent again
    again.mkdir()
    run_against(sb, again, "assistant-files", "--org", ORG, env={"OPENAI_ORG_ID": "org-fromenv"})
    second = sb.record()
    assert second["org_project"] == [
        {"organization": ORG, "project": None, "requests": second["requests"]}]
