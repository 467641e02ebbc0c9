"""Manifests: CSV, YAML or JSONL in, a stream of Items out, every bad row named by file and line.

One thing in three spellings, a list of (owner, file_id) pairs:

    CSV    a header naming the owner column and file_id (other columns ignored), a row a pair
    YAML   items: [{assistant_id: ..., file_id: ...}]  or  assistants: {asst_abc: [file-1, ...]}
    JSONL  one object a line: {"assistant_id": ..., "file_id": ...}

Each parser yields `Item | ManifestProblem` in file order and never raises on bad input, so
`check_manifest` can name every bad row in one pass and `iter_items` can stop at the first.
CSV and JSONL are read as bytes, a line at a time: a line that is not UTF-8, holds a NUL or runs
past 1 MiB is one problem on its line, and memory stays flat however long the file is.
YAML is composed whole into nodes (never constructed), which keeps a line number on every value.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import IO, Any, TypeAlias

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import MAX_REPORTED_PROBLEMS, ManifestError, ManifestProblem, UsageError
from runner.items import ID_RULE, Item, is_valid_id, pin_mmap_threshold

FORMATS = ("csv", "yaml", "jsonl")
STDIN_DISPLAY = "<stdin>"
MAX_LINE_BYTES = 1 << 20  # a longer CSV/JSONL line is one problem, skipped without buffering it
MAX_YAML_DEPTH = 32  # a manifest needs 4 levels; deeper is a mistake or an attack on the stack
SHOWN_CHARS = 40  # a bad value is shown up to this many characters
OWNERS_OVER_SHOWN = 20

_EXTENSIONS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml", ".jsonl": "jsonl"}
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF16_MESSAGE = "file is UTF-16 text; save it as UTF-8"
# Where each owner column belongs: the target that reads it, its YAML group key, an example ID.
_TARGET_OF = {"assistant_id": "assistant-files", "vector_store_id": "vector-store-files"}
_GROUP_OF = {"assistant_id": "assistants", "vector_store_id": "vector_stores"}
_EXAMPLE_OF = {"assistant_id": "asst_abc", "vector_store_id": "vs_abc"}
_YAML_STR = "tag:yaml.org,2002:str"
_YAML_NULL = "tag:yaml.org,2002:null"

Row: TypeAlias = "Item | ManifestProblem"


@dataclass(frozen=True, slots=True)
class Block:
    """Valid pairs of consecutive lines, from `line` on, read in bulk by the fast path."""

    line: int
    pairs: list[tuple[str, str]]  # (owner, file_id)

    def items(self) -> Iterator[Item]:
        """The block taken apart: one Item a pair, with its line."""
        for line, (owner, file_id) in enumerate(self.pairs, self.line):
            yield Item(owner, file_id, line)


Part: TypeAlias = "Block | Item | ManifestProblem"
_OWNER_OF = itemgetter(0)
_SWAPPED = itemgetter(1, 0)
FAST_CHUNK = 1 << 15  # bytes read at a time by the fast path: its rows stay under 1 MiB


@dataclass(frozen=True)
class ManifestSource:
    """A manifest ready to read: `display` names it in messages, `path` is a real file."""

    display: str  # the path as the user gave it, or "<stdin>"
    path: str  # a regular file: stdin and pipes are spooled to a temporary file first
    format: str  # csv | yaml | jsonl


@dataclass
class ManifestStats:
    """What one checking pass counted; `owners_over` feeds the warning about crowded owners."""

    rows: int = 0  # pairs as written, duplicates included
    pairs: int = 0  # distinct pairs
    duplicates: int = 0  # rows - pairs
    owners: int = 0  # distinct owners
    max_files_owner: str | None = None  # the owner with the most distinct files (first seen wins)
    max_files: int = 0
    owners_over: list[tuple[str, int]] = field(default_factory=list)  # most files first, capped
    owners_over_count: int = 0  # all owners over the limit, shown or not


# ---------------------------------------------------------------- opening


def open_manifest(path: str, fmt: str | None) -> ManifestSource:
    """Resolve MANIFEST and --format into a readable source, or raise a one-line UsageError."""
    chosen = _normalise_format(fmt)
    if path == "-":
        if chosen is None:
            raise UsageError("-: reading stdin needs --format csv|yaml|jsonl")
        return ManifestSource(STDIN_DISPLAY, _spool_stdin(chosen), chosen)
    mode = _stat_manifest(path)
    if chosen is None:
        chosen = _EXTENSIONS.get(os.path.splitext(path)[1].lower())
        if chosen is None:
            raise UsageError(
                f"{path}: cannot tell the format from the name (.csv, .yaml, .yml, .jsonl); "
                "pass --format csv|yaml|jsonl"
            )
    if stat.S_ISREG(mode):
        _check_readable(path)
        return ManifestSource(path, path, chosen)
    if not stat.S_ISFIFO(mode):
        # A terminal would wait for typing, /dev/zero would fill the disk while spooled.
        raise UsageError(f"{path}: not a file or a pipe (a device or socket); give the path "
                         "of a manifest file, or - for stdin")
    # A pipe such as <(generate) can be read only once, and a manifest is read twice.
    try:
        with open(path, "rb") as stream:
            return ManifestSource(path, _spool(stream, chosen), chosen)
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _normalise_format(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    chosen = "yaml" if fmt.lower() == "yml" else fmt.lower()
    if chosen not in FORMATS:
        raise UsageError(f"--format {_show(fmt)} is not known; use csv, yaml or jsonl")
    return chosen


def _stat_manifest(path: str) -> int:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{path}: is a directory; give the path of a manifest file")
    return mode


def _check_readable(path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: str, exc: OSError) -> UsageError:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return UsageError(f"{path}: no such file; check the path")
    if isinstance(exc, PermissionError):
        return UsageError(f"{path}: cannot be read (permission denied); check its permissions")
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"{path}: is a directory; give the path of a manifest file")
    return UsageError(f"{path}: cannot be read ({exc.strerror or exc}); check the path")


def _spool_stdin(fmt: str) -> str:
    stdin = sys.stdin
    if stdin is None:
        raise UsageError("-: there is no standard input; pipe a manifest in or give its path")
    try:
        buffer = getattr(stdin, "buffer", None)
        if buffer is not None:
            return _spool(buffer, fmt)
        return _spool(_TextAsBytes(stdin), fmt)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"-: cannot read stdin ({exc}); give the manifest's path") from None


class _TextAsBytes:
    """A text stream read as UTF-8 bytes (a stdin replaced by something without .buffer)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size).encode("utf-8", "surrogateescape")


