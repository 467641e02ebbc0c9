"""Io: the two streams a command writes to (stdout for its result, stderr for warnings and
progress), and whether the run's result is JSON."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from runner.errors import one_line


@dataclass
class Io:
    out: TextIO
    err: TextIO
    # `run` with --json, once the settings are known (the flag, ATTACH_RUNNER_*, or `json: true`
    # in a config file): exits 2 and 3 then print {"exit", "error"}. None: not known yet.
    json: bool | None = None

    def warn(self, message: str) -> None:
        self.err.write(f"attach-runner: warning: {one_line(message)}\n")
        self.err.flush()


def stdout_io() -> Io:
    return Io(out=sys.stdout, err=sys.stderr)
