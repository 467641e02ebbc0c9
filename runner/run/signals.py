"""Stopping a run's step from outside: SIGINT and SIGTERM, and the end of --max-runtime, call
the step's `stop` with the reason ("SIGINT", "SIGTERM", "max-runtime") while the step runs.
Every step that sends (the engine's run, sync's listing, the clean-up's deletes) uses this."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def stopping_on_signals(stop: Callable[[str], None], *, max_runtime: float | None = None,
                        signals: bool = True) -> Iterator[None]:
    """While the block runs (inside the event loop): the signals, and `max_runtime` seconds
    from now (None: no bound), call `stop(reason)`. signals=False: the timer alone (a step
    running beside another that takes the signals: a loop has one handler a signal)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")) if signals else ():
        try:
            loop.add_signal_handler(sig, stop, name)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix
            continue
        installed.append(sig)
    timer = loop.call_later(max_runtime, stop, "max-runtime") if max_runtime else None
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)
