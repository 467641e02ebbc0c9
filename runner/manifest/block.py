"""Blocks: runs of valid rows the fast path read in bulk, with each pair's data in columns.

A Block is what the fast path yields for a chunk of manifest lines it took whole: the pairs, and
for a manifest with per-file options, one column a field (the `attributes` and
`chunking_strategy` JSON as written, "" where a row gives none). Nothing is parsed a row at a
time: a block's attributes are read with one JSON call, their digests made in bulk
(attributes.digest_values), and a row becomes an Item only when the run must plan it alone. The
option text the fast path admits (`attribute_object`) is one `read_options` accepts as it is,
but for a key given twice, which `OptionColumns` finds by counting. So a converged rerun of an
attributed manifest costs a few C-level passes over each block, not a parse and a check a pair.

Local files (the `path` rows) are meant to plug in here the same way: a column of paths and one
of their fingerprints, compared in bulk with the log's, the content read only where they differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from itertools import compress
from typing import Any, TypeAlias

from runner.attributes import Options, canonical_texts, digest_values
from runner.errors import ManifestProblem
from runner.items import Item
from runner.manifest.common import DuplicateKey, NotFinite, load_json
from runner.manifest.options import (
    MAX_EXACT_INT,
    MAX_KEY_CHARS,
    MAX_KEYS,
    MAX_STRING_CHARS,
    read_options,
)

Part: TypeAlias = "Block | Item | ManifestProblem"  # what a format reader yields
# Runs of blocks a pass may skip: byte offset -> (end, lines, the reader's state at the end).
Skips: TypeAlias = "Mapping[int, tuple[int, int, object]]"

_PLAIN = r'[^"\\\x00-\x1f]'  # a character a JSON string holds as it is


def attribute_object(quote: str) -> str:
    """A regular expression for an `attributes` object any row may give and `read_options`
    takes as written (keys given twice aside): at most 16 keys of 1-64 plain characters, values
    strings (escapes allowed, no lone surrogate), integers of at most 15 digits (under 2^53),
    decimals without an exponent, booleans; single spaces after `{`, `:` and `,`. `quote` is how
    a quote is written: `"` in JSON, `""` in a CSV cell. Anything else (null, nesting, an
    exponent, a key with an escape) is left to the line-by-line reader, which names it."""
    escape = rf'\\(?:{quote}|[\\/bfnrt]|u(?![dD][89abAB])[0-9a-fA-F]{{4}})'
    key = rf"{quote}{_PLAIN}{{1,{MAX_KEY_CHARS}}}{quote}"
    # A string's length is checked after it is read (OptionColumns), not here: a bounded
    # alternation cost the regex half again its time.
    string = rf"{quote}{_PLAIN}*+(?:{escape}{_PLAIN}*+)*+{quote}"  # possessive: no backtracking
    number = r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]+)?"
    member = rf"{key}: ?(?:{string}|{number}|true|false)"
    return rf"\{{ ?(?:{member}(?:, ?{member}){{0,{MAX_KEYS - 1}}})? ?\}}"


def chunking_object(quote: str) -> str:
    """A loose regular expression for a `chunking_strategy` object (one level of nesting):
    each distinct text is read and checked once (OptionColumns), a wrong one leaves the chunk
    to the line-by-line reader."""
    if quote == '""':
        return r'\{(?:[^"\r\n]|"")*\}'
    return r"\{(?:[^{}\r\n]|\{[^{}\r\n]*\})*\}"


class Block:
    """Valid pairs of consecutive lines, from `line` on, read in bulk by the fast path; bytes
    `offset` to `end` of the manifest. `attributes` and `chunking`: the rows' option texts
    (JSON, "" where a row gives none), or None when no row of the block gives that option."""

    __slots__ = ("line", "pairs", "offset", "end", "attributes", "chunking", "doubled",
                 "lines", "span", "state", "_chunking_of", "_compared", "_as_written")

    def __init__(self, line: int, pairs: list[tuple[str, str]], offset: int = 0, end: int = 0,
                 attributes: list[str] | None = None, chunking: list[str] | None = None,
                 chunking_of: dict[str, dict[str, Any]] | None = None,
                 compared: list[Any] | None = None, doubled: bool = False,
                 lines: list[int] | None = None, as_written: bool = False) -> None:
        self.line = line
        self.pairs = pairs  # (owner, file_id)
        self.offset = offset
        self.end = end
        self.attributes = attributes
        self.chunking = chunking
        self.doubled = doubled  # the texts as they stand in CSV cells: every quote doubled
        # Each pair's line, where the block's lines hold more than pairs (YAML's group lines);
        # else pair i stands on line + i.
        self.lines = lines
        self.span = len(pairs)  # the lines it covers (fastpath sets it)
        self.state: object = None  # the reader's state after it (yaml_fast.YamlTake)
        self._chunking_of = chunking_of or {}  # chunking text -> the checked strategy
        # The given attribute objects as read for comparing (OptionColumns.read): read once.
        self._compared = compared
        # Whether `compared` is also what was written (no whole float made an int): the
        # run's Items then take the objects the check of the chunk read, not a second read.
        self._as_written = as_written

    def items(self) -> Iterator[Item]:
        """The block taken apart: one Item a pair, with its line and options."""
        numbers = self.lines or range(self.line, self.line + len(self.pairs))
        if self.attributes is None and self.chunking is None:
            for line, (owner, file_id) in zip(numbers, self.pairs, strict=True):
                yield Item(owner, file_id, line)
            return
        count = len(self.pairs)
        attributes: list[Any]
        if self.attributes is None:
            attributes = [None] * count
        elif self._compared is not None and self._as_written:
            attributes = _spread(self._compared, self.attributes)  # read once, no float in it
        else:
            attributes = _read_attributes(self.attributes, self.doubled, exact=False)
        chunking_of = self._chunking_of
        chunking = ([None] * count if self.chunking is None
                    else [chunking_of.get(text) for text in self.chunking])
        given_attributes = self.attributes or [""] * count
        given_chunking = self.chunking or [""] * count
        # The canonical texts the run's bodies, comparisons and digests use, made in bulk.
        canonicals: list[str | None] = (
            [None] * count if self.attributes is None or self._compared is None
            else _spread(canonical_texts(self._compared), self.attributes))
        for line, (owner, file_id), values, strategy, a_text, c_text, text in zip(
                numbers, self.pairs, attributes, chunking, given_attributes, given_chunking,
                canonicals, strict=True):
            options = Options(values, strategy, text) if (a_text or c_text) else None
            yield Item(owner, file_id, line, options)

    def digests(self) -> list[int | None]:
        """Each row's digest of its managed attributes (attributes.digest_value), None where
        the row gives none: what the log's `done` lines must hold for the block to be settled."""
        texts = self.attributes
        if texts is None:
            return [None] * len(self.pairs)
        given = list(map(bool, texts))
        compared = self._compared
        if compared is None:
            compared = _read_attributes(list(compress(texts, given)), self.doubled, exact=True)
        values = digest_values(compared)
        if len(values) == len(texts):
            return list(values)
        out: list[int | None] = [None] * len(texts)
        taken = iter(values)
        for at in compress(range(len(texts)), given):
            out[at] = next(taken)
        return out


