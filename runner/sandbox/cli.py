"""`attach-runner sandbox`: serve the sandbox until SIGINT/SIGTERM.

The first line on stdout is `listening on http://127.0.0.1:PORT/v1` (flushed); on a signal it
stops, prints a one-line summary of its record to stderr and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from runner.errors import UsageError
from runner.sandbox.app import Sandbox
from runner.sandbox.config import SandboxConfig

DEFAULT_PORT = 8089
DEFAULT_KEY = "sk-sandbox"


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox command's flags."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    add("--port", type=_port, default=DEFAULT_PORT, help="port (default 8089; 0: a free one)")
    add(
        "--api-key",
        default=None,
        help="the key to accept (default: $OPENAI_API_KEY when set, else sk-sandbox)",
    )
    add("--rps", type=_positive, default=None, help="requests per second (default: unlimited)")
    add("--burst", type=_at_least_one, default=None, help="bucket size (default: max(1, rps))")
    add(
        "--store-rpm",
        type=_positive,
        default=None,
        help="attach requests a minute per vector store (default: unlimited; OpenAI: 300)",
    )
    add("--latency-ms", type=_non_negative, default=0, help="added to every answer")
    add("--seed", type=int, default=0, help="seed of the fault draws (default 0)")
    add("--fail-rate", type=_fraction, default=0, help="fraction answered 500/502/503")
    add(
        "--reset-before-rate",
        type=_fraction,
        default=0,
        help="fraction dropped before being applied",
    )
    add(
        "--reset-after-rate",
        type=_fraction,
        default=0,
        help="fraction applied, then dropped unanswered",
    )
    add("--slow-rate", type=_fraction, default=0, help="fraction applied, then answered late")
    add("--slow-ms", type=_non_negative, default=2000, help="delay of a slow answer")
    add(
        "--processing-ms",
        type=_non_negative,
        default=200,
        help="how long a vector store file stays in_progress",
    )
    add(
        "--vs-fail-rate",
        type=_fraction,
        default=0,
        help="fraction of vector store files that end failed (ids with 'fail' always do)",
    )
    add(
        "--fault-methods",
        default=None,
        help="comma-separated methods faults apply to (default: all)",
    )
    add("--retire-v1", action="store_true", help="refuse OpenAI-Beta: assistants=v1")
    add(
        "--quota-exhausted", action="store_true", help="answer every request 429 insufficient_quota"
    )


def run_sandbox_command(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 then. UsageError for a bad host, setting or busy port."""
    host = _loopback_host(args.host)
    key = args.api_key or os.environ.get("OPENAI_API_KEY") or DEFAULT_KEY
    try:
        config = SandboxConfig(
            api_key=key,
            rps=args.rps,
            burst=args.burst,
            store_rpm=args.store_rpm,
            latency_ms=args.latency_ms,
            seed=args.seed,
            fail_rate=args.fail_rate,
            reset_before_rate=args.reset_before_rate,
            reset_after_rate=args.reset_after_rate,
            slow_rate=args.slow_rate,
            slow_ms=args.slow_ms,
            processing_ms=args.processing_ms,
            vs_fail_rate=args.vs_fail_rate,
            retire_v1=args.retire_v1,
            quota_exhausted=args.quota_exhausted,
            fault_methods=args.fault_methods.split(",") if args.fault_methods else None,
        )
    except ValueError as exc:
        raise UsageError(f"sandbox: {exc}") from exc
    return asyncio.run(_serve(config, host, args.port))


async def _serve(config: SandboxConfig, host: str, port: int) -> int:
    sandbox = Sandbox(config)
    try:
        url = await sandbox.start(host, port)
    except OSError as exc:
        raise UsageError(
            f"sandbox: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "pick another --port (0: any free one)"
        ) from exc
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        print(f"listening on {url}", flush=True)
        await stopped.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await sandbox.stop()
    print(summarize(sandbox.record()), file=sys.stderr, flush=True)
    return 0


def summarize(record: dict[str, Any]) -> str:
    """The record in one line."""
    statuses = ", ".join(f"{status}: {n}" for status, n in record["by_status"].items())
    pairs = record["pairs"].values()
    twice = sum(1 for pair in pairs if pair["attached"] > 1)
    again = sum(pair["posts_after_attached"] for pair in pairs)
    faults = sum(record["faults"].values())
    return (
        f"sandbox: {record['requests']} requests ({statuses or 'none answered'}); "
        f"{record['attached_total']} attached, {twice} pairs more than once, {again} POSTs "
        f"after attached; {faults} faults; peak {record['peak_in_flight']} in flight, "
        f"{record['peak_per_1s']} in 1 s, {record['peak_per_60s']} in 60 s"
    )


def _loopback_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(
            f"sandbox: --host {host} is not a loopback address; the sandbox listens only on "
            "127.0.0.1 (or another 127.x address), ::1 or localhost"
        )
    return host


def _number(check: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text} is not {rule}")
        return value

    return parse


_positive = _number(lambda v: v > 0, "above 0")
_non_negative = _number(lambda v: v >= 0, "0 or more")
_at_least_one = _number(lambda v: v >= 1, "1 or more")
_fraction = _number(lambda v: 0 <= v <= 1, "between 0 and 1")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0-65535)")
    return value
