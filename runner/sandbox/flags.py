"""The `attach-runner sandbox` flags, apart from the server: every command builds the whole
parser, and declaring these must not import aiohttp.web."""

from __future__ import annotations

import argparse
from collections.abc import Callable

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
        help="writes a minute per vector store: adds, batches, updates, deletes "
        "(default: unlimited; OpenAI: 300)",
    )
    add(
        "--upload-rpm",
        type=_positive,
        default=None,
        help="uploads (POST /files) a minute, a limit of their own that nothing else takes "
        "from (default: unlimited)",
    )
    add(
        "--upload-bytes-per-s",
        type=_positive,
        default=None,
        help="a slow link: each upload's file is read at most this many bytes a second "
        "(default: as fast as it comes)",
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
        "--late-apply-rate",
        type=_fraction,
        default=0,
        help="fraction of writes held --late-apply-ms, then applied even if the client left",
    )
    add(
        "--late-apply-ms",
        type=_non_negative,
        default=3000,
        help="how long a late-applied write is held (default 3000)",
    )
    add(
        "--error-after-rate",
        type=_fraction,
        default=0,
        help="fraction of writes applied, then answered 500 all the same",
    )
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
    add(
        "--store-max-files",
        type=_positive_int,
        default=None,
        metavar="N",
        help="files a vector store may hold; an add or batch beyond is a 400 naming the store "
        "(default: unlimited)",
    )
    add(
        "--file-max-bytes",
        type=_positive_int,
        default=512 * 1024**2,
        metavar="N",
        help="largest upload (POST /files) taken, in bytes; a larger one is a 400 'File is too "
        "large.' (default 536870912: the API's 512 MB)",
    )
    add(
        "--terse-404",
        action="store_true",
        help="a file's 404 on retrieve, update or delete says only 'Not found.', not whether "
        "the store or assistant exists (GET the owner to tell)",
    )
    add("--retire-v1", action="store_true", help="refuse OpenAI-Beta: assistants=v1")
    add(
        "--quota-exhausted", action="store_true", help="answer every request 429 insufficient_quota"
    )


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not 1 or more")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0-65535)")
    return value
