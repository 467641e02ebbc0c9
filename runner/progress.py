"""Progress on stderr: a live line on a terminal, a plain line about every 10 s otherwise (cron
mail stays short). Fed by the engine's ticker; never on stdout (that is the summary's)."""

from __future__ import annotations

import asyncio
import time
from typing import TextIO

from runner.engine import Engine

PLAIN_EVERY = 10.0


class Progress:
    def __init__(self, total: int, stream: TextIO, *, tty: bool) -> None:
        self.total = total
        self.stream = stream
        self.tty = tty
        self.started = time.monotonic()
        self.last_plain = self.started
        self.drawn = False

    def __call__(self, engine: Engine) -> None:
        now = time.monotonic()
        if self.tty:
            self._draw(self._line(engine, now), end="\r")
        elif now - self.last_plain >= PLAIN_EVERY:
            self.last_plain = now
            self._draw(self._line(engine, now), end="\n")

    def _line(self, engine: Engine, now: float) -> str:
        tally = engine.tally
        done = tally.handled
        elapsed = max(now - self.started, 1e-9)
        rate = (tally.attached + tally.already_attached + tally.failed) / elapsed
        pct = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        parts = [f"attach-runner: {done}/{self.total} pairs{pct}", f"{rate:.0f}/s"]
        if tally.failed:
            parts.append(f"{tally.failed} failed")
        counters = engine.attempter.counters
        if counters.retries:
            parts.append(f"{counters.retries} retried")
        paused = engine.attempter.limiter.paused_until
        if paused is not None:
            wait = paused - asyncio.get_running_loop().time()
            if wait > 0:
                parts.append(f"paused by 429 for {wait:.1f}s")
        remaining = self.total - done
        if rate > 0 and remaining > 0 and self.total:
            parts.append(f"ETA {remaining / rate:.0f}s")
        return ", ".join(parts)

    def _draw(self, line: str, *, end: str) -> None:
        if self.tty:
            line = line.ljust(100)[:100]
            self.drawn = True
        self.stream.write(line + end)
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
