"""Settings: one table of options, resolved flag > environment > config file > default.

`OPTIONS` is the single source of truth: `add_options` builds the argparse flags from it,
`resolve_settings` reads flags, environment variables and the YAML config file through it, and
the README and config.example.yaml are checked against it. Every value is parsed by our code, so
a bad one becomes one line naming where it came from, what is wrong and what to do.

The API key is not a setting. `load_api_key` reads it from the environment variable or key file
the settings name, into an `ApiKey` whose repr and str never show it.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import json
import os
import re
import shlex
import stat
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from runner.errors import ConfigError, UsageError

COMMANDS: Final = ("run", "detach", "validate", "status", "failed")
TARGETS: Final = ("assistant-files", "vector-store-files")
FORMATS: Final = ("csv", "yaml", "jsonl")
DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV: Final = "OPENAI_API_KEY"
# A cap, not the pace: the rate limiter keeps a run at the API's limit, and a run needs about
# limit x round trip requests in flight to reach it (Little's law: 100/s at 1 s answers is 100;
# 16, the old default, carried at most 16/s there). 256 covers limits up to 256/s at 1 s round
# trips while its sockets stay well under a cron `ulimit -n` of 1024 (SPEC: at most 256). Idle
# workers cost nothing measurable (bench/RESULTS.md, "Reaching the limit by default"); the
# opening window (runner/opening.py) keeps a wrong base URL within the breaker's 40 requests.
DEFAULT_CONCURRENCY: Final = 256
STDIN: Final = "-"

_RUN: Final = frozenset({"run", "detach"})  # the commands that send: run's settings
_EVERY: Final = frozenset(COMMANDS)

MAX_CONFIG_BYTES: Final = 1 << 20
MAX_KEY_FILE_BYTES: Final = 64 << 10
_NULL_TAG: Final = "tag:yaml.org,2002:null"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class _Invalid(Exception):
    """A value is wrong; the text says what and what to give. The caller adds where."""


# ----------------------------------------------------------------------------- value kinds


@dataclass(frozen=True)
class Kind:
    """How one setting's value is written and checked.

    `parse` takes the text of a flag, an environment variable or a config-file scalar and
    returns the value, or raises `_Invalid`. `want` completes "give ..." in type errors.
    `plain_only`: in a config file the value must be an unquoted scalar (numbers, booleans).
    """

    parse: Callable[[str], Any]
    want: str
    plain_only: bool = False


def _looks_like_key(text: str) -> bool:
    return text.strip().startswith("sk-")


_KEY_NOT_PATH = re.compile(r"sk-[A-Za-z0-9_-]{16,}")  # a key has no dot or slash; a path may


def _is_key_not_path(text: str) -> bool:
    """A value given as a path that is surely a key: it must not become a file's name."""
    return _KEY_NOT_PATH.fullmatch(text.strip()) is not None and not os.path.exists(text)


def _show(text: str, limit: int = 60) -> str:
    """A value quoted for a message: one line, cut short, and never something key-shaped."""
    if _looks_like_key(text):
        return "(a value that looks like an API key)"
    cut = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(cut)


_KEY_SHAPED = re.compile(r"(?<![A-Za-z0-9_-])sk-[^\s'\"]*")  # "sk-...", not "task-..."


def hide_keys(text: str) -> str:
    """`text` with every key-shaped word ("sk-...") replaced, for messages that quote input."""
    return _KEY_SHAPED.sub("(a value that looks like an API key)", text)


def _bare(number_text: str) -> str:
    """A number as written, unquoted unless it is too long to read."""
    return number_text if len(number_text) <= 20 else _show(number_text, 20)


_WHOLE_TEXT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _whole(low: int, high: int, *, words: tuple[str, ...] = ()) -> Kind:
    """A whole number in [low, high]; `words` are extra accepted spellings ("auto" -> None)."""
    allowed = " or ".join([*words, f"{low} to {high}"])
    noun = "a whole number" + "".join(f" or {w}" for w in words)

    def parse(text: str) -> int | None:
        stripped = text.strip()
        if stripped.lower() in words:
            return None
        if not _WHOLE_TEXT.fullmatch(stripped):
            raise _Invalid(f"{_show(text)} is not {noun}; give {allowed}")
        # Keep int() away from huge digit strings (Python refuses > 4300 digits).
        number = int(stripped) if len(stripped) <= 18 else None
        if number is None or not low <= number <= high:
            raise _Invalid(f"{_bare(stripped)} is out of range; give {allowed}")
        return number

    return Kind(parse, allowed, plain_only=not words)


