"""Shared fixtures: a clean environment, and sandboxes on loopback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runner.sandbox import SandboxConfig, SandboxThread
from tests.cli import TARGETS


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps os.environ clean of OPENAI_* for every test (a developer's real key included)."""
    for name in list(os.environ):
        if name.startswith("OPENAI_"):
            monkeypatch.delenv(name)


@pytest.fixture
def sandbox() -> Iterator[Callable[..., SandboxThread]]:
    """A factory: `sandbox(**config)` starts a SandboxThread on a free loopback port; all are
    stopped at teardown."""
    started: list[SandboxThread] = []

    def start(**config: Any) -> SandboxThread:
        thread = SandboxThread(SandboxConfig(**config))
        thread.start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture(params=list(TARGETS))
def target(request: pytest.FixtureRequest) -> str:
    """Each target in turn: `assistant-files`, `vector-store-files`."""
    return str(request.param)
