"""Per-file options of a pair (vector stores): `attributes` and `chunking_strategy`, checked
value by value as SPEC's Manifests section has them.

Each format hands over plain Python values (a JSON cell or line as `json.loads` reads it, a
YAML node turned into one by yaml_format), so one set of rules and one set of messages serve
all three. Types are strict: a boolean is not a number, and a value YAML or JSON could only
approximate (NaN, an infinity, an integer past 2**53, a date) is refused rather than sent as
something the user did not write.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.attributes import Options
from runner.manifest.common import TARGET_OF, json_kind, show

OPTION_NAMES = ("attributes", "chunking_strategy")
MAX_KEYS = 16
MAX_KEY_CHARS = 64
MAX_STRING_CHARS = 512
MAX_EXACT_INT = 2**53  # past it a JSON number (a double) no longer holds every integer
MIN_TOKENS, MAX_TOKENS = 100, 4096
_STATIC_KEYS = ("max_chunk_size_tokens", "chunk_overlap_tokens")
_ATTRIBUTES_EXAMPLE = '{"year": 2021}'
_CHUNKING_EXAMPLE = ('{"type": "auto"} or {"type": "static", "static": '
                     '{"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}')


@dataclass(frozen=True)
class Unsupported:
    """A value a format reads as something no option may hold (a YAML date, a tagged scalar):
    `kind` names it in the message, `text` is how it was written."""

    kind: str
    text: str


class _Bad(Exception):
    """One wrong value; the message says what and what to do."""


def read_options(given: Mapping[str, Any], owner_column: str) -> tuple[Options | None, str | None]:
    """The pair's Options from the option fields present in `given` (absent: not managed), or
    the first problem. Plain pairs (no option field) give (None, None)."""
    if not any(name in given for name in OPTION_NAMES):
        return None, None
    if owner_column != "vector_store_id":
        name = next(name for name in OPTION_NAMES if name in given)
        target = TARGET_OF.get(owner_column, "this target")
        return None, (f"{name} are given but {target} has no per-file options (only vector "
                      f"stores do); remove them, or attach to a vector store")
    try:
        attributes = _attributes(given["attributes"]) if "attributes" in given else None
        chunking = (_chunking(given["chunking_strategy"]) if "chunking_strategy" in given
                    else None)
    except _Bad as exc:
        return None, str(exc)
    return Options(attributes, chunking), None


def _not_given(name: str, value: Any) -> None:
    if value is None:
        if name == "attributes":
            raise _Bad("attributes is null; leave the key out to leave the file's attributes "
                       "as they are, or give {} to clear them")
        raise _Bad("chunking_strategy is null; leave the key out to accept the store's choice, "
                   'or give {"type": "auto"}')


def _attributes(value: Any) -> dict[str, str | int | float | bool]:
    _not_given("attributes", value)
    if not isinstance(value, dict):
        raise _Bad(f"attributes is {_kind(value)}, not an object; write an object like "
                   f"{_ATTRIBUTES_EXAMPLE}")
    if len(value) > MAX_KEYS:
        raise _Bad(f"attributes has {len(value)} keys, over the limit of {MAX_KEYS}; keep at "
                   f"most {MAX_KEYS}")
    out: dict[str, str | int | float | bool] = {}
    for key, item in value.items():
        name = _key(key)  # first: the value's message shows the key
        out[name] = _attribute(name, item)
    return out


def _is_text(value: str) -> bool:
    """No lone surrogate (a JSON escape like \\udc00 alone): the string encodes as UTF-8."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _lone_surrogate(value: str) -> str:
    """The first lone surrogate of `value`, as its escape."""
    at = next(i for i, char in enumerate(value) if "\ud800" <= char <= "\udfff")
    return f"\\u{ord(value[at]):04x}"


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise _Bad(f"attribute key {show(_text(key))} is {_kind(key)}, not a string; quote it")
    if not key:
        raise _Bad(f"attributes has an empty key; name every attribute (1 to {MAX_KEY_CHARS} "
                   "characters)")
    if len(key) > MAX_KEY_CHARS:
        raise _Bad(f"attribute key {show(key)} is longer than {MAX_KEY_CHARS} characters; "
                   "shorten it")
    if not (key.isascii() or _is_text(key)):
        raise _Bad(f"attribute key {show(key)} holds {_lone_surrogate(key)}, half of a UTF-16 "
                   "pair, which is not text; write the character itself, or both halves of "
                   "its pair")
    return key