def _seconds(low: float, high: float, *, above_low: bool) -> Kind:
    """A number of seconds in (low, high] when `above_low`, else [low, high]."""
    bounds = f"above {low:g} and at most {high:g}" if above_low else f"from {low:g} to {high:g}"
    allowed = f"a number of seconds {bounds}"

    def parse(text: str) -> float:
        stripped = text.strip()
        if not _DECIMAL_TEXT.fullmatch(stripped):
            raise _Invalid(f"{_show(text)} is not a number of seconds; give a number {bounds}")
        value = float(stripped)
        too_low = value <= low if above_low else value < low
        if too_low or value > high:  # inf lands here too
            raise _Invalid(f"{_bare(stripped)} is out of range; give {allowed}")
        return value

    return Kind(parse, allowed, plain_only=True)


def _parse_bool(text: str) -> bool:
    # YAML 1.1 also reads yes/no/on/off as booleans; we take only true/false.
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise _Invalid(f"{_show(text)} is not true or false; give true or false")
    return lowered == "true"


_BOOL = Kind(_parse_bool, "true or false", plain_only=True)


def _choice(names: tuple[str, ...], noun: str) -> Kind:
    allowed = " or ".join(names) if len(names) == 2 else ", ".join(names[:-1]) + " or " + names[-1]

    def parse(text: str) -> str:
        if text in names:
            return text
        close = difflib.get_close_matches(text, names, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"give {allowed}"
        raise _Invalid(f"unknown {noun} {_show(text)}; {hint}")

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
        raise _Invalid(f"the URL holds a user name or password; remove it ({example})")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise _Invalid(f"{_show(text)} is not a URL; {example}") from None
    bad_char = any(c.isspace() or not c.isprintable() for c in url)
    if parts.scheme not in ("http", "https") or not host or bad_char:
        raise _Invalid(f"{_show(text)} is not a URL; {example}")
    if parts.query or parts.fragment:
        raise _Invalid(f"{_show(text)} has a query or fragment; give the API root only, "
                       f"e.g. {DEFAULT_BASE_URL}")
    if parts.scheme == "http" and not _is_loopback(host):
        secure = "https://" + url.split("://", 1)[1]
        raise _Invalid("plain http is allowed only to a loopback host (127.0.0.1, ::1, "
                       f"localhost); use {secure.rstrip('/')}")
    return url.rstrip("/")


def _header_value(noun: str, example: str) -> Kind:
    """An ID sent as a header value: visible ASCII only (a space or newline would break it)."""

    def parse(text: str) -> str:
        value = text.strip()
        if _looks_like_key(value):
            # An API key here would be sent as a header and echoed in the "next:" command.
            raise _Invalid(f"the value looks like an API key, not {noun}; put the key in "
                           f"{DEFAULT_API_KEY_ENV} (or a file for --api-key-file) and give "
                           f"{noun} here (e.g. {example})")
        if not value or not all(0x21 <= ord(c) <= 0x7E for c in value):
            raise _Invalid(f"{_show(text)} is not {noun}; it may hold no spaces, control or "
                           f"non-ASCII characters (e.g. {example})")
        return value

    return Kind(parse, f"{noun} (e.g. {example})")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")


def _parse_env_name(text: str) -> str:
    if not _ENV_NAME.fullmatch(text):
        # Never echo it: a key pasted here by mistake must not reach stderr.
        raise _Invalid("not a variable name; give the NAME of the variable that holds the key "
                       f"(e.g. {DEFAULT_API_KEY_ENV}), not the key itself")
    return text


def _path(*, no_stdin: str | None = None, refuse_keys: bool = True) -> Kind:
    """A file path; `no_stdin` says why "-" cannot stand for a standard stream here;
    `refuse_keys`: an API key given here is refused unseen (not made a file name)."""

    def parse(text: str) -> str:
        if not text or "\0" in text:
            raise _Invalid("empty or not a path; give a file path")
        if refuse_keys and _is_key_not_path(text):
            raise _Invalid("the value looks like an API key, not a file path; give a file path "
                           f"(the key goes in {DEFAULT_API_KEY_ENV})")
        if text == STDIN and no_stdin is not None:
            raise _Invalid(f'"-" cannot be used here ({no_stdin}); give a file path')
        return text

    return Kind(parse, "a file path")


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Option:
    """One setting: its flag, config key, environment variable, default, parser and help.

    `name` is the config key and the `Settings` field; the flag is `--` + name with `_` -> `-`.
    `commands` are the commands whose parser takes the flag. `in_config`: a config file may set
    it. `relative_to_config`: a relative path in the config file is taken from the file's
    directory. `default_doc` is the default as the README shows it.
    """

    name: str
    help: str
    kind: Kind
    default: Any
    default_doc: str
    commands: frozenset[str] = _RUN
    env: str | None = None
    metavar: str | None = None
    in_config: bool = True
    relative_to_config: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_switch(self) -> bool:
        return self.kind is _BOOL

    @property
    def off_flag(self) -> str | None:
        """The flag that turns a switch off again (beats a config file's `true`)."""
        if not self.is_switch:
            return None
        if self.name.startswith("no_"):
            return "--" + self.name[3:].replace("_", "-")
        return "--no-" + self.name.replace("_", "-")


def _switch(name: str, help: str, commands: frozenset[str] = _RUN) -> Option:
    return Option(name, help, kind=_BOOL, default=False, default_doc="off", commands=commands)


OPTIONS: Final[tuple[Option, ...]] = (
    Option("config", "YAML config file",
           kind=_path(no_stdin="stdin may hold the manifest"), default=None, default_doc="none",
           commands=_EVERY, metavar="FILE", in_config=False),
    Option("target", "which call: assistant-files or vector-store-files; needed only where "
           "the manifest cannot say", kind=_choice(TARGETS, "target"), default=None,
           default_doc="from the manifest", commands=_EVERY, metavar="T"),
    Option("format", "manifest format: csv, yaml or jsonl; required when the manifest is -",
           kind=_choice(FORMATS, "format"), default=None, default_doc="by extension",
           commands=_EVERY, metavar="F"),
    Option("log", "the result log; required when the manifest is -",
           kind=_path(no_stdin="the log is read back to resume"), default=None,
           default_doc="<manifest>.results.jsonl", commands=_EVERY, metavar="FILE",
           relative_to_config=True),
    Option("base_url", "API root; https unless the host is loopback",
           kind=Kind(_parse_base_url, f"an https URL (e.g. {DEFAULT_BASE_URL})"),
           default=DEFAULT_BASE_URL, default_doc=DEFAULT_BASE_URL, env="OPENAI_BASE_URL",
           metavar="URL"),
    Option("org", "organization ID, sent as OpenAI-Organization",
           kind=_header_value("an organization ID", "org-abc123"), default=None,
           default_doc="none", env="OPENAI_ORG_ID", metavar="ID"),
    Option("project", "project ID, sent as OpenAI-Project",
           kind=_header_value("a project ID", "proj_abc123"), default=None, default_doc="none",
           env="OPENAI_PROJECT_ID", metavar="ID"),
    Option("api_key_env", "the environment variable that holds the API key",
           kind=Kind(_parse_env_name, "a variable name"), default=DEFAULT_API_KEY_ENV,
           default_doc=DEFAULT_API_KEY_ENV, metavar="NAME"),
    Option("api_key_file", "read the API key from this file (mode 0600 or stricter)",
           kind=_path(refuse_keys=False), default=None, default_doc="none", metavar="FILE",
           relative_to_config=True),
    Option("concurrency", "requests in flight at most (1-1024)",
           kind=_whole(1, 1024), default=DEFAULT_CONCURRENCY,
           default_doc=str(DEFAULT_CONCURRENCY), metavar="N"),
    Option("rpm", "requests per minute at most, every request counted; auto: learn the limit",
           kind=_whole(1, 1_000_000, words=("auto",)), default=None, default_doc="auto",
           metavar="N"),
    Option("store_rpm", "attach calls per minute per vector store",
           kind=_whole(1, 1_000_000), default=300, default_doc="300", metavar="N"),
    Option("max_attempts", "attempts per item per run, first try included (1-100)",
           kind=_whole(1, 100), default=6, default_doc="6", metavar="N"),
    Option("timeout", "seconds per request",
           kind=_seconds(0, 3600, above_low=True), default=60.0, default_doc="60", metavar="S"),
    Option("settle", "an uncertain write is checked no sooner than S seconds after the client "
           "stopped waiting for it (the server may apply it late)",
           kind=_seconds(0, 3600, above_low=False), default=10.0, default_doc="10",
           metavar="S"),
    Option("batch_size", "vector stores: 0 = one call a file; 1-2000 = file_batches",
           kind=_whole(0, 2000), default=0, default_doc="0", metavar="N"),
    _switch("wait", "vector stores: poll until files leave in_progress"),
    Option("wait_timeout", "seconds --wait polls at most",
           kind=_seconds(0, 7 * 86400, above_low=True), default=900.0, default_doc="900",
           metavar="S"),
    Option("max_runtime", "stop starting work after S seconds (exit 5)",
           kind=_seconds(0, 30 * 86400, above_low=True), default=None, default_doc="none",
           metavar="S"),
    _switch("retry_failed", "also resend items the API refused"),
    _switch("dry_run", "print what would be sent; no key, no lock, no write, no request"),
    _switch("json", "one JSON object on stdout at the end",
            frozenset({"run", "detach", "status"})),
    _switch("quiet", "no summary text and no periodic lines"),
    _switch("no_progress", "no progress bar and no periodic lines"),
    _switch("debug", "tracebacks for unexpected errors (never the key)"),
    Option("backoff_initial", "bound of the first retry wait, in seconds (full jitter)",
           kind=_seconds(0, 3600, above_low=False), default=0.5, default_doc="0.5",
           metavar="S"),
    Option("backoff_max", "cap of one retry wait, in seconds",
           kind=_seconds(0, 3600, above_low=False), default=30.0, default_doc="30",
           metavar="S"),
)

OPTIONS_BY_NAME: Final[Mapping[str, Option]] = MappingProxyType({o.name: o for o in OPTIONS})
CONFIG_KEYS: Final[tuple[str, ...]] = tuple(o.name for o in OPTIONS if o.in_config)


def _resolved_for(option: Option, command: str) -> bool:
    """`validate` checks everything `run` would use (but the key), flags or not."""
    return command in option.commands or (command == "validate" and "run" in option.commands)


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the flags `command` takes. Every default is None, so "not given" is visible; values
    stay text (our parsers turn them into values, with our messages). Switches get an off flag.

    Also turns off argparse's prefix matching on `parser`: `--retry` must not mean
    `--retry-failed` (sub-parsers do not inherit `allow_abbrev=False`).
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    parser.allow_abbrev = False
    for option in OPTIONS:
        if command not in option.commands:
            continue
        tail = f" [env: {option.env}]" if option.env else ""
        if option.off_flag is not None:
            parser.add_argument(option.flag, dest=option.name, action="store_const", const=True,
                                default=None, help=f"{option.help}{tail}")
            parser.add_argument(option.off_flag, dest=option.name, action="store_const",
                                const=False, default=None,
                                help=f"turn {option.flag} off (over the config file)")
        else:
            parser.add_argument(option.flag, dest=option.name, metavar=option.metavar,
                                default=None,
                                help=f"{option.help} (default: {option.default_doc}){tail}")


# ----------------------------------------------------------------------------- config file


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
                    None, None, f"found key {_show(str(key), 40)} twice (first on line {first})",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class _Entry:
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


def is_secret_name(name: str) -> bool:
    """Whether a config key or flag name asks for a secret (api_key, token, ...)."""
    normal = name.strip().lower().replace("-", "_")
    if normal in ("api_key_env", "api_key_file"):
        return False
    exact = {"key", "token", "password", "bearer", "authorization", "apikey"}
    return normal in exact or any(
        part in normal for part in ("api_key", "apikey", "secret", "token", "password"))


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
        raise ConfigError(f"{path}:{line}: unknown setting {_show(name, 40)}; {hint}")


def _read_config(path: str) -> dict[str, _Entry]:
    """The top-level settings of a YAML config file, checked for shape and names (values are
    checked by `resolve_settings`, for the settings its command uses)."""
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
        entries: dict[str, _Entry] = {}
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
            entries[name] = _Entry(value_node.start_mark.line + 1, value_node)
        return entries
    except yaml.YAMLError as exc:
        raise _yaml_error(path, text, exc) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file; "
                          "see config.example.yaml") from None
    finally:
        loader.dispose()


