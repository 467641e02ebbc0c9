"""The sandbox: a local stand-in of OpenAI's assistant-file, vector-store-file and Files API.

config.py    SandboxConfig: every knob, defaults and checks
handlers.py  the per-request pipeline and the route table (the rules: docs/sandbox.md)
admin.py     the record, reset, live config and preloading (the /__sandbox/ routes)
assistants.py  the assistant-file routes
vector_stores.py  the vector-store routes, the per-store write limit, preloading a store
files.py     the Files API routes (upload, list, retrieve, delete), the file objects, the
             uploads' own limit
uploads.py   an upload's multipart body, streamed, hashed and checked
parsing.py   request bodies and list queries, checked as the API checks them
state.py     assistant files, vector store files, batches; pagination
errors.py    OpenAI's error envelope and messages
jsonio.py    JSON read and written (orjson, json where they would differ)
limits.py    token bucket, retry-after and x-ratelimit-* headers
faults.py    seeded 5xx, resets, slow answers, late-applied writes and writes answered 500
record.py    the server's own record (its shape is documented there)
app.py       Sandbox (in the caller's loop), SandboxThread (its own thread)
flags.py     the `attach-runner sandbox` flags (no server import: every command declares them)
cli.py       `attach-runner sandbox`

Names are imported when first used: `runner.sandbox.flags` alone must not pull in aiohttp.web.

It stands in for the API, so it imports nothing of the product but runner.errors (its command
reports a bad flag as every command does): import-linter holds it to that in CI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.sandbox.app import Sandbox, SandboxThread
    from runner.sandbox.cli import run_sandbox_command
    from runner.sandbox.config import SandboxConfig
    from runner.sandbox.flags import add_sandbox_arguments
    from runner.sandbox.record import confirm_attached_once, pair_key

_HOMES = {
    "Sandbox": "app",
    "SandboxThread": "app",
    "SandboxConfig": "config",
    "add_sandbox_arguments": "flags",
    "confirm_attached_once": "record",
    "pair_key": "record",
    "run_sandbox_command": "cli",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'runner.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(f"runner.sandbox.{home}"), name)


__all__ = [
    "Sandbox",
    "SandboxConfig",
    "SandboxThread",
    "add_sandbox_arguments",
    "confirm_attached_once",
    "pair_key",
    "run_sandbox_command",
]
