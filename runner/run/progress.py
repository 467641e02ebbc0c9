"""Progress on stderr, never on stdout (that is the summary's).

On a terminal: a live bar drawn by rich (pairs done / total, percent, rate, ETA, failed and
retried counts, and a 429 pause with the time it ends). Anywhere else (cron, a pipe, a file, a
dumb terminal): one plain line about every `PLAIN_EVERY` seconds, ASCII text and a newline, no
control characters, so cron mail stays short and readable.

Both are fed by the engine's ticker (about twice a second) through `Progress.__call__`; each tick
reads the engine's counters into a `Snapshot`, which the two renderers format. rich is imported
only when a bar is drawn, so `validate`, cron runs and `--quiet` never pay for it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from runner.run.engine import Engine

PLAIN_EVERY = 10.0
# The rate shown (and the ETA) is measured over this many recent seconds, so a run that slows
# down under 429s says so within half a minute, and pairs settled from the log at the start
# (counted at once) do not make the rate look huge.
RATE_WINDOW = 30.0
DUMB_TERMINALS = frozenset({"dumb", "unknown"})


@dataclass(frozen=True)
class Snapshot:
    """What the progress display shows, read from the engine at one tick."""

    elapsed: float  # seconds since the run started
    done: int  # pairs settled: by this run or, per the log, earlier
    total: int  # pairs in the manifest (repeats counted once)
    rate: float | None  # pairs settled per second by this run, over the last RATE_WINDOW s
    failed: int
    retried: int  # requests sent again after a transient failure
    paused_until: float | None  # wall-clock time (time.time()) a 429 pause ends, while paused
    # (pairs waiting for the check of an uncertain write, wall-clock time the first is due)
    settling: tuple[int, float] | None = None
    uploading: tuple[int, int] | None = None  # (bytes sent, bytes in all) of uploads in flight

    @property
    def eta(self) -> float | None:
        """Seconds left at the recent rate (None: no rate yet, or nothing left)."""
        left = self.total - self.done
        if not self.rate or left <= 0:
            return None
        return left / self.rate


def duration(seconds: float) -> str:
    """A short duration: 45s, 7m08s, 2h05m, 3d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def rate_text(rate: float | None) -> str:
    if rate is None:
        return "-/s"
    return f"{rate:.0f}/s" if rate >= 10 else f"{rate:.1f}/s" if rate >= 1 else f"{rate:.2f}/s"


def pause_text(snap: Snapshot, now: float) -> str:
    """`paused by 429 until 14:03:07 (12s)`, local time; empty when not paused."""
    if snap.paused_until is None or snap.paused_until <= now:
        return ""
    clock = time.strftime("%H:%M:%S", time.localtime(snap.paused_until))
    return f"paused by 429 until {clock} ({duration(snap.paused_until - now + 0.999)})"


def settle_text(snap: Snapshot, now: float) -> str:
    """`3 uncertain: checked from 14:03:07 (8s)`: pairs whose last write may still be applied
    by the server, waiting out --settle before their check; empty when none."""
    if snap.settling is None:
        return ""
    count, due = snap.settling
    if due <= now:
        return f"{count:,} uncertain: checking"
    clock = time.strftime("%H:%M:%S", time.localtime(due))
    return f"{count:,} uncertain: checked from {clock} ({duration(due - now + 0.999)})"


def upload_text(snap: Snapshot) -> str:
    """`uploading 120/400 MB`: the bytes of the uploads in flight; empty when none is."""
    if not snap.uploading or not snap.uploading[1]:
        return ""
    sent, total = snap.uploading
    return f"uploading {sent / 1e6:,.0f}/{total / 1e6:,.0f} MB"


def notes_text(snap: Snapshot) -> str:
    parts = []
    if snap.failed:
        parts.append(f"{snap.failed:,} failed")
    if snap.retried:
        parts.append(f"{snap.retried:,} retried")
    return ", ".join(parts)


def plain_line(snap: Snapshot, now: float) -> str:
    """One line for cron: `attach-runner: 1m40s: 1,234/10,000 pairs (12%), 20/s, ETA 7m08s;
    3 failed, 5 retried; paused by 429 until 14:03:07 (12s)`."""
    pct = f" ({100 * snap.done // snap.total}%)" if snap.total else ""
    line = (f"attach-runner: {duration(snap.elapsed)}: {snap.done:,}/{snap.total:,} pairs{pct}, "
            f"{rate_text(snap.rate)}")
    if snap.eta is not None:
        line += f", ETA {duration(snap.eta)}"
    for extra in (upload_text(snap), notes_text(snap), pause_text(snap, now),
                  settle_text(snap, now)):
        if extra:
            line += f"; {extra}"
    return line


class Meter:
    """Turns the engine's counters into snapshots, keeping recent samples for the rate."""

    __slots__ = ("started", "_samples")

    def __init__(self) -> None:
        self.started = time.monotonic()
        # (monotonic time, pairs settled by this run): the samples of the last RATE_WINDOW s
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def rate(self, now: float, settled: int) -> float | None:
        samples = self._samples
        samples.append((now, settled))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()
        then, before = samples[0]
        span = now - then
        return (settled - before) / span if span >= 1.0 else None

    def read(self, engine: Engine) -> Snapshot:
        now = time.monotonic()
        tally = engine.tally
        settled = tally.attached + tally.already_attached + tally.updated + tally.failed
        paused = engine.sender.limiter.paused_until
        to_wall = time.time() - asyncio.get_running_loop().time()
        until = paused + to_wall if paused is not None else None
        settling = engine.settle_queue.settling
        return Snapshot(elapsed=now - self.started, done=tally.handled, total=tally.pairs,
                        rate=self.rate(now, settled), failed=tally.failed,
                        retried=engine.sender.counters.retries, paused_until=until,
                        settling=(settling[0], settling[1] + to_wall) if settling else None,
                        uploading=engine.local.uploads.sending if engine.local else None)


