"""Reading the YAML config file: its top-level settings, each with the line it is on.

`read_config` checks the file's shape and names (unknown keys get the closest name, a key set
twice names both lines, a pasted API key is refused unseen); `config_value` parses one entry with
its option's kind, taking a relative path from the file's directory. YAML errors are rebuilt
from their parts, so no snippet of the file reaches a message.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final

import yaml

from runner.config.kinds import DEFAULT_API_KEY_ENV, InvalidValue
from runner.config.options import CONFIG_KEYS, Option
from runner.config.redact import hide_keys, is_secret_name, quote_value
from runner.errors import ConfigError

MAX_CONFIG_BYTES: Final = 1 << 20
_NULL_TAG: Final = "tag:yaml.org,2002:null"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key repeated in one mapping (plain safe_load keeps the last)."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable: SafeConstructor reports it with its own mark
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"found key {quote_value(str(key), 40)} twice (first on line {first})",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class ConfigEntry:
    """One top-level `key: value` of a config file, kept as a node for its line and text."""

    line: int
    node: yaml.Node


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _yaml_error(path: str, text: str, exc: yaml.YAMLError) -> ConfigError:
    # Built from the parts, never str(exc): that quotes a snippet of the file, which could be
    # the line where someone pasted a key.
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: max(exc.position, 0)].count("\n") + 1
        code = f" (#x{exc.character:04x})" if isinstance(exc.character, int) else ""
        return ConfigError(f"{path}:{line}: a character YAML does not allow{code}; remove it")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        # "<stream end>" is marked after the last newline: name the last line there is.
        line = min(mark.line + 1, max(1, len(text.splitlines()))) if mark is not None else 1
        where = f"{path}:{line}"
        # PyYAML quotes alias, anchor and tag names: never let a pasted key through.
        problem = hide_keys(_one_line(exc.problem or exc.context or "unreadable"))
        return ConfigError(f"{where}: not valid YAML ({problem}); fix the file "
                           "(see config.example.yaml)")
    return ConfigError(f"{path}: not valid YAML; fix the file (see config.example.yaml)")


def _read_config_text(path: str) -> str:
    try:
        # O_NONBLOCK: a FIFO given as --config must fail the regular-file check, not hang.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(path)
            if not stat.S_ISREG(mode):
                raise ConfigError(f"{path}: not a regular file; give --config the path of a "
                                  "YAML file")
            os.set_blocking(fd, True)
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; check the path given to --config"
                          ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; give --config the path of a YAML file"
                          ) from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the config file (permission denied); "
                          "check its permissions") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror}); "
                          "check the path given to --config") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: too large for a config file (over 1 MiB); "
                          "check the path given to --config")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text; save the config file as UTF-8") from None


def _check_key(path: str, line: int, name: str) -> None:
    """Refuse a top-level key that is not a setting a config file may hold."""
    if is_secret_name(name):
        # Never echo the value: it is most likely the key itself.
        raise ConfigError(f"{path}:{line}: an API key does not belong in a config file; put it "
                          f"in the {DEFAULT_API_KEY_ENV} environment variable "
                          "(or use --api-key-file)")
    if name == "config":
        raise ConfigError(f'{path}:{line}: "config" cannot be set in a config file; '
                          "pass --config FILE on the command line")
    if name not in CONFIG_KEYS:
        close = difflib.get_close_matches(name.replace("-", "_").lstrip("_"), CONFIG_KEYS, n=1)
        hint = (f'did you mean "{close[0]}"?' if close
                else "the settings are " + ", ".join(CONFIG_KEYS))
        raise ConfigError(f"{path}:{line}: unknown setting {quote_value(name, 40)}; {hint}")


def read_config(path: str) -> dict[str, ConfigEntry]:
    """The top-level settings of a YAML config file, checked for shape and names (values are
    checked by `config_value`, for the settings the command uses)."""
    text = _read_config_text(path)
    try:
        loader = UniqueKeyLoader(text)
    except yaml.YAMLError as exc:  # the reader checks for unprintable characters up front
        raise _yaml_error(path, text, exc) from None
    try:
        root = loader.get_single_node()
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL_TAG):
            return {}
        if not isinstance(root, yaml.MappingNode):
            what = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            raise ConfigError(f"{path}:{root.start_mark.line + 1}: the config file is {what}, "
                              "not a mapping of settings; write one `setting: value` a line "
                              "(see config.example.yaml)")
        pairs: list[tuple[str, int, yaml.Node]] = []
        for key_node, value_node in root.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{path}:{line}: a setting name must be a plain word "
                                  "(no merge keys, lists or mappings); see config.example.yaml")
            _check_key(path, line, str(key_node.value))
            pairs.append((str(key_node.value), line, value_node))
        entries: dict[str, ConfigEntry] = {}
        for name, line, value_node in pairs:
            if name in entries:
                raise ConfigError(f'{path}:{line}: "{name}" is set twice (first on line '
                                  f"{entries[name].line}); keep one")
            # Construct with the safe loader to refuse what safe_load would (bad tags,
            # repeated keys further down), though only the node's text is used.
            try:
                loader.construct_object(value_node, deep=True)
            except ValueError:  # e.g. a date like 2024-13-45 that is no date
                raise ConfigError(f"{path}:{value_node.start_mark.line + 1}: {name}: the value "
                                  "is not valid for its YAML type; put it in quotes if it is "
                                  "text") from None
            entries[name] = ConfigEntry(value_node.start_mark.line + 1, value_node)
        return entries
    except yaml.YAMLError as exc:
        raise _yaml_error(path, text, exc) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file; "
                          "see config.example.yaml") from None
    finally:
        loader.dispose()


def config_value(option: Option, entry: ConfigEntry, path: str) -> Any:
    """The value of `option` as the config file at `path` sets it in `entry`."""
    where = f"{path}:{entry.line}: {option.name}"
    node = entry.node
    if not isinstance(node, yaml.ScalarNode):
        what = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        raise ConfigError(f"{where}: got {what}; give {option.kind.want}")
    if node.tag == _NULL_TAG:
        if option.default is None:
            return None
        raise ConfigError(f"{where}: empty; give {option.kind.want} "
                          f"(or remove the line for the default, {option.default_doc})")
    if option.kind.plain_only and node.style is not None:
        raise ConfigError(f"{where}: got text {quote_value(str(node.value))} in quotes; "
                          f"give {option.kind.want} without quotes")
    try:
        value = option.kind.parse(str(node.value))
    except InvalidValue as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if option.relative_to_config and isinstance(value, str):
        value = os.path.join(os.path.dirname(path), os.path.expanduser(value))
    return value
