"""The sandbox: a local stand-in of OpenAI's assistant-file and vector-store-file API.

config.py    SandboxConfig: every knob, defaults and checks
handlers.py  the routes, the per-request pipeline, the documented rules
state.py     assistant files, vector store files, batches; pagination
errors.py    OpenAI's error envelope and messages
limits.py    token bucket, retry-after and x-ratelimit-* headers
faults.py    seeded 5xx, resets and slow answers
record.py    the server's own record (its shape is documented there)
app.py       Sandbox (in the caller's loop), SandboxThread (its own thread)
cli.py       `attach-runner sandbox`
"""

from runner.sandbox.app import Sandbox, SandboxThread
from runner.sandbox.cli import add_sandbox_arguments, run_sandbox_command
from runner.sandbox.config import SandboxConfig
from runner.sandbox.record import confirm_attached_once, pair_key

__all__ = [
    "Sandbox",
    "SandboxConfig",
    "SandboxThread",
    "add_sandbox_arguments",
    "confirm_attached_once",
    "pair_key",
    "run_sandbox_command",
]