def is_terminal(stream: TextIO) -> bool:
    """A terminal that can redraw a line (not a pipe, a file, or TERM=dumb)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
    return tty and os.environ.get("TERM", "") not in DUMB_TERMINALS


BAR_MIN, BAR_MAX = 10, 40  # the bar's width in columns: what is left of the line, within these
LABEL = "attach-runner"


@dataclass(frozen=True)
class BarPart:
    """A piece of text after the bar. `keep`: parts with a lower value are left out first when
    the terminal is too narrow for all."""

    text: str
    keep: int
    style: str = ""  # a rich style


def bar_layout(snap: Snapshot, now: float, width: int) -> tuple[bool, int, list[BarPart]]:
    """What one line of `width` columns shows: the label or not, the bar's width, and the text
    after the bar. When the line is narrow, out go the label, then retries, the rate and the
    ETA; the counts, failures and a 429 pause stay."""
    pct = 100 * snap.done // snap.total if snap.total else 100
    parts = [BarPart(f"{snap.done:,}/{snap.total:,} {pct:>3}%", keep=9),
             BarPart(rate_text(snap.rate), keep=2)]
    if snap.eta is not None:
        parts.append(BarPart(f"ETA {duration(snap.eta)}", keep=3))
    if snap.failed:
        parts.append(BarPart(f"{snap.failed:,} failed", keep=8, style="red"))
    if snap.retried:
        parts.append(BarPart(f"{snap.retried:,} retried", keep=1))
    paused = pause_text(snap, now)
    if paused:
        parts.append(BarPart(paused, keep=9, style="bold yellow"))
    settling = settle_text(snap, now)
    if settling:
        parts.append(BarPart(settling, keep=4, style="yellow"))
    uploading = upload_text(snap)
    if uploading:
        parts.append(BarPart(uploading, keep=5))
    room = width - 1  # the last column would wrap the line on some terminals
    label = True

    def used() -> int:
        text = sum(len(p.text) for p in parts) + 2 * (len(parts) - 1)
        return text + 1 + BAR_MIN + (len(LABEL) + 1 if label else 0)

    while used() > room:
        if label:
            label = False
            continue
        droppable = [p for p in parts if p.keep < 8]
        if not droppable:
            break
        parts.remove(min(droppable, key=lambda p: p.keep))
    bar = room - (used() - BAR_MIN)
    return label, max(BAR_MIN, min(BAR_MAX, bar)), parts


class Progress:
    """The progress display of one run: call it with the engine at each tick; close it (or use
    it as a context manager) before the summary is printed, so the bar ends on its own line
    and the cursor is shown again whatever happened."""

    def __init__(self, total: int, stream: TextIO, *, tty: bool,
                 every: float = PLAIN_EVERY) -> None:
        self.total = total
        self.stream = stream
        self.tty = tty
        self.every = every  # plain lines: seconds between two
        self.meter = Meter()
        self.last_plain = self.meter.started
        self.lines = 0  # plain lines written
        self._bar: _Bar | None = _Bar(total, stream) if tty and total > 0 else None
        self._engine: Engine | None = None  # the last one seen, for the final redraw

    def __call__(self, engine: Engine) -> None:
        self._engine = engine
        snap = self.meter.read(engine)
        if self._bar is not None:
            self._bar.draw(snap)
        elif time.monotonic() - self.last_plain >= self.every:
            self.last_plain = time.monotonic()
            self.stream.write(plain_line(snap, time.time()) + "\n")
            self.stream.flush()
            self.lines += 1

    def close(self) -> None:
        """Leave the final state of the bar on screen, on its own line, with the cursor back."""
        bar, self._bar = self._bar, None
        if bar is None:
            return
        try:
            if self._engine is not None:
                bar.draw(self.meter.read(self._engine))
        finally:
            bar.stop()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _Bar:
    """The bar, drawn by rich on `stream`. Redrawn only when `draw` is called (twice a second,
    from the engine's ticker): no thread of its own, so it costs nothing between ticks. rich is
    imported here, so only a run that draws a bar pays for it."""

    def __init__(self, total: int, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as RichProgress

        self.stream = stream
        self.console = Console(file=stream, highlight=False, soft_wrap=False)
        self.bar_column = BarColumn(bar_width=BAR_MAX)
        self.rich = RichProgress(
            TextColumn("{task.fields[label]}"), self.bar_column,
            TextColumn("{task.fields[text]}"),
            console=self.console, auto_refresh=False, redirect_stdout=False,
            redirect_stderr=False)
        self.task = self.rich.add_task("attach", total=total, label=LABEL, text="")
        self.rich.start()
        self.draw(Snapshot(elapsed=0.0, done=0, total=total, rate=None, failed=0, retried=0,
                           paused_until=None))

    def _width(self) -> int:
        """The width of the terminal `stream` is on, read at each draw (it may be resized)."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            return self.console.width

    def draw(self, snap: Snapshot) -> None:
        width = self._width()
        self.console.width = width
        label, bar_width, parts = bar_layout(snap, time.time(), width)
        self.bar_column.bar_width = bar_width
        # rich markup; every part is our own text of numbers and words: nothing to escape.
        text = "  ".join(f"[{p.style}]{p.text}[/]" if p.style else p.text for p in parts)
        self.rich.update(self.task, completed=snap.done, label=LABEL if label else "",
                         text=text)
        self.rich.refresh()

    def stop(self) -> None:
        self.rich.stop()
