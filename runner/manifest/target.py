"""Which target a manifest is for, read from the manifest itself (SPEC "Which target"): an
`assistant_id` column or key (or `assistants:`) means assistant-files, a `vector_store_id` one
(or `vector_stores:`) vector-store-files.

Only as far as the first row that says is read (a CSV's header, the first JSONL object or YAML
item naming one owner column), so a big manifest costs a line. A row that names both, or
none, says nothing here: the check that follows names it, with its line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, SequenceNode

from runner.manifest.common import (
    GROUP_OF,
    TARGET_OF,
    DuplicateKey,
    ManifestSource,
    NotFinite,
    load_json,
    read_lines,
)
from runner.manifest.yaml_fast import yaml_fast_start
from runner.manifest.yaml_format import is_str, node_line, read_document

_OWNER_OF_GROUP = {group: column for column, group in GROUP_OF.items()}


@dataclass(frozen=True)
class Detected:
    """What the manifest says: `owner_column` (so its target), on `line`, in words (`said`,
    e.g. 'header names "vector_store_id"') for a message naming both it and --target."""

    owner_column: str
    line: int
    said: str

    @property
    def target(self) -> str:
        return TARGET_OF[self.owner_column]


def detect_target(source: ManifestSource) -> Detected | None:
    """The owner column the manifest names first, or None when it names none (empty, or every
    row without one). Never raises on bad input: the check reports it."""
    if source.format == "csv":
        return _from_csv(source.path)
    if source.format == "jsonl":
        return _from_jsonl(source.path)
    if source.format == "yaml":
        return _from_yaml(source)
    return None


def _one_owner(names: object) -> str | None:
    found = [column for column in GROUP_OF if isinstance(names, (dict, list)) and column in names]
    return found[0] if len(found) == 1 else None


def _from_csv(path: str) -> Detected | None:
    numbers: list[int] = []

    def text() -> Iterator[str]:
        for number, line, _problem in read_lines(path):
            numbers.append(number)
            yield line

    try:
        for row in csv.reader(text(), strict=True):
            if any(value.strip() for value in row):  # the header: the first row not blank
                column = _one_owner([name.strip() for name in row])
                if column is None:
                    return None
                # numbers: the lines read since the last row, so the header's first.
                return Detected(column, numbers[0], f'header names "{column}"')
            numbers.clear()
    except csv.Error:
        return None
    return None


def _from_jsonl(path: str) -> Detected | None:
    for number, text, problem in read_lines(path):
        if problem is not None or not text.strip():
            continue
        try:
            value = load_json(text)
        except (ValueError, RecursionError, DuplicateKey, NotFinite):
            continue
        column = _one_owner(value)
        if column is not None:
            return Detected(column, number, f'object names "{column}"')
    return None


def _from_yaml(source: ManifestSource) -> Detected | None:
    # Grouped YAML in the shape tools write names its target on line 1, the document's first
    # key: said without composing the whole document (yaml_fast).
    shape = yaml_fast_start(source.path)
    if shape is not None and shape[0] in _OWNER_OF_GROUP:
        return Detected(_OWNER_OF_GROUP[shape[0]], 1, f'"{shape[0]}:" key')
    root, _problem = read_document(source.display, source.path)
    if not isinstance(root, MappingNode):
        return None
    for key, value in root.value:
        name = key.value if is_str(key) else None
        if name in _OWNER_OF_GROUP:
            return Detected(_OWNER_OF_GROUP[name], node_line(key), f'"{name}:" key')
        if name == "items" and isinstance(value, SequenceNode):
            for item in value.value:
                column = _one_owner(_keys(item))
                if column is not None:
                    return Detected(column, node_line(item), f'item names "{column}"')
    return None


def _keys(node: Node) -> list[str]:
    if not isinstance(node, MappingNode):
        return []
    return [str(key.value) for key, _value in node.value if is_str(key)]
