"""The fast path (CSV, JSONL): plain lines taken a chunk at a time, as Blocks of pairs.

Most manifests are tool-written: a header, then `id,id` lines (or one flat JSON object a line),
maybe with an `attributes` object on each. The fast path reads such lines a chunk at a time and
takes a whole chunk with one regular expression that only matches lines the line-by-line readers
would accept unchanged (valid IDs, no stray quotes, no blank lines, no NUL, UTF-8, options of the
plain kind block.py admits), yielding a Block. At the first chunk it does not take whole, it
hands the rest of the file to the line-by-line reader, which reports every problem exactly as
before, with the same line numbers.

A chunk starts where the last one ended and holds the whole lines of the FAST_CHUNK bytes read
there, so where chunks begin depends on nothing but the file: a later pass may skip the chunks
an earlier pass settled (`skips`) and still meet the same blocks after them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from runner.manifest.block import Block, OptionColumns, Skips

FAST_CHUNK = 1 << 15  # bytes read at a time by the fast path: its rows stay under 1 MiB
FAST_ID = r"([A-Za-z0-9_-]{1,128})"
SWAPPED = itemgetter(1, 0)


Take = Callable[[str, int], "Block | None"]  # (chunk's text, its first line) -> its Block
Vouches = Callable[[Block], bool]  # a block settled by its texts as written (ResumeIndex)


def fast_text(chunk: bytes, quotes: bool = False) -> str | None:
    """The chunk as text with a final newline, if the fast path may take it; else None.
    `quotes`: a quote may stand in it (the pattern places every quote itself)."""
    if b"\0" in chunk or (not quotes and b'"' in chunk) or (
            chunk.count(b"\r") != chunk.count(b"\r\n")):
        return None
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.endswith("\n") else text + "\n"


def pairs_taker(pattern: re.Pattern[str], swap: bool) -> Take:
    """A Take for plain lines: `pattern` captures (owner, file_id), or (file_id, owner) when
    `swap`, and must match every line."""
    def take(text: str, line: int) -> Block | None:
        pairs = pattern.findall(text)
        if len(pairs) != text.count("\n"):
            return None
        return Block(line, list(map(SWAPPED, pairs)) if swap else pairs)
    return take


def options_taker(pattern: re.Pattern[str], pair_at: itemgetter[Any], attributes_at: int | None,
                  chunking_at: int | None, columns: OptionColumns, *,
                  undouble: bool) -> Take:
    """A Take for lines with option columns: `pattern` captures the IDs (at `pair_at`) and the
    option texts (at `attributes_at`, `chunking_at`; "" when a row gives none), which
    `columns` checks (the attributes when the block is read: fast_blocks); `undouble`: the
    texts stand in CSV cells, quotes doubled."""
    def cells(rows: list[tuple[str, ...]], at: int | None) -> list[str] | None:
        if at is None:
            return None
        texts = list(map(itemgetter(at), rows))
        return texts if any(texts) else None

    reader = columns.reader(undouble)

    def take(text: str, line: int) -> Block | None:
        rows = pattern.findall(text)
        if len(rows) != text.count("\n"):
            return None
        attributes, chunking = cells(rows, attributes_at), cells(rows, chunking_at)
        if chunking is not None and not columns.chunking_ok(chunking, undouble):
            return None
        return Block(line, list(map(pair_at, rows)), attributes=attributes, reader=reader,
                     chunking=chunking, chunking_of=columns.strategies)
    return take


def _after_last_line(chunk: bytes) -> int:
    return chunk.rfind(b"\n") + 1


def fast_blocks(path: str, start: int, before: int, take: Take, quotes: bool = False,
                skips: Skips | None = None,
                cut: Callable[[bytes], int] = _after_last_line,
                vouches: Vouches | None = None) -> Iterator[Block | tuple[int, int]]:
    """Blocks from byte `start` on (where `before` lines lie behind); at the first chunk not
    taken, (offset, lines before) to resume from line by line. `skips`: runs of blocks an
    earlier pass settled, passed over unread (the take given its state after them). `cut`:
    where a full read is cut (after its last whole line). `vouches`: whether the resume
    index settles a block by its attribute texts as written; such a block is yielded unread
    (`vouched`), every other one read (Block.read)."""
    offset = start
    with open(path, "rb") as stream:
        while True:
            if skips and offset in skips:
                offset, lines, state = skips[offset]
                before += lines
                if state is not None:
                    take.state = state  # type: ignore[attr-defined]  # yaml_fast.YamlTake
            stream.seek(offset)
            chunk = stream.read(FAST_CHUNK)
            if not chunk:
                return
            if len(chunk) == FAST_CHUNK:
                at = cut(chunk)
                if not at:  # a line longer than a chunk: the line reader's
                    yield offset, before
                    return
                chunk = chunk[:at]
            text = fast_text(chunk, quotes)
            block = take(text, before + 1) if text is not None else None
            if block is not None and block.attributes is not None:
                # Texts the log recorded for these very pairs were checked when they were
                # sent: the same texts need no second look (nor a parse) to be settled.
                block.vouched = vouches is not None and vouches(block)
                if not block.vouched and not block.read():
                    block = None
            if text is None or block is None:
                yield offset, before
                return
            block.offset, block.end = offset, offset + len(chunk)
            block.span = text.count("\n")
            yield block
            before += block.span
            offset += len(chunk)
