"""CSV manifests: a header naming the owner column and file_id (other columns ignored, but
`attributes` and `chunking_strategy`, which hold JSON), then a row a pair. Read as bytes a line
at a time (common.read_lines), through the fast path while lines are plain."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from runner.attributes import Options
from runner.errors import ManifestProblem
from runner.manifest.block import (
    Block,
    OptionColumns,
    Part,
    Skips,
    attribute_object,
    chunking_object,
)
from runner.manifest.common import (
    MAX_LINE_BYTES,
    NO_OPTIONS,
    UTF8_BOM,
    DuplicateKey,
    NotFinite,
    Row,
    both_owners,
    file_names,
    load_json,
    missing_names,
    other_owner,
    read_lines,
    show,
    wrong_target,
)
from runner.manifest.fastpath import (
    FAST_ID,
    Take,
    Vouches,
    fast_blocks,
    fast_text,
    options_taker,
    pairs_taker,
)
from runner.manifest.options import OPTION_NAMES, read_options
from runner.manifest.rows import NO_LOCAL_PATHS, LocalPaths, checked_rows

QUOTE_IN_CELL = '""'  # a quote inside a quoted CSV cell


def csv_parts(display: str, path: str, owner_column: str, skips: Skips | None = None,
              vouches: Vouches | None = None,
              local: LocalPaths = NO_LOCAL_PATHS) -> Iterator[Part]:
    with open(path, "rb") as stream:
        first = stream.readline(MAX_LINE_BYTES + 1)
    header = _plain_header(first, owner_column)
    if header is None:
        yield from csv_rows(display, path, owner_column, local=local)
        return
    take, quotes = _taker(header, owner_column)
    for part in fast_blocks(path, len(first), 1, take, quotes, skips, vouches=vouches):
        if isinstance(part, Block):
            yield part
        else:
            yield from csv_rows(display, path, owner_column, (*part, header), local=local)


def _taker(header: list[str], owner_column: str) -> tuple[Take, bool]:
    """How the fast path takes this header's lines, and whether a quote may stand in them."""
    owner_at, file_at = header.index(owner_column), header.index("file_id")
    other = r'[^,"\r\n]{0,1000}'  # well within csv's field limit and the line limit
    with_options = owner_column == "vector_store_id" and any(
        name in OPTION_NAMES for name in header)
    if not with_options:
        # An option cell must be empty here (assistants take none): a line that gives one is
        # the line reader's, which names the problem.
        fields = [FAST_ID if i in (owner_at, file_at) else "" if name in OPTION_NAMES else other
                  for i, name in enumerate(header)]
        pattern = re.compile(r"^" + ",".join(fields) + r"\r?$", re.MULTILINE)
        return pairs_taker(pattern, swap=file_at < owner_at), False
    groups: list[str] = []  # what each capture group of the pattern holds, in order
    fields = []
    for i, name in enumerate(header):
        if i in (owner_at, file_at):
            fields.append(FAST_ID)
            groups.append("file_id" if i == file_at else owner_column)
        elif name == "attributes":
            fields.append(f'(?:"({attribute_object(QUOTE_IN_CELL)})")?')
            groups.append(name)
        elif name == "chunking_strategy":
            fields.append(f'(?:"({chunking_object(QUOTE_IN_CELL)})")?')
            groups.append(name)
        else:
            fields.append(other)
    pattern = re.compile(r"^" + ",".join(fields) + r"\r?$", re.MULTILINE)
    at = {name: groups.index(name) for name in groups}
    return options_taker(pattern, itemgetter(at[owner_column], at["file_id"]),
                         at.get("attributes"), at.get("chunking_strategy"),
                         OptionColumns(owner_column), undouble=True), True


def _plain_header(first: bytes, owner_column: str) -> list[str] | None:
    """The header, if line 1 is one the fast path may build on: plain, complete and right,
    and without a `path` column (a local file's row is always the line reader's)."""
    first = first.removeprefix(UTF8_BOM)
    text = fast_text(first) if first.endswith(b"\n") and len(first) < 64 * 1024 else None
    if text is None:
        return None
    header = [name.strip() for name in text.rstrip("\r\n").split(",")]
    if (len(header) > 500 or "path" in header
            or csv_header_problem(header, owner_column) is not None):
        return None
    return header


