"""The fast path (CSV, JSONL): plain lines taken a chunk at a time, as Blocks of pairs.

Most manifests are plain: a header, then `id,id` lines (or one flat JSON object a line). The
fast path reads such lines a chunk at a time and takes a whole chunk with one regular
expression that only matches lines the line-by-line readers would accept unchanged (valid
IDs, no quotes, no blank lines, no NUL, UTF-8, no per-file options), yielding a Block of
pairs. At the first chunk it does not take whole, it hands the rest of the file to the
line-by-line reader, which reports every problem exactly as before, with the same line numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from operator import itemgetter
from typing import IO

from runner.manifest.common import Block

FAST_CHUNK = 1 << 15  # bytes read at a time by the fast path: its rows stay under 1 MiB
FAST_ID = r"([A-Za-z0-9_-]{1,128})"
SWAPPED = itemgetter(1, 0)


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """The rest of `stream` in chunks of whole lines (the last may lack its newline)."""
    tail = b""
    while block := stream.read(FAST_CHUNK):
        block = tail + block if tail else block
        cut = block.rfind(b"\n") + 1
        if cut:
            yield block[:cut]
        tail = block[cut:]
    if tail:
        yield tail


def fast_text(chunk: bytes, quotes: bool = False) -> str | None:
    """The chunk as text with a final newline, if the fast path may take it; else None.
    `quotes`: a quote may stand in it (JSONL, whose pattern places every quote itself; in CSV
    a quote changes what the fields are)."""
    if b"\0" in chunk or (not quotes and b'"' in chunk) or (
            chunk.count(b"\r") != chunk.count(b"\r\n")):
        return None
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.endswith("\n") else text + "\n"


def fast_blocks(path: str, start: int, before: int, pattern: re.Pattern[str], swap: bool,
                quotes: bool = False) -> Iterator[Block | tuple[int, int]]:
    """Blocks from byte `start` on; at the first chunk not taken, (offset, lines before) to
    resume from line by line."""
    offset = start
    with open(path, "rb") as stream:
        stream.seek(start)
        for chunk in _chunks(stream):
            text = fast_text(chunk, quotes)
            pairs = pattern.findall(text) if text is not None else []
            if text is None or len(pairs) != text.count("\n") or len(chunk) > FAST_CHUNK * 2:
                yield offset, before
                return
            if swap:
                pairs = list(map(SWAPPED, pairs))
            yield Block(before + 1, pairs)
            before += len(pairs)
            offset += len(chunk)
