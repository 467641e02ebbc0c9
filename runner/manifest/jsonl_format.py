"""JSONL manifests: one JSON object a line, `{"assistant_id": ..., "file_id": ...}`. Read as
bytes a line at a time (common.read_lines), through the fast path while lines are plain."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

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
    EXAMPLE_OF,
    UTF8_BOM,
    DuplicateKey,
    NotFinite,
    Row,
    both_owners,
    file_names,
    json_kind,
    load_json,
    missing_names,
    not_a_string,
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
    options_taker,
    pairs_taker,
)
from runner.manifest.options import read_options
from runner.manifest.rows import NO_LOCAL_PATHS, LocalPaths, checked_rows


def jsonl_parts(display: str, path: str, owner_column: str, said_on: int | None = None,
                skips: Skips | None = None, vouches: Vouches | None = None,
                local: LocalPaths = NO_LOCAL_PATHS) -> Iterator[Part]:
    with open(path, "rb") as stream:
        bom = stream.read(len(UTF8_BOM)) == UTF8_BOM
    start = len(UTF8_BOM) if bom else 0
    for part in fast_blocks(path, start, 0, _taker(owner_column), True, skips,
                            vouches=vouches):
        if isinstance(part, Block):
            yield part
        else:
            yield from jsonl_rows(display, path, owner_column, *part, said_on=said_on,
                                  local=local)


def _taker(owner_column: str) -> Take:
    """How the fast path takes lines: an object of the two IDs, in that order, then (vector
    stores) `attributes` and `chunking_strategy` of the plain kind, each optional, in that
    order. Any other line is the line reader's: a `path` row always."""
    space = r"[ \t]*"
    ids = (rf'^{space}\{{{space}"{re.escape(owner_column)}"{space}:{space}"{FAST_ID}"{space},'
           rf'{space}"file_id"{space}:{space}"{FAST_ID}"')
    end = rf"{space}\}}{space}\r?$"
    if owner_column != "vector_store_id":
        return pairs_taker(re.compile(ids + end, re.MULTILINE), swap=False)
    options = "".join(rf'(?:{space},{space}"{name}"{space}:{space}({pattern}))?'
                      for name, pattern in (("attributes", attribute_object('"')),
                                            ("chunking_strategy", chunking_object('"'))))
    pattern = re.compile(ids + options + end, re.MULTILINE)
    return options_taker(pattern, itemgetter(0, 1), 2, 3, OptionColumns(owner_column),
                         undouble=False)


def jsonl_rows(display: str, path: str, owner_column: str, offset: int = 0,
               before: int = 0, *, said_on: int | None = None,
               local: LocalPaths = NO_LOCAL_PATHS) -> Iterator[Row]:
    for number, text, problem in read_lines(path, offset, before):
        if problem is None and text.strip():
            problem, obj = _jsonl_object(text, owner_column)
            if obj is not None:
                yield from _jsonl_pairs(display, number, owner_column, obj, said_on, local)
        if problem is not None:
            yield ManifestProblem(display, number, problem)


def _jsonl_object(text: str, owner_column: str) -> tuple[str | None, dict[str, Any] | None]:
    example = f'{{"{owner_column}": "{EXAMPLE_OF.get(owner_column, "...")}", "file_id": "file-1"}}'
    try:
        value = load_json(text)
    except DuplicateKey as exc:
        return f"key {show(str(exc.args[0]))} appears twice in one object; keep one", None
    except NotFinite as exc:
        return (f"line holds {exc.args[0]}, which JSON does not allow; give a finite number, "
                "or a string"), None
    except json.JSONDecodeError as exc:
        what = f"line is not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        what = "line is nested too deeply to read"
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        what = f"line is not valid JSON ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})"
    else:
        if isinstance(value, dict):
            return None, value
        what = f"line is not a JSON object (it is {json_kind(value)})"
    return f"{what}; write one object a line, like {example}", None


def _jsonl_pairs(display: str, line: int, owner_column: str, obj: dict[str, Any],
                 said_on: int | None, local: LocalPaths) -> Iterator[Row]:
    other = other_owner(owner_column)
    if other is not None and other in obj:
        what = (both_owners("object") if owner_column in obj
                else wrong_target(owner_column, other, "object", said_on))
        yield ManifestProblem(display, line, what)
        return
    missing = missing_names(obj, owner_column)
    if missing:
        what = (f"object has no {missing}; every object needs {owner_column} and "
                f"{file_names(owner_column)}")
        yield ManifestProblem(display, line, what)
        return
    values: list[str | None] = []  # owner, file_id, path: None where the object has no key
    for name in (owner_column, "file_id", "path"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            what = not_a_string(name, json_kind(value), json.dumps(value))
            yield ManifestProblem(display, line, what)
            return
        values.append(value if value is not None or name not in obj else "")
    owner, file_id, local_path = values
    options = read_options(obj, owner_column)
    yield from checked_rows(display, line, owner_column, owner or "", file_id, local_path,
                            "object", local, options)
