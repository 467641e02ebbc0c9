"""Blocks: runs of valid rows the fast path read in bulk, with each pair's data in columns.

A Block is what the fast path yields for a chunk of manifest lines it took whole: the pairs, and
for a manifest with per-file options, one column a field (the `attributes` and
`chunking_strategy` JSON as written, "" where a row gives none). Nothing is parsed a row at a
time: a block's attributes are read with one JSON call, their canonical texts, digests and
fingerprints made in bulk (attributes.canonical_texts, digest_values_of, fingerprints_of), and a
row becomes an Item only when the run must plan it alone. The option text the fast path admits
(`attribute_object`) is one `read_options` accepts as it is, but for a key given twice, which
`OptionColumns` finds by counting. So a converged rerun of an attributed manifest costs a few
C-level passes over each block, not a parse and a check a pair. Attribute objects keep whole
floats as ints (2021.0 as 2021): every use of them (the body, the comparison, the digest) reads
numbers by value.

Local files (the `path` rows) are meant to plug in here the same way: a column of paths and one
of their fingerprints, compared in bulk with the log's, the content read only where they differ.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeAlias

import orjson

from runner.attributes import Options, canonical_texts, digest_values_of, fingerprints_of
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
# Reads a block's given attribute texts: their objects, or None (OptionColumns.read).
ReadAttributes: TypeAlias = "Callable[[list[str]], list[Any] | None]"
# Runs of blocks a pass may skip: byte offset -> (end, lines, the reader's state at the end).
Skips: TypeAlias = "Mapping[int, tuple[int, int, object]]"

_PLAIN = r'[^"\\\x00-\x1f]'  # a character a JSON string holds as it is


def attribute_object(quote: str) -> str:
    """A regular expression for an `attributes` object any row may give and `read_options`
    takes as written (keys given twice aside): at most 16 keys of 1-64 plain characters, values
    strings (escapes allowed, no surrogate), integers of at most 15 digits (under 2^53),
    decimals without an exponent, booleans; single spaces after `{`, `:` and `,`. `quote` is how
    a quote is written: `"` in JSON, `""` in a CSV cell. Anything else (null, nesting, an
    exponent, a key with an escape) is left to the line-by-line reader, which names it."""
    # No surrogate escape (\ud800-\udfff): a pair, or a half alone, is the line reader's.
    escape = rf'\\(?:{quote}|[\\/bfnrt]|u(?![dD][89a-fA-F])[0-9a-fA-F]{{4}})'
    # Every quantifier is possessive (`*+`, `?+`, `{m,n}+`): what follows each can never
    # start with what it repeats (a key's or string's characters exclude the quote; digits
    # are followed by `.`, `,`, ` ` or `}`; a member by `,` or the closing ` }`), so giving
    # back never finds another match, and not keeping the way back made the whole manifest's
    # regex a fifth faster (0.154 -> 0.120 s over 100k attributed CSV rows).
    key = rf"{quote}{_PLAIN}{{1,{MAX_KEY_CHARS}}}+{quote}"
    # A string's length is checked after it is read (OptionColumns), not here: a bounded
    # alternation cost the regex half again its time.
    string = rf"{quote}{_PLAIN}*+(?:{escape}{_PLAIN}*+)*+{quote}"
    number = r"-?+(?:0|[1-9][0-9]{0,14}+)(?:\.[0-9]++)?+"
    member = rf"{key}: ?+(?:{string}|{number}|true|false)"
    return rf"\{{ ?+(?:{member}(?:, ?+{member}){{0,{MAX_KEYS - 1}}}+)?+ ?+\}}"


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
    (JSON, "" where a row gives none), or None when no row of the block gives that option;
    `reader`: what reads the given attribute texts (OptionColumns.read), once, at `read`."""

    __slots__ = ("line", "pairs", "offset", "end", "attributes", "chunking", "lines", "span",
                 "state", "vouched", "_chunking_of", "_reader", "_objects", "_canonicals",
                 "_written")

    def __init__(self, line: int, pairs: list[tuple[str, str]], offset: int = 0, end: int = 0,
                 attributes: list[str] | None = None, reader: ReadAttributes | None = None,
                 chunking: list[str] | None = None,
                 chunking_of: dict[str, dict[str, Any]] | None = None,
                 lines: list[int] | None = None) -> None:
        self.line = line
        self.pairs = pairs  # (owner, file_id)
        self.offset = offset
        self.end = end
        self.attributes = attributes
        self.chunking = chunking
        # Each pair's line, where the block's lines hold more than pairs (YAML's group lines);
        # else pair i stands on line + i.
        self.lines = lines
        self.span = len(pairs)  # the lines it covers (fastpath sets it)
        self.state: object = None  # the reader's state after it (yaml_fast.YamlTake)
        # Settled by its attributes' texts as written (fastpath's `vouches`), left unread.
        self.vouched = False
        self._chunking_of = chunking_of or {}  # chunking text -> the checked strategy
        self._reader = reader  # reads the given attribute texts (OptionColumns.read)
        # The given texts' objects, read once (`read`; whole floats as ints: every use of
        # them, body, comparison, digest, reads numbers by value); None until then.
        self._objects: list[Any] | None = None if attributes is not None else []
        self._canonicals: list[str] | None = None  # their canonical texts, made once
        self._written: list[int] | None = None  # their fingerprints as written (`written`)

    @classmethod
    def restored(cls, line: int, pairs: list[tuple[str, str]], lines: list[int] | None,
                 canonicals: list[str] | None, written: list[int] | None,
                 chunking: list[str] | None, chunking_of: dict[str, dict[str, Any]]) -> Block:
        """A block as the check kept it (kept.KeptParts): its attributes already made into
        their canonical texts ("" where a row gives none), which then stand as its
        `attributes` too (only whether a row gives some is asked of those), and fingerprints."""
        block = cls(line, pairs, attributes=canonicals, chunking=chunking,
                    chunking_of=chunking_of, lines=lines)
        if canonicals is not None:
            block._canonicals = list(filter(None, canonicals))
            block._written = written
        return block

    @property
    def chunking_of(self) -> dict[str, dict[str, Any]]:
        """Each chunking text of the manifest checked so far -> its strategy."""
        return self._chunking_of

    def kept_columns(self) -> tuple[list[str] | None, list[int] | None]:
        """What the run needs of the block's attributes, for the check to keep (KeptParts):
        their canonical texts and their fingerprints as written, one a row ("" and 0 where a
        row gives none), or (None, None) when no row gives any."""
        if self.attributes is None:
            return None, None
        return _spread(self._canonical_texts(), self.attributes, ""), self.written()

    def read(self) -> bool:
        """Read the given attribute texts (one JSON call for the block); False where a row's
        would be a problem (a key given twice, a string too long): the line reader's then."""
        if self._objects is None and self._reader is not None:
            self._objects = self._reader(self.attributes or [])
        return self._objects is not None

    def written(self) -> list[int]:
        """Each row's fingerprint of its attributes as written (Options.written_digest as an
        int), 0 where the row gives none: what the log's `done` lines hold for a rerun to
        settle the block without reading it."""
        if self._written is None:
            self._written = self._fingerprints(fingerprints_of)
        return self._written

    def written_before(self) -> list[int]:
        """`written` as versions before 2026-12-06 made it (BLAKE2b, digest_values_of), which
        their logs hold: asked only of a block whose fingerprints the log does not hold, so
        that a log written before the upgrade still settles its blocks unread."""
        return self._fingerprints(digest_values_of)

    def _fingerprints(self, hashed: Callable[[list[str]], list[int]]) -> list[int]:
        """`hashed` of each row's attributes text as read (never of a restored block, whose
        texts are canonical: its `written` was kept), 0 where a row gives none."""
        if self.attributes is None:
            return [0] * len(self.pairs)
        return _spread(hashed(list(filter(None, self.attributes))), self.attributes, 0)

    def items(self) -> Iterator[Item]:
        """The block taken apart: one Item a pair, with its line and options."""
        numbers = self.lines or range(self.line, self.line + len(self.pairs))
        if self.attributes is None and self.chunking is None:
            for line, (owner, file_id) in zip(numbers, self.pairs, strict=True):
                yield Item(owner, file_id, line)
            return
        count = len(self.pairs)
        given_attributes = self.attributes or [""] * count
        # The canonical texts the run's bodies, comparisons and digests use, and the
        # fingerprints of the texts as written the `done` lines record, made in bulk.
        canonicals = _spread(self._canonical_texts(), given_attributes)
        written = self.written()
        chunking_of = self._chunking_of
        given_chunking = self.chunking or [""] * count
        chunking = [chunking_of.get(text) for text in given_chunking]
        for line, (owner, file_id), text, strategy, fingerprint, c_text in zip(
                numbers, self.pairs, canonicals, chunking, written, given_chunking,
                strict=True):
            options = (Options.spelled(text, strategy, fingerprint or None)
                       if (text or c_text) else None)
            yield Item(owner, file_id, line, options)

    def digests(self) -> list[int | None]:
        """Each row's digest of its managed attributes (attributes.digest_value), None where
        the row gives none: what the log's `done` lines must hold for the block to be settled."""
        if self.attributes is None:
            return [None] * len(self.pairs)
        return _spread(digest_values_of(self._canonical_texts()), self.attributes)

    def _canonical_texts(self) -> list[str]:
        if self._canonicals is None:
            self._canonicals = canonical_texts(self._read_objects())
        return self._canonicals

    def _read_objects(self) -> list[Any]:
        # A block is read before it is yielded unless vouched for, and a vouched block is
        # settled: nothing asks a vouched block for its Items or digests.
        self.read()
        if self._objects is None:
            raise RuntimeError("a block's attributes were used though they do not read")
        return self._objects