def _attribute(key: str, value: Any) -> str | int | float | bool:
    # The common values first, before any message text is built (show() per key cost ~4 us a
    # row when nothing was wrong); bool before int, of which it is a subclass.
    if isinstance(value, str):
        if len(value) <= MAX_STRING_CHARS and (value.isascii() or _is_text(value)):
            return value
    elif isinstance(value, bool):
        return value
    elif isinstance(value, int):
        if abs(value) <= MAX_EXACT_INT:
            return value
    elif isinstance(value, float) and math.isfinite(value):
        return value
    name = f"attribute {show(key)}"
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise _Bad(f"{name} is a string of {len(value)} characters, over the limit of "
                       f"{MAX_STRING_CHARS}; shorten it")
        raise _Bad(f"{name} holds {_lone_surrogate(value)}, half of a UTF-16 pair, which is "
                   "not text; write the character itself, or both halves of its pair")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INT:
            raise _Bad(f"{name} is {value}, beyond +-2^53, where numbers lose digits; write it "
                       "as a string")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad(f"{name} is not a finite number (it reads as {_text(value)}); give a "
                       "finite number, or a string")
        return value
    if value is None:
        raise _Bad(f"{name} is null; give it a value (a string, number or boolean), or leave "
                   "the key out")
    if isinstance(value, Unsupported):
        raise _Bad(f"{name} is {value.kind} ({show(value.text)}); quote it to keep it as a "
                   "string")
    if isinstance(value, list):
        raise _Bad(f"{name} is a list; values are strings, numbers or booleans: join the list "
                   "into one string")
    raise _Bad(f"{name} is {_kind(value)}; values are strings, numbers or booleans: give each "
               "nested value a key of its own")


def _chunking(value: Any) -> dict[str, Any]:
    _not_given("chunking_strategy", value)
    if not isinstance(value, dict):
        raise _Bad(f"chunking_strategy is {_kind(value)}, not an object; write "
                   f"{_CHUNKING_EXAMPLE}")
    kind = value.get("type")
    if kind == "auto":
        _only(value, ("type",), 'chunking_strategy of type "auto"')
        return {"type": "auto"}
    if kind != "static":
        shown = "missing" if "type" not in value else show(_text(kind))
        raise _Bad(f"chunking_strategy type is {shown}; use {_CHUNKING_EXAMPLE}")
    _only(value, ("type", "static"), 'chunking_strategy of type "static"')
    static = value.get("static")
    if not isinstance(static, dict):
        what = ('has no "static"' if "static" not in value
                else f'has "static" as {_kind(static)}, not an object')
        raise _Bad(f'chunking_strategy of type "static" {what}; write "static": '
                   '{"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}')
    _only(static, _STATIC_KEYS, 'chunking_strategy "static"')
    size = _tokens(static, "max_chunk_size_tokens", MIN_TOKENS, MAX_TOKENS)
    overlap = _tokens(static, "chunk_overlap_tokens", 0, MAX_TOKENS // 2)
    if overlap * 2 > size:
        raise _Bad(f"chunk_overlap_tokens is {overlap}, over half of max_chunk_size_tokens "
                   f"({size}); give at most {size // 2}")
    return {"type": "static",
            "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def _only(value: dict[Any, Any], allowed: tuple[str, ...], what: str) -> None:
    for key in value:
        if key not in allowed:
            names = " and ".join(f'"{name}"' for name in allowed)
            raise _Bad(f"{what} has an unknown key {show(_text(key))}; it takes only {names}")


def _tokens(static: dict[Any, Any], name: str, low: int, high: int) -> int:
    if name not in static:
        raise _Bad(f'chunking_strategy "static" has no {name}; give a whole number from '
                   f"{low} to {high}")
    value = static[name]
    # bool is an int in Python, and 800.0 is not what the API takes: whole numbers only.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{name} is {_kind(value)} ({show(_text(value))}), not a whole number; give "
                   f"a whole number from {low} to {high}")
    if not low <= value <= high:
        raise _Bad(f"{name} is {value}, out of range; give a whole number from {low} to {high}")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, Unsupported):
        return value.kind
    return json_kind(value)


def _text(value: Any) -> str:
    """How a value was written, near enough for a message."""
    if isinstance(value, Unsupported):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)