def _spool(stream: IO[bytes] | _TextAsBytes, fmt: str) -> str:
    """Copy a stream to a private temporary file, removed when the interpreter exits."""
    fd, spooled = tempfile.mkstemp(prefix="attach-runner-manifest-", suffix=f".{fmt}")
    atexit.register(_remove_quietly, spooled)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 16)
    return spooled


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


# ---------------------------------------------------------------- reading


def iter_items(source: ManifestSource, owner_column: str, group_key: str) -> Iterator[Item]:
    """Every valid pair in file order, duplicates included; ManifestError at the first bad row."""
    for row in _rows(source, owner_column, group_key):
        if isinstance(row, ManifestProblem):
            raise ManifestError([row], 1)
        yield row


def iter_blocks(source: ManifestSource, owner_column: str,
                group_key: str) -> Iterator[Block | Item]:
    """`iter_items`, with the fast path's blocks of pairs left whole (a rerun can settle a
    block of pairs it has all done with a few set operations)."""
    for part in _parts(source, owner_column, group_key):
        if isinstance(part, ManifestProblem):
            raise ManifestError([part], 1)
        yield part


def check_manifest(
    source: ManifestSource, owner_column: str, group_key: str, over_limit: int = 20
) -> ManifestStats:
    """Read the whole manifest once: raise ManifestError naming every bad row, else count it."""
    pin_mmap_threshold()  # the set of a million keys below must give its memory back
    problems: list[ManifestProblem] = []
    total = 0
    # hash((owner, file_id)) of distinct pairs, never the rows themselves. 64 bits are enough
    # here: a collision would only miscount a repeat in this count; the run de-duplicates on
    # items.pair_key (128 bits).
    seen: set[int] = set()
    files_of: Counter[str] = Counter()  # owner -> distinct files
    rows = 0
    for part in _parts(source, owner_column, group_key):
        if isinstance(part, Block):
            rows += len(part.pairs)
            keys = set(map(hash, part.pairs))
            if len(keys) == len(part.pairs) and seen.isdisjoint(keys):
                seen |= keys  # no repeat: count in bulk
                files_of.update(map(_OWNER_OF, part.pairs))
                continue
            for pair in part.pairs:
                key = hash(pair)
                if key not in seen:
                    seen.add(key)
                    files_of[pair[0]] += 1
        elif isinstance(part, ManifestProblem):
            total += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(part)
        else:
            rows += 1
            key = hash((part.owner, part.file_id))
            if key not in seen:
                seen.add(key)
                files_of[part.owner] += 1
    if total:
        raise ManifestError(problems, total)
    return _stats(rows, len(seen), files_of, over_limit)