def _config_value(option: Option, entry: _Entry, path: str) -> Any:
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
        raise ConfigError(f"{where}: got text {_show(str(node.value))} in quotes; "
                          f"give {option.kind.want} without quotes")
    try:
        value = option.kind.parse(str(node.value))
    except _Invalid as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if option.relative_to_config and isinstance(value, str):
        value = os.path.join(os.path.dirname(path), os.path.expanduser(value))
    return value


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Every setting of one command, resolved. No secret is here: the key is `ApiKey`'s."""

    command: str
    manifest: str
    config: str | None
    target: str | None  # as given (flag or config file); None: read from the manifest
    format: str | None
    log: str
    base_url: str
    org: str | None
    project: str | None
    api_key_env: str
    api_key_file: str | None
    concurrency: int
    rpm: int | None
    store_rpm: int
    max_attempts: int
    timeout: float
    settle: float
    batch_size: int
    wait: bool
    wait_timeout: float
    max_runtime: float | None
    retry_failed: bool
    dry_run: bool
    json: bool
    quiet: bool
    no_progress: bool
    debug: bool
    backoff_initial: float
    backoff_max: float
    sources: Mapping[str, str]  # setting -> "flag" | "env" | "config" | "default"
    # setting -> where its value was given, for messages: "--batch-size", "cfg.yaml:3: wait"
    wheres: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def named(self, name: str) -> str:
        """Where a setting was given, for a message; its flag when not recorded."""
        return self.wheres.get(name) or "--" + name.replace("_", "-")


