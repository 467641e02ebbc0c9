"""YAML manifests: `items: [{assistant_id: ..., file_id: ...}]` or grouped
`assistants: {asst_abc: [file-1, ...]}` (`vector_stores:` for vector stores).

The document is composed whole into nodes (never constructed), which keeps a line number on
every value; aliases, deep nesting and repeated keys are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import ManifestProblem
from runner.items import is_valid_id
from runner.manifest.common import (
    EXAMPLE_OF,
    GROUP_OF,
    TARGET_OF,
    UTF16_BOMS,
    UTF16_MESSAGE,
    Row,
    both_owners,
    checked_pair,
    file_names,
    invalid_id,
    missing_names,
    not_a_string,
    other_owner,
    show,
    wrong_target,
)
from runner.manifest.options import OPTION_NAMES, read_options
from runner.manifest.rows import NO_LOCAL_PATHS, LocalPaths, checked_rows
from runner.manifest.yaml_values import plain_value

MAX_YAML_DEPTH = 32  # a manifest needs 4 levels; deeper is a mistake or an attack on the stack
_YAML_STR = "tag:yaml.org,2002:str"
_YAML_NULL = "tag:yaml.org,2002:null"
_ENTRY_KEYS = ("file_id", "path", *OPTION_NAMES)


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


def yaml_rows(display: str, path: str, owner_column: str, group_key: str,
              said_on: int | None = None, local: LocalPaths = NO_LOCAL_PATHS) -> Iterator[Row]:
    rows = list(_yaml_unsorted(display, path, owner_column, group_key, said_on, local))
    rows.sort(key=lambda row: row.line or 0)  # stable: same-line rows keep document order
    yield from rows


def _yaml_unsorted(display: str, path: str, owner_column: str, group_key: str,
                   said_on: int | None, local: LocalPaths) -> Iterator[Row]:
    root, problem = read_document(display, path)
    if problem is not None:
        yield problem
        return
    if root is None:
        return  # an empty file, or only comments
    yield from _yaml_duplicates(display, root)
    yield from _yaml_document(display, root, owner_column, group_key, said_on, local)


def read_document(display: str, path: str) -> tuple[Node | None, ManifestProblem | None]:
    """The file composed into nodes (None when empty or only comments), or why it cannot be."""
    with open(path, "rb") as stream:
        raw = stream.read()
    if raw.startswith(UTF16_BOMS):
        return None, ManifestProblem(display, 1, UTF16_MESSAGE)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        where = f"byte 0x{raw[exc.start]:02x} at column {column}"
        what = f"line is not UTF-8 ({where}); save the file as UTF-8"
        return None, ManifestProblem(display, line, what)
    root, problem = _compose(text)
    if problem is not None:
        return None, ManifestProblem(display, problem[0], problem[1])
    return root, None


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


def node_line(node: Node) -> int:
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
                            node_line(key),
                            f"key {show(key.value)} appears twice in one mapping "
                            f"(first on line {first_on[ident]}); keep one, merging what they hold",
                        )
                    else:
                        first_on[ident] = node_line(key)
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def _yaml_document(display: str, root: Node, owner_column: str, group_key: str,
                   said_on: int | None, local: LocalPaths) -> Iterator[Row]:
    shapes = f'"items:" or "{group_key}:"'
    if not isinstance(root, MappingNode):
        if isinstance(root, SequenceNode):
            what = f'manifest is a list; put it under "items:", or group files under "{group_key}:"'
        else:
            what = f"manifest is a single value, not a mapping; start it with {shapes}"
        yield ManifestProblem(display, node_line(root), what)
        return
    if not root.value:
        yield ManifestProblem(display, node_line(root), f"manifest has no {shapes}; add one")
    other_group = {GROUP_OF[name] for name in GROUP_OF if name != owner_column}
    for key, value in root.value:
        name = key.value if is_str(key) else None
        if name == "items":
            yield from _yaml_items(display, value, owner_column, said_on, local)
        elif name == group_key:
            yield from _yaml_groups(display, value, owner_column, group_key, local)
        elif name in other_group:
            yield _yaml_wrong_group(display, node_line(key), name, owner_column, group_key, said_on)
        else:
            shown = show(str(key.value)) if isinstance(key, ScalarNode) else "that is not a string"
            what = f"unknown key {shown} at the top of the manifest; use {shapes}"
            yield ManifestProblem(display, node_line(key), what)


def _yaml_wrong_group(
    display: str, line: int, found: str, owner_column: str, group_key: str, said_on: int | None
) -> ManifestProblem:
    target = TARGET_OF.get(owner_column, "this target")
    found_target = next(
        (TARGET_OF[col] for col, group in GROUP_OF.items() if group == found), "the other target"
    )
    if said_on is not None:
        return ManifestProblem(
            display, line,
            f'"{found}:" groups files for {found_target}, but line {said_on} is for {target}; '
            f"a manifest is for one target: move the {found_target} pairs to a manifest of "
            "their own")
    return ManifestProblem(
        display,
        line,
        f'"{found}:" groups files for --target {found_target}, but --target {target} needs '
        f'"{group_key}:"; rename the key or pass --target {found_target}',
    )


def _yaml_items(display: str, node: Node, owner_column: str,
                said_on: int | None, local: LocalPaths) -> Iterator[Row]:
    example = f"{{{owner_column}: {EXAMPLE_OF.get(owner_column, '...')}, file_id: file-1}}"
    if _is_null(node):
        return
    if not isinstance(node, SequenceNode):
        what = f'"items:" is {_yaml_kind(node)}, not a list; write "- {example}" lines'
        yield ManifestProblem(display, node_line(node), what)
        return
    other = other_owner(owner_column)
    for item in node.value:
        if not isinstance(item, MappingNode):
            what = f"item is {_yaml_kind(item)}, not a mapping; write each item as {example}"
            yield ManifestProblem(display, node_line(item), what)
            continue
        fields = {k.value: v for k, v in item.value if is_str(k)}
        if other is not None and other in fields:
            what = (both_owners("item") if owner_column in fields
                    else wrong_target(owner_column, other, "item", said_on))
            yield ManifestProblem(display, node_line(item), what)
            continue
        missing = missing_names(fields, owner_column)
        if missing:
            what = (f"item has no {missing}; every item needs {owner_column} and "
                    f"{file_names(owner_column)}")
            yield ManifestProblem(display, node_line(item), what)
            continue
        owner, problem = _yaml_string(fields[owner_column], owner_column)
        file_id = local_path = None
        if problem is None:
            file_id, local_path, problem = _file_fields(fields)
        if problem is not None:
            yield ManifestProblem(display, node_line(item), problem)
            continue
        options = read_options(_option_values(fields), owner_column)
        yield from checked_rows(display, node_line(item), owner_column, owner, file_id,
                                local_path, "item", local, options)


def _file_fields(fields: dict[str, Node]) -> tuple[str | None, str | None, str | None]:
    """The `file_id` and `path` strings of an item or entry (None where it has no such key),
    or why one is not a string."""
    values: list[str | None] = []
    for name in ("file_id", "path"):
        if name not in fields:
            values.append(None)
            continue
        value, problem = _yaml_string(fields[name], name)
        if problem is not None:
            return None, None, problem
        values.append(value)
    return values[0], values[1], None


def _yaml_groups(display: str, node: Node, owner_column: str, group_key: str,
                 local: LocalPaths) -> Iterator[Row]:
    example = f"{EXAMPLE_OF.get(owner_column, 'owner')}: [file-1, file-2]"
    if _is_null(node):
        return
    if not isinstance(node, MappingNode):
        kind = _yaml_kind(node)
        what = f'"{group_key}:" is {kind}, not a mapping; write "{group_key}: {{{example}}}"'
        yield ManifestProblem(display, node_line(node), what)
        return
    for key, files in node.value:
        owner, problem = _yaml_string(key, owner_column)
        if problem is None and not owner:
            problem = f"{owner_column} is empty; every entry needs {owner_column} and file_id"
        elif problem is None and not is_valid_id(owner):
            problem = invalid_id(owner_column, owner)
        if problem is not None:
            yield ManifestProblem(display, node_line(key), problem)
            continue
        if not isinstance(files, SequenceNode):
            kind = _yaml_kind(files)
            what = (
                f"files of {show(owner)} are {kind}, not a list; write {owner}: [file-1, file-2]"
            )
            yield ManifestProblem(display, node_line(key), what)
            continue
        for entry in files.value:
            yield from _yaml_entry(display, entry, owner_column, owner, local)


def _yaml_entry(display: str, entry: Node, owner_column: str, owner: str,
                local: LocalPaths) -> Iterator[Row]:
    """A grouped list entry: a file id, or {file_id: ..., attributes: ..., chunking_strategy:}
    (or {path: ..., ...}, a local file, for vector stores)."""
    line = node_line(entry)
    if not isinstance(entry, MappingNode):
        bare, problem = _yaml_string(entry, "file_id")
        if problem is not None:
            yield ManifestProblem(display, line, problem)
        else:
            yield checked_pair(display, line, owner_column, owner, bare, "entry")
        return
    fields: dict[str, Node] = {}
    for key, value in entry.value:
        if not is_str(key) or key.value not in _ENTRY_KEYS:
            shown = show(str(key.value)) if isinstance(key, ScalarNode) else _yaml_kind(key)
            takes = "file_id (or path)" if owner_column == "vector_store_id" else "file_id"
            yield ManifestProblem(display, node_line(key), (
                f"entry has an unknown key {shown}; an entry takes {takes}, attributes "
                "and chunking_strategy"))
            return
        fields[key.value] = value
    if "file_id" not in fields and "path" not in fields:
        what = 'entry has no "file_id"; write {file_id: file-1, attributes: {...}}'
        if owner_column == "vector_store_id":
            what = ('entry has no "file_id" or "path"; write {file_id: file-1, attributes: '
                    "{...}} or {path: guide/intro.md, attributes: {...}}")
        yield ManifestProblem(display, line, what)
        return
    file_id, local_path, problem = _file_fields(fields)
    if problem is not None:
        yield ManifestProblem(display, line, problem)
        return
    options = read_options(_option_values(fields), owner_column)
    yield from checked_rows(display, line, owner_column, owner, file_id, local_path, "entry",
                            local, options)


def _option_values(fields: dict[str, Node]) -> dict[str, Any]:
    return {name: plain_value(fields[name]) for name in OPTION_NAMES if name in fields}


def _yaml_string(node: Node, name: str) -> tuple[str, str | None]:
    """The string a node holds, or why it is not one: YAML reads 123 and yes as other types."""
    if is_str(node):
        return str(node.value), None
    if _is_null(node):
        return "", None  # reported as empty by _pair, with the same words as the other formats
    text = str(node.value) if isinstance(node, ScalarNode) else None
    return "", not_a_string(name, _yaml_kind(node), text)


def is_str(node: Node) -> bool:
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
    return kinds.get(node.tag, f"tagged {show(node.tag)}")
