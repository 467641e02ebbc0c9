"""Value kinds: how each setting's text is parsed and checked, and what a bad one is told.

A `Kind` turns the text of a flag, an environment variable or a config-file scalar into a value
or raises `InvalidValue`, whose text says what is wrong and what to give; the caller adds where
the value came from. The factories here (`whole_number`, `seconds`, `choice`, `header_value`,
`file_path`) and the fixed kinds (`BOOL`, base URL, variable name) cover every setting.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from runner.config.redact import is_key_not_path, looks_like_key, quote_value

# Defaults the messages below give as examples, so they live with the parsers.
DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV: Final = "OPENAI_API_KEY"
STDIN: Final = "-"


class InvalidValue(Exception):
    """A value is wrong; the text says what and what to give. The caller adds where."""


@dataclass(frozen=True)
class Kind:
    """How one setting's value is written and checked.

    `parse` takes the text of a flag, an environment variable or a config-file scalar and
    returns the value, or raises `InvalidValue`. `want` completes "give ..." in type errors.
    `plain_only`: in a config file the value must be an unquoted scalar (numbers, booleans).
    """

    parse: Callable[[str], Any]
    want: str
    plain_only: bool = False


def _bare(number_text: str) -> str:
    """A number as written, unquoted unless it is too long to read."""
    return number_text if len(number_text) <= 20 else quote_value(number_text, 20)


_WHOLE_TEXT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def whole_number(low: int, high: int, *, words: tuple[str, ...] = ()) -> Kind:
    """A whole number in [low, high]; `words` are extra accepted spellings ("auto" -> None)."""
    allowed = " or ".join([*words, f"{low} to {high}"])
    noun = "a whole number" + "".join(f" or {w}" for w in words)

    def parse(text: str) -> int | None:
        stripped = text.strip()
        if stripped.lower() in words:
            return None
        if not _WHOLE_TEXT.fullmatch(stripped):
            raise InvalidValue(f"{quote_value(text)} is not {noun}; give {allowed}")
        # Keep int() away from huge digit strings (Python refuses > 4300 digits).
        number = int(stripped) if len(stripped) <= 18 else None
        if number is None or not low <= number <= high:
            raise InvalidValue(f"{_bare(stripped)} is out of range; give {allowed}")
        return number

    return Kind(parse, allowed, plain_only=not words)


def seconds(low: float, high: float, *, above_low: bool) -> Kind:
    """A number of seconds in (low, high] when `above_low`, else [low, high]."""
    bounds = f"above {low:g} and at most {high:g}" if above_low else f"from {low:g} to {high:g}"
    allowed = f"a number of seconds {bounds}"

    def parse(text: str) -> float:
        stripped = text.strip()
        if not _DECIMAL_TEXT.fullmatch(stripped):
            raise InvalidValue(f"{quote_value(text)} is not a number of seconds; "
                               f"give a number {bounds}")
        value = float(stripped)
        too_low = value <= low if above_low else value < low
        if too_low or value > high:  # inf lands here too
            raise InvalidValue(f"{_bare(stripped)} is out of range; give {allowed}")
        return value

    return Kind(parse, allowed, plain_only=True)


def _parse_bool(text: str) -> bool:
    # YAML 1.1 also reads yes/no/on/off as booleans; we take only true/false.
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise InvalidValue(f"{quote_value(text)} is not true or false; give true or false")
    return lowered == "true"


BOOL: Final = Kind(_parse_bool, "true or false", plain_only=True)


def choice(names: tuple[str, ...], noun: str) -> Kind:
    """One of `names`; a near miss is answered with the closest name."""
    allowed = " or ".join(names) if len(names) == 2 else ", ".join(names[:-1]) + " or " + names[-1]

    def parse(text: str) -> str:
        if text in names:
            return text
        close = difflib.get_close_matches(text, names, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"give {allowed}"
        raise InvalidValue(f"unknown {noun} {quote_value(text)}; {hint}")

    return Kind(parse, allowed)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_base_url(text: str) -> str:
    url = text.strip()
    example = f"give e.g. {DEFAULT_BASE_URL}"
    if "@" in url:  # user:password@host: refuse without echoing what may be a credential
        raise InvalidValue(f"the URL holds a user name or password; remove it ({example})")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise InvalidValue(f"{quote_value(text)} is not a URL; {example}") from None
    bad_char = any(c.isspace() or not c.isprintable() for c in url)
    if parts.scheme not in ("http", "https") or not host or bad_char:
        raise InvalidValue(f"{quote_value(text)} is not a URL; {example}")
    if parts.query or parts.fragment:
        raise InvalidValue(f"{quote_value(text)} has a query or fragment; give the API root "
                           f"only, e.g. {DEFAULT_BASE_URL}")
    if parts.scheme == "http" and not _is_loopback(host):
        secure = "https://" + url.split("://", 1)[1]
        raise InvalidValue("plain http is allowed only to a loopback host (127.0.0.1, ::1, "
                           f"localhost); use {secure.rstrip('/')}")
    return url.rstrip("/")


BASE_URL: Final = Kind(_parse_base_url, f"an https URL (e.g. {DEFAULT_BASE_URL})")


def header_value(noun: str, example: str) -> Kind:
    """An ID sent as a header value: visible ASCII only (a space or newline would break it)."""

    def parse(text: str) -> str:
        value = text.strip()
        if looks_like_key(value):
            # An API key here would be sent as a header and echoed in the "next:" command.
            raise InvalidValue(f"the value looks like an API key, not {noun}; put the key in "
                               f"{DEFAULT_API_KEY_ENV} (or a file for --api-key-file) and give "
                               f"{noun} here (e.g. {example})")
        if not value or not all(0x21 <= ord(c) <= 0x7E for c in value):
            raise InvalidValue(f"{quote_value(text)} is not {noun}; it may hold no spaces, "
                               f"control or non-ASCII characters (e.g. {example})")
        return value

    return Kind(parse, f"{noun} (e.g. {example})")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")


def _parse_env_name(text: str) -> str:
    if not _ENV_NAME.fullmatch(text):
        # Never echo it: a key pasted here by mistake must not reach stderr.
        raise InvalidValue("not a variable name; give the NAME of the variable that holds the "
                           f"key (e.g. {DEFAULT_API_KEY_ENV}), not the key itself")
    return text


ENV_NAME: Final = Kind(_parse_env_name, "a variable name")


def file_path(*, no_stdin: str | None = None, refuse_keys: bool = True) -> Kind:
    """A file path; `no_stdin` says why "-" cannot stand for a standard stream here;
    `refuse_keys`: an API key given here is refused unseen (not made a file name)."""

    def parse(text: str) -> str:
        if not text or "\0" in text:
            raise InvalidValue("empty or not a path; give a file path")
        if refuse_keys and is_key_not_path(text):
            raise InvalidValue("the value looks like an API key, not a file path; give a file "
                               f"path (the key goes in {DEFAULT_API_KEY_ENV})")
        if text == STDIN and no_stdin is not None:
            raise InvalidValue(f'"-" cannot be used here ({no_stdin}); give a file path')
        return text

    return Kind(parse, "a file path")
