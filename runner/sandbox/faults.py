"""Seeded faults: which request goes wrong, and how a connection is dropped.

One draw of `random.Random(seed)` per eligible request picks at most one fault, the rates
stacked in this order (they must sum to <= 1):

    fail_rate          answer 500, 502 or 503, one third each (a second draw picks which);
                       500/503 carry OpenAI's JSON envelope, the 502 an HTML page from a proxy
    reset_before_rate  drop the connection (TCP RST) before the request is applied
    reset_after_rate   apply the request, then drop the connection without an answer
    slow_rate          apply the request, then wait `slow_ms` before answering
    late_apply_rate    writes only: hold the request `late_apply_ms`, then apply it and answer,
                       even when the client has given up meanwhile (the live API was seen
                       applying a request seconds after its client timed out)
    error_after_rate   writes only: apply the request, then answer 500 in OpenAI's envelope
                       all the same (the live API does: a 500 to a write is no proof that
                       nothing was applied, so a client must ask before it sends again)

Only /v1 API routes are eligible, and only methods in `fault_methods` (None: all). Requests
refused earlier (401, quota, 429, unknown URL) draw nothing. A read whose roll lands on
late_apply or error_after gets no fault: every eligible request rolls once, so reads and writes
keep one sequence. error_after is last in the stack, so the draws of a config without it are
the ones they were before it existed. With the same seed and the same sequence of requests the
same faults happen.
"""

from __future__ import annotations

import random
import socket
import struct

from aiohttp import web

from runner.sandbox.config import SandboxConfig

HTTP_500 = "http_500"
HTTP_502 = "http_502"
HTTP_503 = "http_503"
RESET_BEFORE = "reset_before"
RESET_AFTER = "reset_after"
SLOW = "slow"
LATE_APPLY = "late_apply"
ERROR_AFTER = "error_after"
FAULT_KINDS = (
    HTTP_500, HTTP_502, HTTP_503, RESET_BEFORE, RESET_AFTER, SLOW, LATE_APPLY, ERROR_AFTER
)
# Kinds only writes can draw: the record lists them once one happened (see record.py).
WRITE_ONLY_KINDS = (LATE_APPLY, ERROR_AFTER)

SERVER_ERRORS = (HTTP_500, HTTP_502, HTTP_503)

BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class FaultInjector:
    """Draws the fault, if any, for each request."""

    __slots__ = ("_rng", "_thresholds", "_methods", "_any")

    def __init__(self, config: SandboxConfig) -> None:
        self._rng = random.Random(config.seed)
        self._thresholds: tuple[tuple[float, str], ...] = ()
        self._methods: frozenset[str] | None = None
        self._any = False  # fast path: no rate set, no draw
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        """Take new rates and methods; the random sequence goes on (reseed to restart it)."""
        cumulative = 0.0
        thresholds = []
        for rate, kind in (
            (config.fail_rate, "fail"),
            (config.reset_before_rate, RESET_BEFORE),
            (config.reset_after_rate, RESET_AFTER),
            (config.slow_rate, SLOW),
            (config.late_apply_rate, LATE_APPLY),
            (config.error_after_rate, ERROR_AFTER),
        ):
            if rate > 0:
                cumulative += rate
                thresholds.append((cumulative, kind))
        self._thresholds = tuple(thresholds)
        self._any = bool(thresholds)
        methods = config.fault_methods
        self._methods = frozenset(methods) if methods is not None else None

    def reseed(self, seed: int) -> None:
        self._rng.seed(seed)

    def draw(self, method: str, write: bool) -> str | None:
        """The fault kind for this request (one of FAULT_KINDS), or None; `write`: the request
        changes state (only writes can be late-applied or answered 500 after applying)."""
        if not self._any or (self._methods is not None and method not in self._methods):
            return None
        roll = self._rng.random()
        for threshold, kind in self._thresholds:
            if roll < threshold:
                if kind == "fail":
                    return self._rng.choice(SERVER_ERRORS)
                if kind in WRITE_ONLY_KINDS and not write:
                    return None
                return kind
        return None


def drop_connection(request: web.BaseRequest) -> None:
    """Close the client's connection at once with a TCP RST, as a crashed proxy would: the
    client sees a connection reset or a server disconnect, never an answer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger on, timeout 0: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
