"""Settings: one table of options, resolved flag > environment > config file > default.

`OPTIONS` is the single source of truth: `add_options` builds the argparse flags from it,
`resolve_settings` reads flags, environment variables and the YAML config file through it, and
the README and config.example.yaml are checked against it. Every value is parsed by our code, so
a bad one becomes one line naming where it came from, what is wrong and what to do.

The API key is not a setting. `load_api_key` reads it from the environment variable or key file
the settings name, into an `ApiKey` whose repr and str never show it.

The modules, each importing only those above it:

    redact.py   key-shaped text and secret-asking names, kept out of messages
    kinds.py    `Kind`: the value parsers (numbers, seconds, choices, URLs, paths) and messages
    options.py  `Option` and the `OPTIONS` table; `add_options` builds the flags from it
    files.py    reading the YAML config file: shape, names, duplicates, relative paths
    resolve.py  `Settings`, `resolve_settings` (the precedence), `check_for_target`
    api_key.py  `ApiKey` and `load_api_key`: the env variable or a 0600 key file

May import: the core modules only (errors); never the manifest or the log, its siblings.
"""

from runner.config.api_key import MAX_KEY_FILE_BYTES, ApiKey, load_api_key
from runner.config.files import MAX_CONFIG_BYTES, UniqueKeyLoader
from runner.config.kinds import DEFAULT_API_KEY_ENV, DEFAULT_BASE_URL, STDIN, Kind
from runner.config.options import (
    COMMANDS,
    CONFIG_KEYS,
    DEFAULT_CONCURRENCY,
    FORMATS,
    OPTIONS,
    OPTIONS_BY_NAME,
    TARGETS,
    Option,
    add_options,
)
from runner.config.redact import hide_keys, is_secret_name
from runner.config.resolve import Settings, check_for_target, resolve_settings

__all__ = [
    "COMMANDS",
    "CONFIG_KEYS",
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONCURRENCY",
    "FORMATS",
    "MAX_CONFIG_BYTES",
    "MAX_KEY_FILE_BYTES",
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "STDIN",
    "TARGETS",
    "ApiKey",
    "Kind",
    "Option",
    "Settings",
    "UniqueKeyLoader",
    "add_options",
    "check_for_target",
    "hide_keys",
    "is_secret_name",
    "load_api_key",
    "resolve_settings",
]
