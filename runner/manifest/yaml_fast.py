"""The fast path for grouped YAML: the shape tools write, read a chunk at a time as Blocks.

    vector_stores:
      vs_abc:
        - file-1
        - {file_id: file-2, attributes: {"team": "a", "year": 2021}}

The first line is the group key alone; then group lines (`  <ID>:`) at one indentation, each
followed by its entries at another: a bare ID, or a flow mapping of `file_id` and (in that
order) `attributes` and `chunking_strategy` written as JSON (block.py's plain kind, which YAML
reads exactly as JSON does). IDs start with a letter or `_` and are none of YAML's words for
true, false or null, so YAML reads them as the strings they look like. No comments, anchors,
tags, tabs or blank lines: any chunk that is not of this shape hands the document to the
composer (yaml_format), which reads it whole and gives the rows from that line on, and every
problem it finds, as before. Composing cost ~550 us an attributed entry and ~8 KB of nodes;
this costs a few.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import chain, repeat
from operator import itemgetter

from runner.errors import ManifestProblem
from runner.manifest.block import (
    Block,
    OptionColumns,
    Part,
    Skips,
    attribute_object,
    chunking_object,
)
from runner.manifest.fastpath import Vouches, fast_blocks
from runner.manifest.rows import NO_LOCAL_PATHS, LocalPaths
from runner.manifest.yaml_format import yaml_rows

# What PyYAML's reader refuses anywhere in a document (yaml.reader.Reader.NON_PRINTABLE).
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WORDS = "|".join(("true", "True", "TRUE", "false", "False", "FALSE", "yes", "Yes", "YES", "no",
                   "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL"))
YAML_ID = rf"((?!(?:{_WORDS})(?![A-Za-z0-9_-]))[A-Za-z_][A-Za-z0-9_-]{{0,127}})"
# The characters of plain ASCII text PyYAML takes: a chunk of only these needs no regex.
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\t\n\r"


def _printable(text: str) -> bool:
    """No character PyYAML's reader refuses; for ASCII text (nearly every manifest) one
    byte-table pass, a tenth of the regular expression's time."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    return _NON_PRINTABLE.search(text) is None


_SHAPE = re.compile(rb"([a-z_]+):\n( +)[A-Za-z_][A-Za-z0-9_-]*:\r?\n( +)- ")


def yaml_fast_start(path: str) -> tuple[str, int, str, str] | None:
    """(the group key, offset of line 2, group indentation, entry indentation) if the
    document opens in the fast path's shape: `<group key>:` alone on line 1, then a group line
    and its first entry, deeper or as deep."""
    with open(path, "rb") as stream:
        shape = _SHAPE.match(stream.read(4096))
    if shape is None or len(shape.group(3)) < len(shape.group(2)):
        return None
    return (shape.group(1).decode(), len(shape.group(1)) + 2, shape.group(2).decode(),
            shape.group(3).decode())


