"""What every manifest format shares: the names of things, the shape of a row (an Item or a
ManifestProblem), the last check of a pair, reading CSV/JSONL as lines, and how a bad value is
shown in a message."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, TypeAlias

from runner.attributes import Options
from runner.errors import ManifestProblem
from runner.items import ID_RULE, Item, is_valid_id

FORMATS = ("csv", "yaml", "jsonl")
STDIN_DISPLAY = "<stdin>"
MAX_LINE_BYTES = 1 << 20  # a longer CSV/JSONL line is one problem, skipped without buffering it
SHOWN_CHARS = 40  # a bad value is shown up to this many characters

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF16_MESSAGE = "file is UTF-16 text; save it as UTF-8"
# Where each owner column belongs: the target that reads it, its YAML group key, an example ID.
TARGET_OF = {"assistant_id": "assistant-files", "vector_store_id": "vector-store-files"}
GROUP_OF = {"assistant_id": "assistants", "vector_store_id": "vector_stores"}
EXAMPLE_OF = {"assistant_id": "asst_abc", "vector_store_id": "vs_abc"}

Row: TypeAlias = "Item | ManifestProblem"


class ExpansionCache:
    """Expansions of a manifest's globs (paths.Expansion), by (line, text), kept while they
    hold at most `limit` files in all (~250 bytes each)."""

    def __init__(self, limit: int = 250_000) -> None:
        self.by_row: dict[tuple[int, str], Any] = {}
        self.files = 0
        self.limit = limit

    def keep(self, key: tuple[int, str], expansion: Any, files: int) -> None:
        if self.files + files <= self.limit:
            self.by_row[key] = expansion
            self.files += files


@dataclass(frozen=True)
class ManifestSource:
    """A manifest ready to read: `display` names it in messages, `path` is a real file."""

    display: str  # the path as the user gave it, or "<stdin>"
    path: str  # a regular file: stdin and pipes are spooled to a temporary file first
    format: str  # csv | yaml | jsonl
    # The globs this manifest's rows expanded to, (line, text) -> the expansion: the check's
    # pass expands them, and the run's pass takes them from here (rows.checked_rows).
    expansions: ExpansionCache = field(default_factory=lambda: ExpansionCache(),
                                       compare=False, repr=False)
    # A path named without a glob is not looked at (`detach`: it takes out the version the
    # log recorded, and the file may be gone).
    unread_paths: bool = field(default=False, compare=False)

    @property
    def base_dir(self) -> str | None:
        """The folder a relative `path` row is relative to: the manifest's own. None for a
        manifest read from stdin or a pipe (spooled: `path` is not `display`), which takes
        absolute paths only."""
        if self.display == STDIN_DISPLAY or self.path != self.display:
            return None
        return os.path.dirname(os.path.abspath(self.display))

    def identity(self) -> tuple[int, int, int]:
        """What tells the file changed between two reads: size, mtime_ns, inode."""
        info = os.stat(self.path)
        return info.st_size, info.st_mtime_ns, info.st_ino


NO_OPTIONS: tuple[Options | None, str | None] = (None, None)


def checked_pair(display: str, line: int, owner_column: str, owner: str, file_id: str,
                 noun: str, options: tuple[Options | None, str | None] = NO_OPTIONS) -> Row:
    """The shared last step of every format: two non-empty, valid IDs make an Item, with the
    options the row gives, or the problem with them (named after a problem with the IDs)."""
    for name, value in ((owner_column, owner), ("file_id", file_id)):
        if not value:
            needs = f"{owner_column} and {file_names(owner_column)}"
            what = f"{name} is empty; every {noun} needs {needs}"
            return ManifestProblem(display, line, what)
        if not is_valid_id(value):
            return ManifestProblem(display, line, invalid_id(name, value))
    given, problem = options
    if problem is not None:
        return ManifestProblem(display, line, problem)
    return Item(owner, file_id, line, given)


def invalid_id(name: str, value: str) -> str:
    return f"{name} {show(value)} is not a valid ID; {ID_RULE}"


def other_owner(owner_column: str) -> str | None:
    others = [name for name in TARGET_OF if name != owner_column]
    return others[0] if len(others) == 1 else None


def wrong_target(owner_column: str, found: str, what: str, said_on: int | None = None) -> str:
    """`found`, the other target's owner column, stands where `owner_column` should: named by
    --target, or by the manifest itself on line `said_on`."""
    if said_on is not None:
        return (f'{what} names "{found}" but line {said_on} names "{owner_column}"; a manifest '
                f"is for one target: move the {TARGET_OF[found]} pairs to a manifest of their own")
    target = TARGET_OF.get(owner_column, "this target")
    article = "an" if owner_column[:1] in "aeiou" else "a"
    needs = f'{article} "{owner_column}" column' if what == "header" else f'"{owner_column}"'
    part = "column" if what == "header" else "key"
    return (
        f'{what} names "{found}" but --target {target} needs {needs}; '
        f"rename the {part} or pass --target {TARGET_OF[found]}"
    )


def both_owners(what: str) -> str:
    return (f'{what} names both "assistant_id" and "vector_store_id"; a manifest is for one '
            "target: keep one of them")


def show(value: str, limit: int = SHOWN_CHARS) -> str:
    """A value quoted on one line: control and invisible characters escaped, long ones cut
    after `limit` characters."""
    text = "".join(_escape(ch) for ch in value[:limit])
    if len(value) > limit:
        return f'"{text}..." ({len(value)} characters)'
    return f'"{text}"'


def _escape(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    return ch if ch.isprintable() else repr(ch)[1:-1]


def file_names(owner_column: str) -> str:
    """What names a pair's file: a file_id, or for vector stores a local file's `path`."""
    return "file_id or path" if owner_column == "vector_store_id" else "file_id"


def missing_names(names: Iterable[object], owner_column: str) -> str:
    """'"assistant_id" or "file_id"': the needed names absent from `names`, or "". A `path`
    stands for `file_id` (rows.checked_rows says whether the owner column takes one)."""
    present = set(names)
    if "path" in present:
        present.add("file_id")
    return " or ".join(f'"{name}"' for name in (owner_column, "file_id") if name not in present)


def not_a_string(name: str, kind: str, text: str | None) -> str:
    if kind in ("a list", "a mapping", "an object"):
        one = "path (or glob)" if name == "path" else "ID"
        return f"{name} is {kind}, not a string; give one {one} per item"
    if text is None:
        return f"{name} is {kind}, not a string; quote it"
    return f"{name} is {kind}, not a string; quote it: {show(text)}"


def json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return "a string"


class DuplicateKey(Exception):
    """A key repeated in one JSON object (json.loads would quietly keep the last)."""


class NotFinite(Exception):
    """NaN or an infinity, which json.loads accepts by default and JSON does not allow."""


def load_json(text: str) -> Any:
    """`json.loads`, refusing repeated keys (DuplicateKey) and NaN/Infinity (NotFinite)."""
    if text.startswith("\ufeff"):  # json.loads's own refusal of a BOM, word for word
        return json.loads(text, object_pairs_hook=refuse_duplicates, parse_constant=_not_finite)
    return _DECODER.decode(text)


def _not_finite(name: str) -> Any:
    raise NotFinite(name)


def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        obj[key] = value
    return obj


# Made once: `json.loads` with hooks builds a decoder every call (~3 us a row). What loads does
# with a str (a BOM aside) is exactly this decoder's `decode`.
_DECODER = json.JSONDecoder(object_pairs_hook=refuse_duplicates, parse_constant=_not_finite)


# ---------------------------------------------------------------- lines (CSV, JSONL)


def read_lines(path: str, offset: int = 0,
               before: int = 0) -> Iterator[tuple[int, str, str | None]]:
    """(number, text, problem) for each physical line from byte `offset` on (where `before`
    lines lie behind); text is "\\n" when a problem spoils it."""
    with open(path, "rb") as stream:
        stream.seek(offset)
        number = before
        while raw := stream.readline(MAX_LINE_BYTES + 1):
            number += 1
            if number == 1:
                if raw.startswith(UTF16_BOMS):
                    yield number, "\n", UTF16_MESSAGE
                    return
                raw = raw.removeprefix(UTF8_BOM)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                _skip_rest_of_line(stream)
                yield number, "\n", "line is longer than 1 MiB; put one pair on each line"
            elif b"\0" in raw:
                yield number, "\n", "line holds a NUL byte; save the file as plain UTF-8 text"
            else:
                try:
                    yield number, raw.decode("utf-8"), None
                except UnicodeDecodeError as exc:
                    where = f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
                    yield number, "\n", f"line is not UTF-8 ({where}); save the file as UTF-8"


def _skip_rest_of_line(stream: IO[bytes]) -> None:
    while (chunk := stream.readline(1 << 16)) and not chunk.endswith(b"\n"):
        pass
