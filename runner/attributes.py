"""Per-file options of a vector-store pair: what a manifest gives, how two sets of attributes
compare, and the digest the log keeps of what a pair was left with.

Options that are not given are not managed (SPEC): `Options.attributes is None` means "leave
whatever the store holds"; `{}` means "no attributes". The same for `chunking_strategy`.

Comparison follows SPEC's strict typing: booleans are not numbers (`true` != `1`), numbers
compare by value (`2021` == `2021.0`), strings by code points. `canonical` spells a set in one
way that keeps those rules (integral floats written as integers, keys sorted, no spaces), and
`digest` is a short hash of it, kept in the log's `done` lines and the resume index.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from operator import methodcaller
from typing import Any, Literal, TypeAlias

import orjson
import xxhash

AttributeValue: TypeAlias = "str | int | float | bool"
Attributes: TypeAlias = "Mapping[str, AttributeValue]"

# What the API reports for a file added with {"type": "auto"} (or with no strategy).
AUTO_STATIC = (800, 400)  # max_chunk_size_tokens, chunk_overlap_tokens


class Options:
    """A pair's per-file options, as checked by the manifest reader. None: not given. The
    attributes' canonical text (and so their digest) is made once a pair, however many times
    the run needs it (the request body, the comparison with the store's, the `done` line).

    A fast-path row's attributes are kept as that canonical text alone (`spelled`) and read
    again whenever they are asked for: a run holds tens of thousands of Items at once (64
    batches of 500 in flight), and a dict of attributes costs three times its text."""

    __slots__ = ("chunking_strategy", "written", "_attributes", "_canonical")

    def __init__(self, attributes: Attributes | None = None,
                 chunking_strategy: Mapping[str, Any] | None = None) -> None:
        self._attributes: Any = attributes  # or _SPELLED: read from _canonical when asked
        self.chunking_strategy = chunking_strategy
        # The fingerprint (fingerprints_of) of the attributes' text exactly as the fast path
        # read it (a CSV cell's quotes still doubled), when it did: the log records it beside
        # the digest, so that a rerun can settle the row by its text, unparsed.
        self.written: int | None = None
        self._canonical: str | None = None  # canonical(attributes), made once

    @classmethod
    def spelled(cls, canonical_text: str | None, chunking_strategy: Mapping[str, Any] | None,
                written: int | None) -> Options:
        """Options kept as the canonical text of their attributes (None: not managed), made
        in bulk by the caller (a block), and the fingerprint of the text as written."""
        options = cls(None, chunking_strategy)
        if canonical_text is not None:
            options._attributes = _SPELLED
            options._canonical = canonical_text
        options.written = written
        return options

    @property
    def attributes(self) -> Attributes | None:
        """The managed attributes (None: not managed)."""
        if self._attributes is _SPELLED:
            spelled: Attributes = _read_canonical(self._canonical or "{}")  # set together
            return spelled
        given: Attributes | None = self._attributes
        return given

    @property
    def manages_attributes(self) -> bool:
        """Whether the row gives attributes (without reading them)."""
        return self._attributes is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Options):
            return NotImplemented
        return (self.attributes, self.chunking_strategy) == (
            other.attributes, other.chunking_strategy)

    __hash__ = None  # type: ignore[assignment]  # holds dicts, as the tuple it was did

    def __repr__(self) -> str:
        return f"Options({self.attributes!r}, {self.chunking_strategy!r})"

    def canonical(self) -> str:
        """`canonical(self.attributes)`, made once."""
        text = self._canonical
        if text is None:
            text = self._canonical = canonical(self._attributes)
        return text

    def digest(self) -> str:
        """`digest(self.attributes)`, from the canonical text made once."""
        return _digest_of(self.canonical())

    def digest_value(self) -> int | None:
        """`digest_value(self.attributes)`, None when the attributes are not managed: from
        the canonical text made once, never from the attributes read again."""
        return int(self.digest(), 16) if self._attributes is not None else None

    def written_digest(self) -> str | None:
        """The fingerprint of the attributes as written, as the log spells it, or None when
        the manifest's line reader read them (no text kept)."""
        return None if self.written is None else digest_text(self.written)

    def members(self) -> str:
        """The options as JSON members for a request body (`,"attributes":{...}`), or "". The
        attributes go in their canonical spelling (keys sorted, 2021.0 as 2021: the same JSON
        values), made once for the comparison and the digest too."""
        out = ""
        if self._attributes is not None:
            out += ',"attributes":' + self.canonical()
        if self.chunking_strategy is not None:
            out += ',"chunking_strategy":' + _compact(self.chunking_strategy)
        return out


_SPELLED: Any = object()  # Options' attributes kept as their canonical text
_read_canonical = orjson.loads  # canonical text holds whole floats as ints: orjson reads it


# Made once: `json.dumps` with any option builds an encoder every call (~2 us a pair). Each is
# the encoder `json.dumps` would build for the same options, so the text is the same.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)


def _compact(value: object) -> str:
    return _COMPACT.encode(value)


def _normal(value: object) -> object:
    # bool is a subclass of int, never of float: True stays true.
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def canonical(attributes: Attributes | None) -> str:
    """One spelling per set of attributes: sorted keys, no spaces, types kept, numbers by
    value. None (the store reports no attributes) is the empty set."""
    if not attributes:
        return "{}"
    normal = {key: _normal(value) for key, value in attributes.items()}
    return _CANONICAL.encode(normal)


def digest(attributes: Attributes | None) -> str:
    """16 hex digits of BLAKE2b over `canonical`: what the log records of a pair's attributes."""
    return _digest_of(canonical(attributes))


def _digest_of(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def digest_value(attributes: Attributes | None) -> int:
    """`digest` as the 64-bit int the resume index and sync's plan keep."""
    return int(digest(attributes), 16)


_BLAKE8 = functools.partial(hashlib.blake2b, digest_size=8)
_DIGEST_BYTES = methodcaller("digest")
_VALUES = methodcaller("values")
_BIG: Literal["big"] = "big"


def canonical_texts(sets: Sequence[Mapping[str, AttributeValue]]) -> list[str]:
    """`canonical` of each set, in bulk, for sets whose whole floats are already ints (a
    fast-path block reads them so): one encoder call for all of them, split where one set ends
    and the next begins. A set that holds "},{" in a string would split in two: then each is
    encoded alone."""
    if not sets:
        return []
    whole = _encoded_in_bulk(sets)  # "[{...},{...}]": the sets' canonical texts, in a list
    # Canonical JSON holds no raw NUL (it escapes control characters): mark the boundaries.
    texts = whole[1:-1].replace("},{", "}\0{").split("\0")
    if len(texts) != len(sets):
        return [_CANONICAL.encode(one) for one in sets]
    return texts


def _encoded_in_bulk(sets: Sequence[Mapping[str, AttributeValue]]) -> str:
    """`_CANONICAL.encode(sets)`, by orjson (four times json's speed) when no value is a float:
    for strings, integers and booleans the two spell the same text (keys sorted by code point,
    the same escapes); a float's repr can differ (1e-05 against 1e-5), so json spells those.
    A lone surrogate, or an integer past 64 bits, orjson refuses: json's then."""
    if float not in set(map(type, chain.from_iterable(map(_VALUES, sets)))):
        with contextlib.suppress(orjson.JSONEncodeError):
            return orjson.dumps(sets, option=orjson.OPT_SORT_KEYS).decode()
    return _CANONICAL.encode(sets)


def digest_values_of(texts: Sequence[str]) -> list[int]:
    """The `digest_value` of each canonical text (canonical_texts): a BLAKE2b as a 64-bit int.
    (Of attributes texts as written, the fingerprints versions before 2026-12-06 logged.)"""
    hashed = map(_DIGEST_BYTES, map(_BLAKE8, map(str.encode, texts)))
    return list(map(int.from_bytes, hashed, repeat(_BIG)))


def fingerprints_of(texts: Sequence[str]) -> list[int]:
    """The fingerprint of each attributes text exactly as written (`Options.written_digest`):
    XXH3's 64 bits of its UTF-8. Equal texts as written mean equal attributes, so a rerun whose
    log recorded a pair's fingerprint needs neither to read its text nor to spell it
    canonically. Not BLAKE2b, as the digest is (and as these were before 2026-12-06: see
    Block.written_before): one call a text, against three, is a sixth of the time (12 against
    75 ms for 100k texts), and a collision is as unlikely as the digest's."""
    return list(map(xxhash.xxh3_64_intdigest, map(str.encode, texts)))


def digest_text(value: int) -> str:
    """A `digest_value` back as the log spells it (16 hex digits)."""
    return f"{value:016x}"


def same_attributes(a: Attributes | None, b: Attributes | None) -> bool:
    """`canonical(a) == canonical(b)`, without spelling either (a run compares after every add).
    Python's == already compares numbers by value and strings by code points; it only
    differs in taking a boolean for a number (True == 1), which SPEC's typing does not: so
    the sets are the same when == says so and every value is a boolean in both or in neither."""
    a, b = a or {}, b or {}
    if a != b:
        return False
    return all(isinstance(value, bool) is isinstance(b[key], bool) for key, value in a.items())


def same_as_canonical(shown: Sequence[Any], canonicals: Sequence[str]) -> list[bool]:
    """For each pair of the attributes a store shows (as an answer reads: None for none) and a
    canonical text: `same_attributes` of the two, in bulk (a batch's read-back compares a
    page of 100 at once). The shown sets are spelled in one call and compared as texts; only
    where the texts differ (a store showing 2021.0 for 2021, say) are they compared by value."""
    sets = [{} if one is None else one for one in shown]
    # A set that is not a dict is not what the API sends: each is then compared by value.
    texts = (canonical_texts(sets) if all(type(one) is dict for one in sets)
             else [""] * len(sets))
    return [text == wanted or (isinstance(one, Mapping)
                               and same_attributes(_read_canonical(wanted), one))
            for text, wanted, one in zip(texts, canonicals, sets, strict=True)]


def chunking_matches(wanted: Mapping[str, Any] | None, reported: Any) -> bool:
    """Whether a store's chunking strategy is what the manifest asks for (SPEC: none given
    matches everything; `auto` matches static 800/400 or `other`)."""
    if wanted is None:
        return True
    if not isinstance(reported, Mapping):
        return True  # the answer does not say: nothing to warn about
    kind = reported.get("type")
    static = reported.get("static")
    sizes = ((static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens"))
             if isinstance(static, Mapping) else None)
    if wanted.get("type") == "auto":
        return kind in ("auto", "other") or (kind == "static" and sizes == AUTO_STATIC)
    want = wanted.get("static")
    if not isinstance(want, Mapping) or kind != "static":
        return False
    return sizes == (want.get("max_chunk_size_tokens"), want.get("chunk_overlap_tokens"))
