"""`attach-runner detach MANIFEST`: take each pair's file out of its vector store (or
assistant); the file object itself stays. The same run as `run` (runner/commands/run.py) with
the detach operation (runner/operations/detach.py)."""

from __future__ import annotations

from collections.abc import Sequence

from runner.commands.run import send
from runner.config import Settings
from runner.console import Io
from runner.operations.detach import Detach


def detach(settings: Settings, io: Io, argv: Sequence[str]) -> int:
    return send(settings, io, argv, Detach)
