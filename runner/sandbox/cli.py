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
from typing import Any

from runner.errors import UsageError
from runner.sandbox.app import Sandbox
from runner.sandbox.config import SandboxConfig
from runner.sandbox.flags import DEFAULT_KEY


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
            upload_rpm=args.upload_rpm,
            upload_bytes_per_s=args.upload_bytes_per_s,
            latency_ms=args.latency_ms,
            seed=args.seed,
            fail_rate=args.fail_rate,
            reset_before_rate=args.reset_before_rate,
            reset_after_rate=args.reset_after_rate,
            slow_rate=args.slow_rate,
            slow_ms=args.slow_ms,
            late_apply_rate=args.late_apply_rate,
            late_apply_ms=args.late_apply_ms,
            error_after_rate=args.error_after_rate,
            processing_ms=args.processing_ms,
            vs_fail_rate=args.vs_fail_rate,
            retire_v1=args.retire_v1,
            quota_exhausted=args.quota_exhausted,
            store_max_files=args.store_max_files,
            file_max_bytes=args.file_max_bytes,
            terse_404=args.terse_404,
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