def csv_rows(display: str, path: str, owner_column: str,
             resume: tuple[int, int, list[str]] | None = None, *,
             local: LocalPaths = NO_LOCAL_PATHS) -> Iterator[Row]:
    """Rows line by line; `resume` = (byte offset, lines before it, header): go on from there
    (the fast path hands over at a line it does not take). `local`: for `path` rows."""
    offset, before, header = resume if resume is not None else (0, 0, None)
    spoiled: dict[int, str] = {}  # line -> problem, for lines handed to csv as blank
    # strict: `"asst_1"x` or a quote left open at the end is an error, not a guess.
    reader = csv.reader(_csv_text(path, spoiled, offset, before), strict=True)
    owner_at = 0
    file_at: int | None = None  # the file_id column, if any
    path_at: int | None = None  # the path column, if any
    options_at: list[tuple[str, int]] = []  # (name, column) of the option columns present
    if header is not None:
        owner_at, file_at, path_at = _columns_at(header, owner_column)
        options_at = _options_at(header)
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
            problem = csv_header_problem(header, owner_column)
            if problem is not None:
                yield ManifestProblem(display, start, problem)
                return
            owner_at, file_at, path_at = _columns_at(header, owner_column)
            options_at = _options_at(header)
            continue
        problem = _csv_shape_problem(row, len(header))
        if problem is not None:
            yield ManifestProblem(display, start, problem)
            continue
        owner = row[owner_at].strip()
        file_id = row[file_at].strip() if file_at is not None else None
        local_path = row[path_at].strip() if path_at is not None else None
        options = _row_options(row, options_at, owner_column) if options_at else NO_OPTIONS
        yield from checked_rows(display, start, owner_column, owner, file_id, local_path,
                                "row", local, options)


def _columns_at(header: list[str], owner_column: str) -> tuple[int, int | None, int | None]:
    """Where the owner, file_id and path columns stand (the latter two None if absent)."""
    def at(name: str) -> int | None:
        return header.index(name) if name in header else None
    return header.index(owner_column), at("file_id"), at("path")


def _options_at(header: list[str]) -> list[tuple[str, int]]:
    return [(name, header.index(name)) for name in OPTION_NAMES if name in header]


def _row_options(row: list[str], options_at: list[tuple[str, int]],
                 owner_column: str) -> tuple[Options | None, str | None]:
    """The options a row's cells give, as JSON; an empty cell gives none."""
    given: dict[str, Any] = {}
    for name, at in options_at:
        cell = row[at].strip()
        if not cell:
            continue
        try:
            given[name] = load_json(cell)
        except DuplicateKey as exc:
            return None, (f"{name} cell names key {show(str(exc.args[0]))} twice; keep one")
        except NotFinite as exc:
            return None, (f"{name} cell holds {exc.args[0]}, which JSON does not allow; give a "
                          "finite number, or a string")
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "unreadable"
            example = '{""year"": 2021}' if name == "attributes" else '{""type"": ""auto""}'
            return None, (f"{name} cell is not JSON ({reason}); write JSON in a quoted cell, "
                          f'like "{example}"')
    return read_options(given, owner_column)


def _csv_text(path: str, spoiled: dict[int, str], offset: int, before: int) -> Iterator[str]:
    for number, text, problem in read_lines(path, offset, before):
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


def csv_header_problem(header: list[str], owner_column: str) -> str | None:
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            return f"header names {show(name)} twice; give each column its own name"
        seen.add(name)
    other = other_owner(owner_column)
    if other is not None and other in header:
        if owner_column in header:
            return both_owners("header")
        return wrong_target(owner_column, other, "header")
    missing = missing_names(header, owner_column)
    if missing:
        return (
            f"header has no {missing} column; the header row must name {owner_column} and "
            f"{file_names(owner_column)}"
        )
    return None


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
