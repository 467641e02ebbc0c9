"""Helpers for driving the real CLI as a subprocess (`python -m runner`) against a sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SANDBOX_KEY = "sk-sandbox"
# Shrink retry waits through settings, not patches.
FAST = ["--backoff-initial", "0.01", "--backoff-max", "0.05", "--settle", "0.3"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out.strip().splitlines()[-1])


def cli_env(extra: Mapping[str, str] | None = None, *,
            key: str | None = SANDBOX_KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    env.update(extra or {})
    return env


def run_cli(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            stdin: str | None = None, timeout: float = 120,
            key: str | None = SANDBOX_KEY) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "runner", *args], capture_output=True, text=True,
        env=cli_env(env, key=key), cwd=cwd, input=stdin, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_csv(path: Path, pairs: Iterable[tuple[str, str]], owner: str = "assistant_id") -> Path:
    path.write_text(f"{owner},file_id\n" + "".join(f"{o},{f}\n" for o, f in pairs))
    return path


def write_jsonl(path: Path, pairs: Iterable[tuple[str, str]], owner: str = "assistant_id") -> Path:
    path.write_text("".join(json.dumps({owner: o, "file_id": f}) + "\n" for o, f in pairs))
    return path


def write_yaml(path: Path, pairs: Iterable[tuple[str, str]], owner: str = "assistant_id") -> Path:
    lines = ["items:"] + [f"  - {{{owner}: {o}, file_id: {f}}}" for o, f in pairs]
    path.write_text("\n".join(lines) + "\n")
    return path


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "yaml": write_yaml}


def make_pairs(owners: int, files: int, prefix: str = "asst") -> list[tuple[str, str]]:
    return [(f"{prefix}_{o}", f"file-{o}x{f}") for o in range(owners) for f in range(files)]


# target -> (the manifest's owner column, the owner ID prefix used in tests)
TARGETS = {
    "assistant-files": ("assistant_id", "asst"),
    "vector-store-files": ("vector_store_id", "vs"),
}


def owner_of(target: str) -> str:
    return TARGETS[target][0]


def owner_kind(target: str) -> str:
    """The sandbox's `preload` name for the target's owners."""
    return "assistant" if target == "assistant-files" else "vector_store"


def pairs_for(target: str, owners: int = 3, files: int = 5) -> list[tuple[str, str]]:
    return make_pairs(owners, files, prefix=TARGETS[target][1])


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def attached_counts(record: Mapping[str, Any], pairs: Iterable[tuple[str, str]]) -> list[int]:
    """How many times the sandbox says each pair was put in place (preloaded counts once)."""
    out = []
    for o, f in pairs:
        entry = record["pairs"].get(f"{o}/{f}")
        out.append(0 if entry is None else entry["attached"] + int(entry["preloaded"]))
    return out