def _stats(rows: int, pairs: int, files_of: dict[str, int], over_limit: int) -> ManifestStats:
    stats = ManifestStats(rows=rows, pairs=pairs, duplicates=rows - pairs, owners=len(files_of))
    if files_of:
        # max() keeps the first of equals, and dicts keep insertion order: first seen wins.
        stats.max_files_owner, stats.max_files = max(files_of.items(), key=lambda kv: kv[1])
    over = [(owner, n) for owner, n in files_of.items() if n > over_limit]
    over.sort(key=lambda kv: (-kv[1], kv[0]))
    stats.owners_over = over[:OWNERS_OVER_SHOWN]
    stats.owners_over_count = len(over)
    return stats


def _rows(source: ManifestSource, owner_column: str, group_key: str) -> Iterator[Row]:
    """Every row, one at a time (blocks of the fast path taken apart)."""
    for part in _parts(source, owner_column, group_key):
        if isinstance(part, Block):
            yield from part.items()
        else:
            yield part


def _parts(source: ManifestSource, owner_column: str, group_key: str) -> Iterator[Part]:
    if source.format == "csv":
        parsed = _csv_parts(source.display, source.path, owner_column)
    elif source.format == "jsonl":
        parsed = _jsonl_parts(source.display, source.path, owner_column)
    elif source.format == "yaml":
        parsed = _yaml_rows(source.display, source.path, owner_column, group_key)
    else:
        shown = _show(source.format)
        raise UsageError(f"{source.display}: unknown format {shown}; use csv, yaml or jsonl")
    try:
        yield from parsed
    except OSError as exc:  # the file vanished or the disk failed between open and read
        reason = exc.strerror or exc
        raise UsageError(f"{source.display}: cannot be read ({reason}); check the file") from None


def _pair(display: str, line: int, owner_column: str, owner: str, file_id: str, noun: str) -> Row:
    """The shared last step of every format: two non-empty, valid IDs make an Item."""
    for name, value in ((owner_column, owner), ("file_id", file_id)):
        if not value:
            what = f"{name} is empty; every {noun} needs {owner_column} and file_id"
            return ManifestProblem(display, line, what)
        if not is_valid_id(value):
            return ManifestProblem(display, line, _invalid_id(name, value))
    return Item(owner, file_id, line)


def _invalid_id(name: str, value: str) -> str:
    return f"{name} {_show(value)} is not a valid ID; {ID_RULE}"


def _other_owner(owner_column: str) -> str | None:
    others = [name for name in _TARGET_OF if name != owner_column]
    return others[0] if len(others) == 1 else None


def _wrong_target(owner_column: str, found: str, what: str) -> str:
    """`found`, the other target's owner column, stands where `owner_column` should."""
    target = _TARGET_OF.get(owner_column, "this target")
    article = "an" if owner_column[:1] in "aeiou" else "a"
    needs = f'{article} "{owner_column}" column' if what == "header" else f'"{owner_column}"'
    part = "column" if what == "header" else "key"
    return (
        f'{what} names "{found}" but --target {target} needs {needs}; '
        f"rename the {part} or pass --target {_TARGET_OF[found]}"
    )


