"""Go durations, as OpenAI sends them in `x-ratelimit-reset-*` headers ("6m0s", "250ms")."""

from __future__ import annotations

import re

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration ("1s", "250ms", "6m0s", "2h3m4.5s"); None if unparseable.

    A bare number is taken as seconds, as some proxies send it that way.
    """
    text = text.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    total, pos = 0.0, 0
    for part in _GO_PART.finditer(text):
        if part.start() != pos:
            return None
        total += float(part.group(1)) * _GO_UNIT[part.group(2)]
        pos = part.end()
    return total if pos == len(text) and pos > 0 else None
