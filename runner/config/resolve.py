"""Resolving settings: flag > environment > config file > default, into a frozen `Settings`.

`resolve_settings` resolves every setting a command uses, remembering where each came from
(`Settings.sources`, `Settings.wheres`) so later errors can name it; it also applies the checks
that span settings (`--log` and `--format` with a stdin manifest). `check_for_target` refuses,
once the target is known, the settings only vector stores have.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runner.config.files import ConfigEntry, config_value, read_config
from runner.config.kinds import DEFAULT_API_KEY_ENV, STDIN, InvalidValue
from runner.config.options import COMMANDS, OPTIONS, OPTIONS_BY_NAME, Option
from runner.config.redact import is_key_not_path
from runner.errors import ConfigError, UsageError


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
    max_delete: int | None
    keep_files: bool
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


def _resolved_for(option: Option, command: str) -> bool:
    """`validate` checks everything `run` would use (but the key), flags or not."""
    return command in option.commands or (command == "validate" and "run" in option.commands)


def _resolve_one(option: Option, args: argparse.Namespace, environ: Mapping[str, str],
                 entries: Mapping[str, ConfigEntry], config: str | None) -> tuple[Any, str, str]:
    """(value, source, where) for one setting: flag > environment > config file > default."""
    given = getattr(args, option.name, None)
    if given is not None:
        if option.is_switch:
            return bool(given), "flag", option.flag
        try:
            return option.kind.parse(str(given)), "flag", option.flag
        except InvalidValue as exc:
            raise UsageError(f"{option.flag}: {exc}") from None
    text = environ.get(option.env, "") if option.env else ""
    if option.env and text.strip():
        try:
            return option.kind.parse(text), "env", option.env
        except InvalidValue as exc:
            raise UsageError(f"{option.env}: {exc}") from None
    entry = entries.get(option.name)
    if entry is not None and config is not None:
        where = f"{config}:{entry.line}: {option.name}"
        return config_value(option, entry, config), "config", where
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
    if is_key_not_path(manifest):
        raise UsageError("MANIFEST: the value looks like an API key, not a manifest path; give "
                         f"the manifest's path (the key goes in {DEFAULT_API_KEY_ENV})")
    config: str | None = None
    if getattr(args, "config", None) is not None:
        config, _, _ = _resolve_one(OPTIONS_BY_NAME["config"], args, environ, {}, None)
    entries = read_config(config) if config is not None else {}

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