class YamlTake:
    """Takes a chunk of group and entry lines whole, as one Block (a column of line numbers,
    since group lines stand between the entries); None at anything else. Its `state` is the
    group the chunk's first entries belong to (the last group line before it)."""

    def __init__(self, owner_column: str, group_indent: str, entry_indent: str) -> None:
        # A group line, found after its newline: a pattern that opens with a literal is
        # searched for at C speed, where `^` with MULTILINE tried every character.
        self._group = re.compile(rf"\n{group_indent}{YAML_ID}:\r?\n")
        if owner_column == "vector_store_id":
            options = "".join(rf"(?:, {name}: ({pattern}))?" for name, pattern in (
                ("attributes", attribute_object('"')), ("chunking_strategy",
                                                       chunking_object('"'))))
        else:
            options = "()()"  # assistants take no options: such an entry is the composer's
        self._entry = re.compile(
            rf"^{entry_indent}- (?:{YAML_ID}|\{{file_id: {YAML_ID}{options}\}})\r?$",
            re.MULTILINE)
        self._columns = OptionColumns(owner_column)
        self._reader = self._columns.reader(False)
        self._seen: set[str] = set()  # group names met: a repeat is the composer's to name
        self.state: str | None = None

    def __call__(self, text: str, line: int) -> Block | None:
        if not _printable(text):
            return None
        parts = self._split(text)  # [entries, group, entries, group, entries, ...]
        groups = parts[1::2]
        bodies = parts[0::2]
        if (parts[0] and self.state is None) or any(not body for body in bodies[1:]):
            return None  # entries before any group, or a group without entries
        if not self._seen.isdisjoint(groups) or len(set(groups)) != len(groups):
            return None
        owners: list[str] = [self.state or "", *groups]
        first = line
        pairs: list[tuple[str, str]] = []
        lines: list[range] = []
        attributes: list[str] = []
        chunking: list[str] = []
        for owner, body in zip(owners, bodies, strict=True):
            rows = self._entry.findall(body)
            count = body.count("\n")
            if len(rows) != count:
                return None
            if count:
                pairs += zip(repeat(owner), map(max, map(itemgetter(0, 1), rows)))
                attributes += map(itemgetter(2), rows)
                chunking += map(itemgetter(3), rows)
                lines.append(range(line, line + count))
            line += count + 1  # the group line after these entries
        given_attributes = attributes if any(attributes) else None
        given_chunking = chunking if any(chunking) else None
        if given_chunking is not None and not self._columns.chunking_ok(given_chunking, False):
            return None
        self._seen.update(groups)
        if groups:
            self.state = groups[-1]
        block = Block(first, pairs, attributes=given_attributes, reader=self._reader,
                      chunking=given_chunking, chunking_of=self._columns.strategies,
                      lines=list(chain.from_iterable(lines)))
        block.state = self.state
        return block

    def _split(self, text: str) -> list[str]:
        """The text cut at its group lines: entries, group, entries, ... (as `re.split` with
        the group line's pattern anchored at each line's start would cut it)."""
        parts: list[str] = []
        at = 0
        # Index i of "\n" + text is index i - 1 of text: a match at i is a group line that
        # starts at text[i], and ends before text[end - 1].
        for found in self._group.finditer("\n" + text):
            parts += (text[at:found.start()], found.group(1))
            at = found.end() - 1
        parts.append(text[at:])
        return parts


def yaml_parts(display: str, path: str, owner_column: str, group_key: str,
               said_on: int | None, skips: Skips | None = None,
               vouches: Vouches | None = None,
               local: LocalPaths = NO_LOCAL_PATHS) -> Iterator[Part]:
    """Grouped YAML through the fast path while it keeps the shape; then the composer's rows
    from the first line it did not take on (and every problem the composer finds)."""
    start = yaml_fast_start(path)
    handed_over = 1
    if start is not None and start[0] == group_key:
        _, offset, group_indent, entry_indent = start
        take = YamlTake(owner_column, group_indent, entry_indent)
        for part in fast_blocks(path, offset, 1, take, True, skips, cut=_before_group_line,
                                vouches=vouches):
            if isinstance(part, Block):
                yield part
                continue
            handed_over = part[1] + 1
            break
        else:
            return
    for row in yaml_rows(display, path, owner_column, group_key, said_on, local):
        if isinstance(row, ManifestProblem) or row.line >= handed_over:
            yield row


def _before_group_line(chunk: bytes) -> int:
    """Where a chunk of whole lines is cut so that it never ends with a group line (whose
    entries, in the next chunk, must be seen with it to tell an empty group)."""
    cut = chunk.rfind(b"\n") + 1
    while cut:
        start = chunk.rfind(b"\n", 0, cut - 1) + 1
        line = chunk[start:cut].rstrip(b"\r\n")
        if not line.endswith(b":"):
            return cut
        cut = start
    return 0