def _resolve_one(option: Option, args: argparse.Namespace, environ: Mapping[str, str],
                 entries: Mapping[str, _Entry], config: str | None) -> tuple[Any, str, str]:
    """(value, source, where) for one setting: flag > environment > config file > default."""
    given = getattr(args, option.name, None)
    if given is not None:
        if option.is_switch:
            return bool(given), "flag", option.flag
        try:
            return option.kind.parse(str(given)), "flag", option.flag
        except _Invalid as exc:
            raise UsageError(f"{option.flag}: {exc}") from None
    text = environ.get(option.env, "") if option.env else ""
    if option.env and text.strip():
        try:
            return option.kind.parse(text), "env", option.env
        except _Invalid as exc:
            raise UsageError(f"{option.env}: {exc}") from None
    entry = entries.get(option.name)
    if entry is not None and config is not None:
        where = f"{config}:{entry.line}: {option.name}"
        return _config_value(option, entry, config), "config", where
    return option.default, "default", option.flag


def resolve_settings(args: argparse.Namespace, *, command: str,
                     environ: Mapping[str, str]) -> Settings:
    """Resolve every setting of `command` from parsed flags, `environ` and the config file.

    `validate` resolves and checks all that `run` would (but the key); `status` and `failed`
    check the config file's names but ignore the values of settings they do not use.
    Raises UsageError (flag, environment) or ConfigError (config file), one line each.
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    manifest = getattr(args, "manifest", None)
    if not manifest:
        raise UsageError("MANIFEST: the path is empty; give a manifest file, or - for stdin")
    if _is_key_not_path(manifest):
        raise UsageError("MANIFEST: the value looks like an API key, not a manifest path; give "
                         f"the manifest's path (the key goes in {DEFAULT_API_KEY_ENV})")
    config: str | None = None
    if getattr(args, "config", None) is not None:
        config, _, _ = _resolve_one(OPTIONS_BY_NAME["config"], args, environ, {}, None)
    entries = _read_config(config) if config is not None else {}

    values: dict[str, Any] = {"config": config}
    sources: dict[str, str] = {"config": "flag" if config is not None else "default"}
    wheres: dict[str, str] = {}
    for option in OPTIONS:
        if option.name == "config":
            continue
        if _resolved_for(option, command):
            value, source, where = _resolve_one(option, args, environ, entries, config)
        else:
            value, source, where = option.default, "default", option.flag
        values[option.name], sources[option.name], wheres[option.name] = value, source, where

    if values["log"] is None:
        if manifest == STDIN:
            raise UsageError('--log: required when the manifest is "-" (stdin); '
                             "give --log FILE for the result log")
        values["log"] = f"{manifest}.results.jsonl"
    if manifest == STDIN and values["format"] is None:
        raise UsageError('--format: required when the manifest is "-" (stdin); '
                         "give --format csv, yaml or jsonl")
    return Settings(command=command, manifest=manifest,
                    sources=MappingProxyType(sources), wheres=MappingProxyType(wheres), **values)


def check_for_target(settings: Settings, target: str) -> None:
    """What `run` and `validate` refuse once the target is known (from --target or from the
    manifest): settings that only vector stores have. The error names where each was given."""
    if settings.command not in ("run", "validate") or target != "assistant-files":
        return
    for name, what in (("batch_size", "batches exist only for vector stores"),
                       ("wait", "waiting for processing applies only to vector stores")):
        if getattr(settings, name):
            error = ConfigError if settings.sources.get(name) == "config" else UsageError
            fix = ("give --target vector-store-files" if settings.target is not None
                   else "attach to vector stores (a vector_store_id manifest)")
            raise error(f"{settings.named(name)}: {what}; remove it or {fix}")


# ----------------------------------------------------------------------------- the key


class ApiKey:
    """The secret. repr and str never show it; only `last4` may be shown."""

    __slots__ = ("_value", "_source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self._source = source

    def reveal(self) -> str:
        """The key itself: for the Authorization header and nothing else."""
        return self._value

    @property
    def last4(self) -> str:
        # A short key (the sandbox's) would be too much revealed by four characters.
        return self._value[-4:] if len(self._value) >= 20 else "****"

    @property
    def source(self) -> str:
        """Where the key came from, for messages: "the OPENAI_API_KEY environment variable"."""
        return self._source

    def __repr__(self) -> str:
        return f"ApiKey(last4={self.last4!r}, source={self._source!r})"

    def __str__(self) -> str:
        return f"the API key ...{self.last4} from {self._source}"

    def __reduce__(self) -> Any:
        raise TypeError("an ApiKey is not to be pickled")


def _checked_key(value: str, where: str, fix: str) -> str:
    """Refuse a key that would break the header; the message never shows the key."""
    if any(c.isspace() for c in value):
        raise UsageError(f"{where}: the key has a space or line break inside; {fix}")
    if not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise UsageError(f"{where}: the key holds non-ASCII or control characters, which cannot "
                         f"go in an HTTP header; {fix}")
    return value


def _key_from_file(path: str, named_by: str) -> ApiKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if _looks_like_key(path):
            raise UsageError(f"{named_by}: the value looks like an API key, not a file path; put "
                             "the key in a file (chmod 600) and give its path") from None
        raise UsageError(f"{path}: no such key file; check {named_by}") from None
    except PermissionError:
        raise UsageError(f"{path}: cannot read the key file (permission denied); "
                         "check its owner and permissions") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the key file ({exc.strerror}); "
                         f"check {named_by}") from None
    try:
        # Checked on the open descriptor, so the file cannot be swapped between check and read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path}: not a regular file; give {named_by} a file holding the key")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            how = "readable by others" if mode & 0o044 else "open to others"
            raise UsageError(f"{path}: the key file is {how} (mode {mode:04o}); "
                             f"run chmod 600 {shlex.quote(path)}")
        data = b""
        while len(data) <= MAX_KEY_FILE_BYTES:
            chunk = os.read(fd, MAX_KEY_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    fix = "put only the key in the file"
    if len(data) > MAX_KEY_FILE_BYTES:
        raise UsageError(f"{path}: too large to be a key file; {fix}")
    try:
        value = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the key file is not text; {fix}") from None
    if not value:
        raise UsageError(f"{path}: the key file is empty; put your API key in it")
    return ApiKey(_checked_key(value, path, fix), f"the key file {path}")


def load_api_key(settings: Settings, environ: Mapping[str, str]) -> ApiKey:
    """The key for `run`: from `settings.api_key_file` when set, else the variable named by
    `settings.api_key_env`. A missing, empty or malformed key is a UsageError that never
    shows it; a key file open to group or others is refused."""
    if settings.api_key_file is not None:
        from_config = settings.sources.get("api_key_file") == "config"
        named_by = f"api_key_file in {settings.config}" if from_config else "--api-key-file"
        return _key_from_file(settings.api_key_file, named_by)
    name = settings.api_key_env
    value = environ.get(name, "").strip()
    if not value:
        raise UsageError(f"{name}: not set; export your API key in it "
                         "(or pass --api-key-env NAME or --api-key-file FILE)")
    fix = f"set {name} to the key alone"
    return ApiKey(_checked_key(value, name, fix), f"the {name} environment variable")
