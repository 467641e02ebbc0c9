"""The options table: every setting's flag, config key, environment variable, default and kind.

`OPTIONS` is the single source of truth: `add_options` builds the argparse flags from it,
`resolve_settings` reads flags, environment variables and the config file through it, and the
README and config.example.yaml are checked against it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from runner.config.kinds import (
    BASE_URL,
    BOOL,
    DEFAULT_API_KEY_ENV,
    DEFAULT_BASE_URL,
    ENV_NAME,
    Kind,
    choice,
    file_path,
    header_value,
    seconds,
    whole_number,
)

COMMANDS: Final = ("run", "detach", "sync", "validate", "status", "failed")
TARGETS: Final = ("assistant-files", "vector-store-files")
FORMATS: Final = ("csv", "yaml", "jsonl")
# A cap, not the pace: the rate limiter keeps a run at the API's limit, and a run needs about
# limit x round trip requests in flight to reach it (Little's law: 100/s at 1 s answers is 100;
# 16, the old default, carried at most 16/s there). 256 covers limits up to 256/s at 1 s round
# trips while its sockets stay well under a cron `ulimit -n` of 1024 (SPEC: at most 256). Idle
# workers cost nothing measurable (bench/RESULTS.md, "Reaching the limit by default"); the
# opening window (runner/requests/opening.py) keeps a wrong base URL within the breaker's 40
# requests.
DEFAULT_CONCURRENCY: Final = 256

_RUN: Final = frozenset({"run", "detach", "sync"})  # the commands that send: run's settings
_EVERY: Final = frozenset(COMMANDS)


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
        return self.kind is BOOL

    @property
    def off_flag(self) -> str | None:
        """The flag that turns a switch off again (beats a config file's `true`)."""
        if not self.is_switch:
            return None
        if self.name.startswith("no_"):
            return "--" + self.name[3:].replace("_", "-")
        return "--no-" + self.name.replace("_", "-")


def _switch(name: str, help: str, commands: frozenset[str] = _RUN) -> Option:
    return Option(name, help, kind=BOOL, default=False, default_doc="off", commands=commands)


OPTIONS: Final[tuple[Option, ...]] = (
    Option("config", "YAML config file",
           kind=file_path(no_stdin="stdin may hold the manifest"), default=None, default_doc="none",
           commands=_EVERY, metavar="FILE", in_config=False),
    Option("target", "which call: assistant-files or vector-store-files; needed only where "
           "the manifest cannot say", kind=choice(TARGETS, "target"), default=None,
           default_doc="from the manifest", commands=_EVERY, metavar="T"),
    Option("format", "manifest format: csv, yaml or jsonl; required when the manifest is -",
           kind=choice(FORMATS, "format"), default=None, default_doc="by extension",
           commands=_EVERY, metavar="F"),
    Option("log", "the result log; required when the manifest is -",
           kind=file_path(no_stdin="the log is read back to resume"), default=None,
           default_doc="<manifest>.results.jsonl", commands=_EVERY, metavar="FILE",
           relative_to_config=True),
    Option("base_url", "API root; https unless the host is loopback",
           kind=BASE_URL,
           default=DEFAULT_BASE_URL, default_doc=DEFAULT_BASE_URL, env="OPENAI_BASE_URL",
           metavar="URL"),
    Option("org", "organization ID, sent as OpenAI-Organization",
           kind=header_value("an organization ID", "org-abc123"), default=None,
           default_doc="none", env="OPENAI_ORG_ID", metavar="ID"),
    Option("project", "project ID, sent as OpenAI-Project",
           kind=header_value("a project ID", "proj_abc123"), default=None, default_doc="none",
           env="OPENAI_PROJECT_ID", metavar="ID"),
    Option("api_key_env", "the environment variable that holds the API key",
           kind=ENV_NAME, default=DEFAULT_API_KEY_ENV,
           default_doc=DEFAULT_API_KEY_ENV, metavar="NAME"),
    Option("api_key_file", "read the API key from this file (mode 0600 or stricter)",
           kind=file_path(refuse_keys=False), default=None, default_doc="none", metavar="FILE",
           relative_to_config=True),
    Option("concurrency", "requests in flight at most (1-1024)",
           kind=whole_number(1, 1024), default=DEFAULT_CONCURRENCY,
           default_doc=str(DEFAULT_CONCURRENCY), metavar="N"),
    Option("rpm", "requests per minute at most, every request counted; auto: learn the limit",
           kind=whole_number(1, 1_000_000, words=("auto",)), default=None, default_doc="auto",
           metavar="N"),
    Option("store_rpm", "writes per minute per vector store (adds, batches, updates, detaches)",
           kind=whole_number(1, 1_000_000), default=300, default_doc="300", metavar="N"),
    Option("max_attempts", "attempts per item per run, first try included (1-100)",
           kind=whole_number(1, 100), default=6, default_doc="6", metavar="N"),
    Option("timeout", "seconds per request",
           kind=seconds(0, 3600, above_low=True), default=60.0, default_doc="60", metavar="S"),
    Option("settle", "an uncertain write is checked no sooner than S seconds after the client "
           "stopped waiting for it (the server may apply it late)",
           kind=seconds(0, 3600, above_low=False), default=10.0, default_doc="10",
           metavar="S"),
    Option("batch_size", "vector stores: 0 = one call a file; 1-2000 = file_batches",
           kind=whole_number(0, 2000), default=0, default_doc="0", metavar="N"),
    _switch("wait", "vector stores: poll until files leave in_progress"),
    Option("wait_timeout", "seconds --wait polls at most",
           kind=seconds(0, 7 * 86400, above_low=True), default=900.0, default_doc="900",
           metavar="S"),
    Option("max_runtime", "stop starting work after S seconds (exit 5)",
           kind=seconds(0, 30 * 86400, above_low=True), default=None, default_doc="none",
           metavar="S"),
    Option("max_delete", "sync: detach at most N files in the run (replaces the half-store "
           "guard)", kind=whole_number(0, 1_000_000_000), default=None, default_doc="none",
           commands=frozenset({"sync"}), metavar="N"),
    _switch("keep_files", "never delete a file object the tool uploaded (local files)"),
    _switch("retry_failed", "also resend items the API refused"),
    _switch("dry_run", "print what would be sent; no lock, no write (run, detach: no key, no "
            "request; sync: only its list requests)"),
    _switch("json", "one JSON object on stdout at the end",
            frozenset({"run", "detach", "sync", "status"})),
    _switch("quiet", "no summary text and no periodic lines"),
    _switch("no_progress", "no progress bar and no periodic lines"),
    _switch("debug", "tracebacks for unexpected errors (never the key)"),
    Option("backoff_initial", "bound of the first retry wait, in seconds (full jitter)",
           kind=seconds(0, 3600, above_low=False), default=0.5, default_doc="0.5",
           metavar="S"),
    Option("backoff_max", "cap of one retry wait, in seconds",
           kind=seconds(0, 3600, above_low=False), default=30.0, default_doc="30",
           metavar="S"),
)

OPTIONS_BY_NAME: Final[Mapping[str, Option]] = MappingProxyType({o.name: o for o in OPTIONS})
CONFIG_KEYS: Final[tuple[str, ...]] = tuple(o.name for o in OPTIONS if o.in_config)


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