def _show(value: str) -> str:
    """A value quoted on one line: control and invisible characters escaped, long ones cut."""
    text = "".join(_escape(ch) for ch in value[:SHOWN_CHARS])
    if len(value) > SHOWN_CHARS:
        return f'"{text}..." ({len(value)} characters)'
    return f'"{text}"'


def _escape(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    return ch if ch.isprintable() else repr(ch)[1:-1]


# ---------------------------------------------------------------- lines (CSV, JSONL)


def _lines(path: str, offset: int = 0, before: int = 0) -> Iterator[tuple[int, str, str | None]]:
    """(number, text, problem) for each physical line from byte `offset` on (where `before`
    lines lie behind); text is "\\n" when a problem spoils it."""
    with open(path, "rb") as stream:
        stream.seek(offset)
        number = before
        while raw := stream.readline(MAX_LINE_BYTES + 1):
            number += 1
            if number == 1:
                if raw.startswith(_UTF16_BOMS):
                    yield number, "\n", _UTF16_MESSAGE
                    return
                raw = raw.removeprefix(_UTF8_BOM)
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


# ---------------------------------------------------------------- the fast path (CSV, JSONL)
#
# Most manifests are plain: a header, then `id,id` lines (or one flat JSON object a line). The
# fast path reads such lines a megabyte at a time and takes a whole chunk with one regular
# expression that only matches lines the line-by-line readers would accept unchanged (valid
# IDs, no quotes, no blank lines, no NUL, UTF-8), yielding a Block of pairs. At the first chunk
# it does not take whole, it hands the rest of the file to the line-by-line reader, which
# reports every problem exactly as before, with the same line numbers.


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


def _fast_text(chunk: bytes) -> str | None:
    """The chunk as text with a final newline, if the fast path may take it; else None."""
    if b"\0" in chunk or b'"' in chunk or chunk.count(b"\r") != chunk.count(b"\r\n"):
        return None
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.endswith("\n") else text + "\n"


def _fast_blocks(path: str, start: int, before: int, pattern: re.Pattern[str], swap: bool,
                 ) -> Iterator[Block | tuple[int, int]]:
    """Blocks from byte `start` on; at the first chunk not taken, (offset, lines before) to
    resume from line by line."""
    offset = start
    with open(path, "rb") as stream:
        stream.seek(start)
        for chunk in _chunks(stream):
            text = _fast_text(chunk)
            pairs = pattern.findall(text) if text is not None else []
            if text is None or len(pairs) != text.count("\n") or len(chunk) > FAST_CHUNK * 2:
                yield offset, before
                return
            if swap:
                pairs = list(map(_SWAPPED, pairs))
            yield Block(before + 1, pairs)
            before += len(pairs)
            offset += len(chunk)


_FAST_ID = r"([A-Za-z0-9_-]{1,128})"


def _csv_parts(display: str, path: str, owner_column: str) -> Iterator[Part]:
    with open(path, "rb") as stream:
        first = stream.readline(MAX_LINE_BYTES + 1)
    header = _plain_header(first, owner_column)
    if header is None:
        yield from _csv_rows(display, path, owner_column)
        return
    owner_at, file_at = header.index(owner_column), header.index("file_id")
    other = r'[^,"\r\n]{0,1000}'  # well within csv's field limit and the line limit
    fields = [_FAST_ID if i in (owner_at, file_at) else other for i in range(len(header))]
    pattern = re.compile(r"^" + ",".join(fields) + r"\r?$", re.MULTILINE)
    for part in _fast_blocks(path, len(first), 1, pattern, swap=file_at < owner_at):
        if isinstance(part, Block):
            yield part
        else:
            yield from _csv_rows(display, path, owner_column, (*part, header))


def _plain_header(first: bytes, owner_column: str) -> list[str] | None:
    """The header, if line 1 is one the fast path may build on: plain, complete and right."""
    first = first.removeprefix(_UTF8_BOM)
    text = _fast_text(first) if first.endswith(b"\n") and len(first) < 64 * 1024 else None
    if text is None:
        return None
    header = [name.strip() for name in text.rstrip("\r\n").split(",")]
    if len(header) > 500 or _csv_header_problem(header, owner_column) is not None:
        return None
    return header


def _jsonl_parts(display: str, path: str, owner_column: str) -> Iterator[Part]:
    space = r"[ \t]*"
    pattern = re.compile(
        rf'^{space}\{{{space}"{re.escape(owner_column)}"{space}:{space}"{_FAST_ID}"{space},'
        rf'{space}"file_id"{space}:{space}"{_FAST_ID}"{space}\}}{space}\r?$', re.MULTILINE)
    with open(path, "rb") as stream:
        bom = stream.read(len(_UTF8_BOM)) == _UTF8_BOM
    for part in _fast_blocks(path, len(_UTF8_BOM) if bom else 0, 0, pattern, swap=False):
        if isinstance(part, Block):
            yield part
        else:
            yield from _jsonl_rows(display, path, owner_column, *part)


# ---------------------------------------------------------------- CSV


def _csv_rows(display: str, path: str, owner_column: str,
              resume: tuple[int, int, list[str]] | None = None) -> Iterator[Row]:
    """Rows line by line; `resume` = (byte offset, lines before it, header): go on from there
    (the fast path hands over at a line it does not take)."""
    offset, before, header = resume if resume is not None else (0, 0, None)
    spoiled: dict[int, str] = {}  # line -> problem, for lines handed to csv as blank
    # strict: `"asst_1"x` or a quote left open at the end is an error, not a guess.
    reader = csv.reader(_csv_text(path, spoiled, offset, before), strict=True)
    owner_at = file_at = 0
    if header is not None:
        owner_at, file_at = header.index(owner_column), header.index("file_id")
    end = before  # the last physical line the reader has consumed
    while True:
        start = end + 1
        error = None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row, error = [], _csv_error(exc)
        end = before + reader.line_num
        if spoiled:
            for number in sorted(n for n in spoiled if n <= end):
                yield ManifestProblem(display, number, spoiled.pop(number))
            if header is None:
                return  # without a header no later row can be read
            continue
        if error is not None:
            yield ManifestProblem(display, start, error)
            if header is None:
                return
            continue
        if not any(value.strip() for value in row):
            continue  # a blank line, or a spreadsheet's row of empty cells
        if header is None:
            header = [name.strip() for name in row]
            problem = _csv_header_problem(header, owner_column)
            if problem is not None:
                yield ManifestProblem(display, start, problem)
                return
            owner_at, file_at = header.index(owner_column), header.index("file_id")
            continue
        problem = _csv_shape_problem(row, len(header))
        if problem is not None:
            yield ManifestProblem(display, start, problem)
            continue
        owner, file_id = row[owner_at].strip(), row[file_at].strip()
        yield _pair(display, start, owner_column, owner, file_id, "row")


def _csv_text(path: str, spoiled: dict[int, str], offset: int, before: int) -> Iterator[str]:
    for number, text, problem in _lines(path, offset, before):
        if problem is not None:
            spoiled[number] = problem
        yield text


def _csv_error(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return (
            f"a field is longer than {csv.field_size_limit()} characters; "
            "check for a quote that is never closed"
        )
    if "unexpected end of data" in text:
        return 'a quoted value is never closed (no closing "); close the quote or remove it'
    if "expected after" in text:
        return ('text follows a closing quote (like "asst_1"x); quote the whole value or none '
                "of it")
    if "new-line character seen in unquoted field" in text:
        return "row holds a lone carriage return (\\r); save the file with \\n or \\r\\n line ends"
    reason = text.splitlines()[0] if text else "unknown error"
    return f"row is not valid CSV ({reason}); fix its quoting"


def _csv_header_problem(header: list[str], owner_column: str) -> str | None:
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            return f"header names {_show(name)} twice; give each column its own name"
        seen.add(name)
    other = _other_owner(owner_column)
    if owner_column not in header and other is not None and other in header:
        return _wrong_target(owner_column, other, "header")
    missing = _missing(header, owner_column)
    if missing:
        return (
            f"header has no {missing} column; the header row must name {owner_column} and file_id"
        )
    return None


def _missing(names: Iterable[object], owner_column: str) -> str:
    """'"assistant_id" or "file_id"': the needed names absent from `names`, or ""."""
    present = set(names)
    return " or ".join(f'"{name}"' for name in (owner_column, "file_id") if name not in present)


def _csv_shape_problem(row: list[str], columns: int) -> str | None:
    if len(row) < columns:
        return (
            f"row has {len(row)} field{'s' if len(row) != 1 else ''} but the header has "
            f"{columns}; give every row a value for each column"
        )
    if len(row) > columns and any(value.strip() for value in row[columns:]):
        return (
            f"row has {len(row)} fields but the header has {columns}; "
            "quote a value that holds a comma, or name every column in the header"
        )
    return None


# ---------------------------------------------------------------- JSONL


class _DuplicateKey(Exception):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _jsonl_rows(display: str, path: str, owner_column: str, offset: int = 0,
                before: int = 0) -> Iterator[Row]:
    for number, text, problem in _lines(path, offset, before):
        if problem is None and text.strip():
            problem, obj = _jsonl_object(text, owner_column)
            if obj is not None:
                yield _jsonl_pair(display, number, owner_column, obj)
        if problem is not None:
            yield ManifestProblem(display, number, problem)


def _jsonl_object(text: str, owner_column: str) -> tuple[str | None, dict[str, Any] | None]:
    example = f'{{"{owner_column}": "{_EXAMPLE_OF.get(owner_column, "...")}", "file_id": "file-1"}}'
    try:
        value = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKey as exc:
        return f"key {_show(str(exc.args[0]))} appears twice in one object; keep one", None
    except json.JSONDecodeError as exc:
        what = f"line is not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        what = "line is nested too deeply to read"
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        what = f"line is not valid JSON ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})"
    else:
        if isinstance(value, dict):
            return None, value
        what = f"line is not a JSON object (it is {_json_kind(value)})"
    return f"{what}; write one object a line, like {example}", None


def _jsonl_pair(display: str, line: int, owner_column: str, obj: dict[str, Any]) -> Row:
    other = _other_owner(owner_column)
    if owner_column not in obj and other is not None and other in obj:
        return ManifestProblem(display, line, _wrong_target(owner_column, other, "object"))
    missing = _missing(obj, owner_column)
    if missing:
        what = f"object has no {missing}; every object needs {owner_column} and file_id"
        return ManifestProblem(display, line, what)
    values: list[str] = []
    for name in (owner_column, "file_id"):
        value = obj[name]
        if value is not None and not isinstance(value, str):
            what = _not_a_string(name, _json_kind(value), json.dumps(value))
            return ManifestProblem(display, line, what)
        values.append(value or "")
    return _pair(display, line, owner_column, values[0], values[1], "object")


def _json_kind(value: object) -> str:
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


def _not_a_string(name: str, kind: str, text: str | None) -> str:
    if kind in ("a list", "a mapping", "an object"):
        return f"{name} is {kind}, not a string; give one ID per item"
    if text is None:
        return f"{name} is {kind}, not a string; quote it"
    return f"{name} is {kind}, not a string; quote it: {_show(text)}"


# ---------------------------------------------------------------- YAML


class _YamlRefused(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _ManifestLoader(yaml.SafeLoader):
    """Composes nodes only (never constructs objects); refuses aliases and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # check_event() leaves the next event in current_event, with its mark.
        if self.check_event(yaml.AliasEvent):
            # An alias can make a few lines expand to billions of nodes (the "billion laughs").
            line = int(self.current_event.start_mark.line) + 1
            what = "YAML aliases are not allowed in a manifest; write each value out"
            raise _YamlRefused(line, what)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                line = int(self.current_event.start_mark.line) + 1
                what = f"YAML is nested more than {MAX_YAML_DEPTH} levels deep; a manifest needs 4"
                raise _YamlRefused(line, what)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_rows(display: str, path: str, owner_column: str, group_key: str) -> Iterator[Row]:
    rows = list(_yaml_unsorted(display, path, owner_column, group_key))
    rows.sort(key=lambda row: row.line or 0)  # stable: same-line rows keep document order
    yield from rows


def _yaml_unsorted(display: str, path: str, owner_column: str, group_key: str) -> Iterator[Row]:
    with open(path, "rb") as stream:
        raw = stream.read()
    if raw.startswith(_UTF16_BOMS):
        yield ManifestProblem(display, 1, _UTF16_MESSAGE)
        return
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        where = f"byte 0x{raw[exc.start]:02x} at column {column}"
        yield ManifestProblem(display, line, f"line is not UTF-8 ({where}); save the file as UTF-8")
        return
    root, problem = _compose(text)
    if problem is not None:
        yield ManifestProblem(display, problem[0], problem[1])
        return
    if root is None:
        return  # an empty file, or only comments
    yield from _yaml_duplicates(display, root)
    yield from _yaml_document(display, root, owner_column, group_key)


def _compose(text: str) -> tuple[Node | None, tuple[int, str] | None]:
    loader: _ManifestLoader | None = None
    try:
        loader = _ManifestLoader(text)
        return loader.get_single_node(), None
    except _YamlRefused as exc:
        return None, (exc.line, exc.message)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        code = ord(exc.character) if isinstance(exc.character, str) else int(exc.character)
        return None, (line, f"line holds a character YAML does not allow (U+{code:04X}); remove it")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        # "<stream end>" is marked after the last newline: name the last line there is.
        line = min(line, max(1, len(text.splitlines())))
        what = ", ".join(part for part in (exc.context, exc.problem) if part) or "unreadable"
        what = " ".join(what.split())
        return None, (line, f"YAML syntax error: {what}; fix the YAML on this line")
    except (yaml.YAMLError, RecursionError) as exc:
        what = " ".join(str(exc).split()) or type(exc).__name__
        return None, (1, f"YAML cannot be read ({what}); fix the YAML")
    finally:
        if loader is not None:
            loader.dispose()


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1 if node.start_mark is not None else 1


def _yaml_duplicates(display: str, root: Node) -> Iterator[ManifestProblem]:
    """A repeated key in any mapping (plain safe_load would quietly keep the last)."""
    stack = [root]  # a tree: aliases were refused, so nothing is visited twice
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode):
            first_on: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    ident = (key.tag, key.value)
                    if ident in first_on:
                        yield ManifestProblem(
                            display,
                            _line(key),
                            f"key {_show(key.value)} appears twice in one mapping "
                            f"(first on line {first_on[ident]}); keep one, merging what they hold",
                        )
                    else:
                        first_on[ident] = _line(key)
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def _yaml_document(display: str, root: Node, owner_column: str, group_key: str) -> Iterator[Row]:
    shapes = f'"items:" or "{group_key}:"'
    if not isinstance(root, MappingNode):
        if isinstance(root, SequenceNode):
            what = f'manifest is a list; put it under "items:", or group files under "{group_key}:"'
        else:
            what = f"manifest is a single value, not a mapping; start it with {shapes}"
        yield ManifestProblem(display, _line(root), what)
        return
    if not root.value:
        yield ManifestProblem(display, _line(root), f"manifest has no {shapes}; add one")
    other_group = {_GROUP_OF[name] for name in _GROUP_OF if name != owner_column}
    for key, value in root.value:
        name = key.value if _is_str(key) else None
        if name == "items":
            yield from _yaml_items(display, value, owner_column)
        elif name == group_key:
            yield from _yaml_groups(display, value, owner_column, group_key)
        elif name in other_group:
            yield _yaml_wrong_group(display, _line(key), name, owner_column, group_key)
        else:
            shown = _show(str(key.value)) if isinstance(key, ScalarNode) else "that is not a string"
            yield ManifestProblem(
                display, _line(key), f"unknown key {shown} at the top of the manifest; use {shapes}"
            )


def _yaml_wrong_group(
    display: str, line: int, found: str, owner_column: str, group_key: str
) -> ManifestProblem:
    target = _TARGET_OF.get(owner_column, "this target")
    found_target = next(
        (_TARGET_OF[col] for col, group in _GROUP_OF.items() if group == found), "the other target"
    )
    return ManifestProblem(
        display,
        line,
        f'"{found}:" groups files for --target {found_target}, but --target {target} needs '
        f'"{group_key}:"; rename the key or pass --target {found_target}',
    )


def _yaml_items(display: str, node: Node, owner_column: str) -> Iterator[Row]:
    example = f"{{{owner_column}: {_EXAMPLE_OF.get(owner_column, '...')}, file_id: file-1}}"
    if _is_null(node):
        return
    if not isinstance(node, SequenceNode):
        what = f'"items:" is {_yaml_kind(node)}, not a list; write "- {example}" lines'
        yield ManifestProblem(display, _line(node), what)
        return
    other = _other_owner(owner_column)
    for item in node.value:
        if not isinstance(item, MappingNode):
            what = f"item is {_yaml_kind(item)}, not a mapping; write each item as {example}"
            yield ManifestProblem(display, _line(item), what)
            continue
        fields = {k.value: v for k, v in item.value if _is_str(k)}
        if owner_column not in fields and other is not None and other in fields:
            yield ManifestProblem(display, _line(item), _wrong_target(owner_column, other, "item"))
            continue
        missing = _missing(fields, owner_column)
        if missing:
            what = f"item has no {missing}; every item needs {owner_column} and file_id"
            yield ManifestProblem(display, _line(item), what)
            continue
        owner, problem = _yaml_string(fields[owner_column], owner_column)
        if problem is None:
            file_id, problem = _yaml_string(fields["file_id"], "file_id")
        if problem is not None:
            yield ManifestProblem(display, _line(item), problem)
            continue
        yield _pair(display, _line(item), owner_column, owner, file_id, "item")


def _yaml_groups(display: str, node: Node, owner_column: str, group_key: str) -> Iterator[Row]:
    example = f"{_EXAMPLE_OF.get(owner_column, 'owner')}: [file-1, file-2]"
    if _is_null(node):
        return
    if not isinstance(node, MappingNode):
        kind = _yaml_kind(node)
        what = f'"{group_key}:" is {kind}, not a mapping; write "{group_key}: {{{example}}}"'
        yield ManifestProblem(display, _line(node), what)
        return
    for key, files in node.value:
        owner, problem = _yaml_string(key, owner_column)
        if problem is None and not owner:
            problem = f"{owner_column} is empty; every entry needs {owner_column} and file_id"
        elif problem is None and not is_valid_id(owner):
            problem = _invalid_id(owner_column, owner)
        if problem is not None:
            yield ManifestProblem(display, _line(key), problem)
            continue
        if not isinstance(files, SequenceNode):
            kind = _yaml_kind(files)
            what = (
                f"files of {_show(owner)} are {kind}, not a list; write {owner}: [file-1, file-2]"
            )
            yield ManifestProblem(display, _line(key), what)
            continue
        for entry in files.value:
            file_id, problem = _yaml_string(entry, "file_id")
            if problem is not None:
                yield ManifestProblem(display, _line(entry), problem)
            else:
                yield _pair(display, _line(entry), owner_column, owner, file_id, "entry")


def _yaml_string(node: Node, name: str) -> tuple[str, str | None]:
    """The string a node holds, or why it is not one: YAML reads 123 and yes as other types."""
    if _is_str(node):
        return str(node.value), None
    if _is_null(node):
        return "", None  # reported as empty by _pair, with the same words as the other formats
    text = str(node.value) if isinstance(node, ScalarNode) else None
    return "", _not_a_string(name, _yaml_kind(node), text)


def _is_str(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _YAML_STR


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _YAML_NULL


def _yaml_kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kinds = {
        _YAML_STR: "a string",
        _YAML_NULL: "empty",
        "tag:yaml.org,2002:int": "a number",
        "tag:yaml.org,2002:float": "a number",
        "tag:yaml.org,2002:bool": "a boolean",
        "tag:yaml.org,2002:timestamp": "a date",
    }
    return kinds.get(node.tag, f"tagged {_show(node.tag)}")
