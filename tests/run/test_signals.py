"""The run's signals, between and across its steps: each SIGTERM reaches the step that runs
when it is handled, never a step that has ended, and never kills the process between steps.
Real signals sent to this process (pytest runs tests in the main thread)."""

from __future__ import annotations

import asyncio
import os
import signal

from runner.run.signals import stopping_on_signals


async def until_any(seen: list[str]) -> None:
    """Let the loop run until the handler has put a reason in `seen` (at most 5 s)."""
    for _ in range(500):
        if seen:
            return
        await asyncio.sleep(0.01)


def test_a_signal_read_as_a_step_ends_stops_the_next_step_not_the_ended_one() -> None:
    # The loop reads the signal in the same turn as step A's work ends (the way an engine's
    # last request and a SIGTERM can meet): A's task resumes and A returns before the
    # signal's handler is called. The handler must go to B, the step running when it is
    # called: A has returned its result, and a stop it never reports would stop B's sends.
    async def steps() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        first: list[str] = []
        second: list[str] = []
        with stopping_on_signals(first.append):
            work_done = loop.create_future()

            def signal_then_end() -> None:
                os.kill(os.getpid(), signal.SIGTERM)  # read by the loop's next turn
                loop.call_soon(work_done.set_result, None)  # ahead of the signal's handler

            loop.call_soon(signal_then_end)
            await work_done
        with stopping_on_signals(second.append):
            await until_any(second)
        return first, second

    assert asyncio.run(steps()) == ([], ["SIGTERM"])


def test_a_signal_between_steps_waits_for_the_next_step() -> None:
    # Between two steps no step runs: the process lives on (the default SIGTERM action would
    # kill it), and the next step is stopped as it starts; a step that does not take signals
    # (one beside another) is not.
    async def steps() -> tuple[list[str], list[str]]:
        beside: list[str] = []
        after: list[str] = []
        with stopping_on_signals(after.append):
            pass
        with stopping_on_signals(beside.append, signals=False):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)  # the handler runs with no step taking signals
            with stopping_on_signals(after.append):
                pass
        return beside, after

    assert asyncio.run(steps()) == ([], ["SIGTERM"])


def test_a_step_inside_another_takes_the_signals_and_gives_them_back() -> None:
    async def steps() -> tuple[list[str], list[str]]:
        outer: list[str] = []
        inner: list[str] = []
        with stopping_on_signals(outer.append):
            with stopping_on_signals(inner.append):
                os.kill(os.getpid(), signal.SIGINT)
                await until_any(inner)
            os.kill(os.getpid(), signal.SIGTERM)
            await until_any(outer)
        return outer, inner

    assert asyncio.run(steps()) == (["SIGTERM"], ["SIGINT"])