_WHOLE_READ = [0]  # whole floats _whole has read as ints, so far: see OptionColumns.read


def _whole(text: str) -> Any:
    """A float the manifest wrote as a whole number (2021.0) read as the int it equals, as
    attributes.canonical spells it."""
    value = float(text)
    if value.is_integer() and abs(value) <= MAX_EXACT_INT:
        _WHOLE_READ[0] += 1
        return int(value)
    return value


_AS_WRITTEN = json.JSONDecoder()
_AS_COMPARED = json.JSONDecoder(parse_float=_whole)


def _read_attributes(texts: list[str], doubled: bool, *, exact: bool) -> list[Any]:
    """The attribute objects of a block in one JSON call ("" -> None). `exact`: whole floats
    read as ints (for digests; an Item keeps what was written, as the line reader does)."""
    decoder = _AS_COMPARED if exact else _AS_WRITTEN
    return _spread(decoder.decode(_joined(list(filter(None, texts)), doubled)), texts)


def _spread(given: list[Any], texts: list[str]) -> list[Any]:
    """The objects read from the given texts, one a row: None where a row gives none."""
    if len(given) == len(texts):
        return list(given)
    taken = iter(given)
    return [next(taken) if text else None for text in texts]


def _joined(texts: list[str], doubled: bool) -> str:
    """The texts as one JSON list; CSV's doubled quotes undone in one call for them all."""
    joined = "[" + ",".join(texts) + "]"
    return joined.replace('""', '"') if doubled else joined


class OptionColumns:
    """Checks the option columns of a chunk the fast path would take: every text the regular
    expressions admitted is read once, and the chunk is refused (None) where a row's options
    would be a problem, so the line-by-line reader names it. Keeps each distinct chunking text
    checked once for the whole manifest."""

    def __init__(self, owner_column: str) -> None:
        self.owner_column = owner_column
        self.strategies: dict[str, dict[str, Any]] = {}  # chunking text -> the strategy
        self._refused: set[str] = set()

    def read(self, texts: list[str], doubled: bool) -> tuple[list[Any], bool] | None:
        """The given attribute objects (whole floats read as ints, as compared: see
        Block.digests) and whether they are also as written (no such float in them); None if
        a key is given twice (json keeps the last: counted instead) or a string is too long."""
        given = list(filter(None, texts))
        if not given:
            return [], True
        joined = _joined(given, doubled)
        whole_before = _WHOLE_READ[0]
        try:
            objects: list[Any] = _AS_COMPARED.decode(joined)
        except ValueError:  # the regex let through what json refuses: the line reader's
            return None
        # A key's closing quote before its colon is never escaped (keys take no escapes); a
        # string's `":` always is. Each object has at most as many keys as members written, so
        # equal sums mean no object lost a key given twice.
        members = joined.count('":') - joined.count('\\":')
        if sum(map(len, objects)) != members:
            return None
        # A long text may hold a long string.
        if max(map(len, given)) > MAX_STRING_CHARS and not all(map(_strings_fit, objects)):
            return None
        return objects, _WHOLE_READ[0] == whole_before

    def chunking_ok(self, texts: list[str], doubled: bool) -> bool:
        """Every distinct chunking text reads as a strategy `read_options` accepts."""
        for text in set(texts).difference(self.strategies, self._refused, ("",)):
            strategy = self._strategy(text.replace('""', '"') if doubled else text)
            if strategy is None:
                self._refused.add(text)
            else:
                self.strategies[text] = strategy
        return self._refused.isdisjoint(texts)

    def _strategy(self, text: str) -> dict[str, Any] | None:
        try:
            value = load_json(text)
        except (DuplicateKey, NotFinite, ValueError, RecursionError):
            return None
        options, problem = read_options({"chunking_strategy": value}, self.owner_column)
        if problem is not None or options is None or options.chunking_strategy is None:
            return None
        return dict(options.chunking_strategy)


def _strings_fit(obj: dict[str, Any]) -> bool:
    return all(len(value) <= MAX_STRING_CHARS for value in obj.values()
               if isinstance(value, str))

