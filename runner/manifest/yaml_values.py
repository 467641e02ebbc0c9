"""YAML nodes turned into the plain values per-file options are checked as (options.py).

Scalars are read by PyYAML's own safe rules (YAML 1.1: unquoted yes/no/on/off are booleans,
0x1F an integer, .nan a float), so a value means here what `yaml.safe_load` would make of it.
What no option may hold (a date, a tagged scalar) becomes `Unsupported`, named in the message.
"""

from __future__ import annotations

from typing import Any

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.manifest.options import Unsupported

_TAG = "tag:yaml.org,2002:"
_CONSTRUCTOR = SafeConstructor()  # stateless for scalars: one serves every manifest


def plain_value(node: Node) -> Any:
    """The value a node holds: str, int, float, bool, None, list, dict, or Unsupported."""
    if isinstance(node, MappingNode):
        # Repeated keys were refused on the whole document (yaml_format._yaml_duplicates).
        return {_key(key): plain_value(value) for key, value in node.value}
    if isinstance(node, SequenceNode):
        return [plain_value(item) for item in node.value]
    if not isinstance(node, ScalarNode):
        return Unsupported("not a value", "")
    tag = node.tag
    if tag == _TAG + "str":
        return str(node.value)
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "bool":
        return _CONSTRUCTOR.construct_yaml_bool(node)
    if tag == _TAG + "int":
        return _CONSTRUCTOR.construct_yaml_int(node)
    if tag == _TAG + "float":
        return _CONSTRUCTOR.construct_yaml_float(node)
    if tag == _TAG + "timestamp":
        return Unsupported("a date", str(node.value))
    return Unsupported(f"tagged {tag}", str(node.value))


def _key(node: Node) -> Any:
    """A mapping key as a hashable value (a list or mapping as a key is Unsupported)."""
    if isinstance(node, (MappingNode, SequenceNode)):
        return Unsupported("a mapping" if isinstance(node, MappingNode) else "a list", "")
    return plain_value(node)