def _whole(text: str) -> Any:
    """A float the manifest wrote as a whole number (2021.0) read as the int it equals, as
    attributes.canonical spells it."""
    return _whole_value(float(text))


def _whole_value(value: float) -> Any:
    return int(value) if value.is_integer() and abs(value) <= MAX_EXACT_INT else value


_DECODER = json.JSONDecoder(parse_float=_whole)
# A number with a fraction of zeros (2021.0), or a string that looks like one.
_WHOLE_FLOAT = re.compile(r"[0-9]\.0+(?![0-9])")


def _decode(joined: str) -> Any:
    """The block's texts as one JSON list (objects), by orjson (2-3x json's speed), whole
    floats then made ints where one may stand in them; json, with its hook, reads what orjson
    refuses (nothing the regex admits, but json decides)."""
    try:
        objects = orjson.loads(joined)
    except orjson.JSONDecodeError:
        return _DECODER.decode(joined)
    if _WHOLE_FLOAT.search(joined) is not None:
        objects = list(map(_wholes, objects))
    return objects


def _wholes(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with each float that is a whole number read as `_whole` reads it."""
    if not any(type(value) is float and value.is_integer() for value in obj.values()):
        return obj
    return {key: _whole_value(value) if type(value) is float else value
            for key, value in obj.items()}


def _spread(given: list[Any], texts: list[str], empty: Any = None) -> list[Any]:
    """The values made of the given (non-empty) texts, one a row: `empty` where a row gives
    none."""
    if len(given) == len(texts):
        return list(given)
    taken = iter(given)
    return [next(taken) if text else empty for text in texts]


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

    def reader(self, doubled: bool) -> ReadAttributes:
        """`read` for a block's texts (`doubled`: CSV cells), for the block to call when it
        must be read."""
        return functools.partial(self.read, doubled=doubled)

    def read(self, texts: list[str], doubled: bool) -> list[Any] | None:
        """The objects of the given attribute texts, in one JSON call (whole floats read as
        ints, as attributes.canonical spells them); None if a key is given twice (json keeps
        the last: counted instead) or a string is too long."""
        given = list(filter(None, texts))
        if not given:
            return []
        joined = _joined(given, doubled)
        try:
            objects: list[Any] = _decode(joined)
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
        return objects

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

