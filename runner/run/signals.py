"""Stopping a run's step from outside: SIGINT and SIGTERM, and the end of --max-runtime, call
the step's `stop` with the reason ("SIGINT", "SIGTERM", "max-runtime") while the step runs.
Every step that sends (the engine's run, sync's listing, the clean-up's deletes) uses this.

A loop has one handler a signal, installed by the first step and kept for the loop's life
(loop.close takes it out). Why not a handler a step: asyncio's remove_signal_handler puts the
default back, so a signal between two steps killed the process (SIGTERM) or raised
KeyboardInterrupt (SIGINT); and a signal caught as a step ended was handed, a moment later,
to that step's `stop` after it had returned its result: the run went on with its sender
halted under the next step, stopped in part with no reason given (exit 1, not 143)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import weakref
from collections.abc import Callable, Iterator

Stop = Callable[[str], None]


class _Signals:
    """A loop's SIGINT and SIGTERM: each goes to the step running now (the latest started
    of those that take signals), or, when none runs, to the next step that starts."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.steps: list[Stop] = []
        self.waiting: list[str] = []  # signals met between steps
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
            try:
                loop.add_signal_handler(sig, self.deliver, name)
            except (NotImplementedError, RuntimeError):  # not on Unix, or not the main thread
                continue

    def deliver(self, name: str) -> None:
        if self.steps:
            self.steps[-1](name)
        else:
            self.waiting.append(name)

    def enter(self, stop: Stop) -> None:
        self.steps.append(stop)
        waiting, self.waiting = self.waiting, []
        for name in waiting:
            stop(name)

    def leave(self, stop: Stop) -> None:
        for at in range(len(self.steps) - 1, -1, -1):
            if self.steps[at] == stop:  # a bound method is made anew each time it is read
                del self.steps[at]
                return


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Signals] = (
    weakref.WeakKeyDictionary())


@contextlib.contextmanager
def stopping_on_signals(stop: Stop, *, max_runtime: float | None = None,
                        signals: bool = True) -> Iterator[None]:
    """While the block runs (inside the event loop): the signals, and `max_runtime` seconds
    from now (None: no bound), call `stop(reason)`. signals=False: the timer alone (a step
    running beside another that takes the signals)."""
    loop = asyncio.get_running_loop()
    handler = _by_loop.get(loop)
    if signals and handler is None:
        handler = _by_loop[loop] = _Signals(loop)
    if signals and handler is not None:
        handler.enter(stop)
    timer = loop.call_later(max_runtime, stop, "max-runtime") if max_runtime else None
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
        if signals and handler is not None:
            handler.leave(stop)
