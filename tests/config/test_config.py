"""Settings: precedence, sources, every error line, the config file, and the API key."""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.config import (
    COMMANDS,
    CONFIG_KEYS,
    OPTIONS,
    ApiKey,
    Settings,
    add_options,
    check_for_target,
    load_api_key,
    resolve_settings,
)
from runner.errors import ConfigError, UsageError

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-proj-Abc123SECRETsecret456XYZ789tail"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own directory, so messages name short relative paths."""
    monkeypatch.chdir(tmp_path)


def parse(argv: list[str], command: str = "run") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="attach-runner", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser(command)
    child.add_argument("manifest")
    add_options(child, command)
    return parser.parse_args([command, *argv])


def resolve(argv: list[str], *, command: str = "run",
            env: dict[str, str] | None = None) -> Settings:
    return resolve_settings(parse(argv, command), command=command, environ=env or {})


def write(name: str, text: str) -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


def config_error(text: str, *, command: str = "run", name: str = "cfg.yaml") -> str:
    write(name, text)
    with pytest.raises(ConfigError) as info:
        resolve(["m.csv", "--config", name], command=command)
    message = str(info.value)
    assert "\n" not in message
    return message


def usage_error(argv: list[str], *, command: str = "run", env: dict[str, str] | None = None) -> str:
    with pytest.raises(UsageError) as info:
        resolve(argv, command=command, env=env)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- defaults, table


def test_defaults_are_the_specs() -> None:
    """With no flag, variable or file, every setting has SPEC's default and source "default"."""
    s = resolve(["jobs/nightly.csv"])
    assert (s.command, s.manifest, s.config) == ("run", "jobs/nightly.csv", None)
    assert s.target is None  # from the manifest
    assert s.format is None
    assert s.log == "jobs/nightly.csv.results.jsonl"
    assert s.base_url == "https://api.openai.com/v1"
    assert (s.org, s.project, s.api_key_file) == (None, None, None)
    assert s.api_key_env == "OPENAI_API_KEY"
    assert (s.concurrency, s.rpm, s.store_rpm, s.max_attempts) == (256, None, 300, 6)
    assert (s.timeout, s.batch_size, s.wait, s.wait_timeout) == (60.0, 0, False, 900.0)
    assert s.max_runtime is None
    flags = (s.retry_failed, s.dry_run, s.json, s.quiet, s.no_progress, s.debug)
    assert flags == (False,) * 6
    assert (s.backoff_initial, s.backoff_max) == (0.5, 30.0)
    assert set(s.sources.values()) == {"default"}
    assert set(s.sources) == {o.name for o in OPTIONS}


def test_every_option_has_its_flag_and_config_key() -> None:
    """Each flag is the config key with `_` -> `-`; names are unique; only config is file-less."""
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    for option in OPTIONS:
        assert option.flag[2:].replace("-", "_") == option.name
        assert option.help
    assert set(names) - set(CONFIG_KEYS) == {"config"}
    assert set(names) | {"command", "manifest", "sources", "wheres"} == set(
        Settings.__dataclass_fields__)


def test_readers_take_only_their_flags() -> None:
    """validate, failed take config/target/format/log; status adds --json; run takes all."""
    for command in ("validate", "failed"):
        taken = {o.name for o in OPTIONS if command in o.commands}
        assert taken == {"config", "target", "format", "log"}
    assert {o.name for o in OPTIONS if "status" in o.commands} == {
        "config", "target", "format", "log", "json"}
    assert all("run" in o.commands for o in OPTIONS if o.name != "max_delete")
    assert {o.name for o in OPTIONS if o.commands == {"sync"}} == {"max_delete"}
    with pytest.raises(SystemExit):
        parse(["m.csv", "--concurrency", "4"], "status")


def test_flags_are_not_abbreviated() -> None:
    """`--retry` is not taken for `--retry-failed` (add_options turns prefix matching off)."""
    with pytest.raises(SystemExit):
        parse(["m.csv", "--retry"])


# ----------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("option", "flag", "env", "file_key", "values"),
    [
        ("base_url", "--base-url", "OPENAI_BASE_URL", "base_url",
         ("https://flag.example/v1", "https://env.example/v1", "https://file.example/v1")),
        ("org", "--org", "OPENAI_ORG_ID", "org", ("org-flag", "org-env", "org-file")),
        ("project", "--project", "OPENAI_PROJECT_ID", "project",
         ("proj_flag", "proj_env", "proj_file")),
    ],
)
def test_flag_beats_env_beats_file_beats_default(
    option: str, flag: str, env: str, file_key: str, values: tuple[str, str, str]
) -> None:
    """Each source wins over the ones below it, and `sources` names the winner."""
    by_flag, by_env, by_file = values
    write("cfg.yaml", f"{file_key}: {by_file}\n")
    cases: list[tuple[list[str], dict[str, str], str, str]] = [
        (["--config", "cfg.yaml", flag, by_flag], {env: by_env}, by_flag, "flag"),
        (["--config", "cfg.yaml"], {env: by_env}, by_env, "env"),
        (["--config", "cfg.yaml"], {}, by_file, "config"),
    ]
    for argv, environ, expected, source in cases:
        s = resolve(["m.csv", *argv], env=environ)
        assert (getattr(s, option), s.sources[option]) == (expected, source)
    s = resolve(["m.csv"])
    assert s.sources[option] == "default"


def test_flag_beats_file_for_every_kind() -> None:
    """Numbers, rpm, switches and choices: a flag beats the file, the file beats the default."""
    write("cfg.yaml", "concurrency: 4\nrpm: 120\ntimeout: 1e3\nquiet: true\n"
                      "target: vector-store-files\nbatch_size: 100\nwait: true\n")
    s = resolve(["m.csv", "--config", "cfg.yaml"])
    assert (s.concurrency, s.rpm, s.timeout, s.quiet) == (4, 120, 1000.0, True)
    assert (s.target, s.batch_size, s.wait) == ("vector-store-files", 100, True)
    assert s.sources["concurrency"] == "config"
    assert s.sources["max_attempts"] == "default"
    s = resolve(["m.csv", "--config", "cfg.yaml", "--concurrency", "8", "--rpm", "auto",
                 "--timeout", "2.5", "--no-quiet", "--no-wait", "--batch-size", "0"])
    assert (s.concurrency, s.rpm, s.timeout, s.quiet, s.wait) == (8, None, 2.5, False, False)
    assert s.sources["quiet"] == s.sources["rpm"] == s.sources["wait"] == "flag"


def test_progress_flag_undoes_a_files_no_progress() -> None:
    """`--progress` is the off switch of `no_progress: true` in the file."""
    write("cfg.yaml", "no_progress: true\n")
    assert resolve(["m.csv", "--config", "cfg.yaml"]).no_progress is True
    s = resolve(["m.csv", "--config", "cfg.yaml", "--progress"])
    assert (s.no_progress, s.sources["no_progress"]) == (False, "flag")


def test_empty_env_var_counts_as_unset() -> None:
    """OPENAI_BASE_URL="" falls through to the file."""
    write("cfg.yaml", "base_url: https://file.example/v1\n")
    s = resolve(["m.csv", "--config", "cfg.yaml"], env={"OPENAI_BASE_URL": ""})
    assert (s.base_url, s.sources["base_url"]) == ("https://file.example/v1", "config")


def test_only_the_named_env_vars_are_read() -> None:
    """No other setting reads the environment (OPENAI_CONCURRENCY is nothing)."""
    s = resolve(["m.csv"], env={"OPENAI_CONCURRENCY": "3", "CONCURRENCY": "3"})
    assert s.concurrency == 256


# ----------------------------------------------------------------------------- flag, env errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--concurrency", "abc"], '--concurrency: "abc" is not a whole number; give 1 to 1024'),
        (["--concurrency", "0"], "--concurrency: 0 is out of range; give 1 to 1024"),
        (["--concurrency", "1025"], "--concurrency: 1025 is out of range; give 1 to 1024"),
        (["--concurrency", "1.5"], '--concurrency: "1.5" is not a whole number; give 1 to 1024'),
        (["--max-attempts", "-1"], "--max-attempts: -1 is out of range; give 1 to 100"),
        (["--max-attempts", "9" * 40],
         f'--max-attempts: "{"9" * 20}..." is out of range; give 1 to 100'),
        (["--rpm", "fast"],
         '--rpm: "fast" is not a whole number or auto; give auto or 1 to 1000000'),
        (["--rpm", "0"], "--rpm: 0 is out of range; give auto or 1 to 1000000"),
        (["--store-rpm", "0"], "--store-rpm: 0 is out of range; give 1 to 1000000"),
        (["--batch-size", "2001", "--target", "vector-store-files"],
         "--batch-size: 2001 is out of range; give 0 to 2000"),
        (["--timeout", "0"],
         "--timeout: 0 is out of range; give a number of seconds above 0 and at most 3600"),
        (["--timeout", "nan"],
         '--timeout: "nan" is not a number of seconds; give a number above 0 and at most 3600'),
        (["--timeout", "1e999"],
         '--timeout: 1e999 is out of range; give a number of seconds above 0 and at most 3600'),
        (["--wait-timeout", "-5"], "--wait-timeout: -5 is out of range; give a number of "
                                   "seconds above 0 and at most 604800"),
        (["--max-runtime", "soon"], '--max-runtime: "soon" is not a number of seconds; give a '
                                    "number above 0 and at most 2.592e+06"),
        (["--backoff-max", "-1"],
         '--backoff-max: -1 is out of range; give a number of seconds from 0 to 3600'),
        (["--target", "assistant-file"],
         '--target: unknown target "assistant-file"; did you mean "assistant-files"?'),
        (["--target", "x"],
         '--target: unknown target "x"; give assistant-files or vector-store-files'),
        (["--format", "yml"], '--format: unknown format "yml"; did you mean "yaml"?'),
        (["--format", "xml"], '--format: unknown format "xml"; give csv, yaml or jsonl'),
        (["--base-url", "notaurl"],
         '--base-url: "notaurl" is not a URL; give e.g. https://api.openai.com/v1'),
        (["--base-url", "ftp://example.com"],
         '--base-url: "ftp://example.com" is not a URL; give e.g. https://api.openai.com/v1'),
        (["--base-url", "https://example.com/v1?x=1"],
         '--base-url: "https://example.com/v1?x=1" has a query or fragment; give the API root '
         "only, e.g. https://api.openai.com/v1"),
        (["--base-url", "https://u:p@example.com"], "--base-url: the URL holds a user name or "
                                                   "password; remove it (give e.g. "
                                                   "https://api.openai.com/v1)"),
        (["--org", "org abc"], '--org: "org abc" is not an organization ID; it may hold no '
                               "spaces, control or non-ASCII characters (e.g. org-abc123)"),
        (["--api-key-env", "MY-KEY"], "--api-key-env: not a variable name; give the NAME of the "
                                      "variable that holds the key (e.g. OPENAI_API_KEY), not "
                                      "the key itself"),
        (["--log", "-"], '--log: "-" cannot be used here (the log is read back to resume); '
                         "give a file path"),
        (["--config", ""], "--config: empty or not a path; give a file path"),
    ],
)
def test_bad_flag_is_one_line(argv: list[str], message: str) -> None:
    """A bad flag value is a UsageError naming the flag, the value and what to give."""
    assert usage_error(["m.csv", *argv]) == message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENAI_BASE_URL": "notaurl"},
         'OPENAI_BASE_URL: "notaurl" is not a URL; give e.g. https://api.openai.com/v1'),
        ({"OPENAI_BASE_URL": "http://example.com/v1"},
         "OPENAI_BASE_URL: plain http is allowed only to a loopback host (127.0.0.1, ::1, "
         "localhost); use https://example.com/v1"),
        ({"OPENAI_PROJECT_ID": "proj\u00e9"}, 'OPENAI_PROJECT_ID: "proj\\u00e9" is not a project '
                                              "ID; it may hold no spaces, control or non-ASCII "
                                              "characters (e.g. proj_abc123)"),
    ],
)
def test_bad_env_value_is_one_line(env: dict[str, str], message: str) -> None:
    """A bad environment value is a UsageError naming the variable."""
    assert usage_error(["m.csv"], env=env) == message


def test_key_shaped_value_is_never_echoed() -> None:
    """A key pasted into --api-key-env or --org does not reach the message."""
    for argv in (["--api-key-env", KEY], ["--org", KEY + " x"], ["--concurrency", KEY]):
        message = usage_error(["m.csv", *argv])
        assert KEY not in message
        assert "Abc123" not in message


# ----------------------------------------------------------------------------- https rule


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:8080/v1", "http://localhost:8080/v1"),
        ("http://LOCALHOST/v1/", "http://LOCALHOST/v1"),
        ("http://127.0.0.5:9/v1", "http://127.0.0.5:9/v1"),
        ("http://[::1]:8080/v1/", "http://[::1]:8080/v1"),
        ("https://example.com/v1/", "https://example.com/v1"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    ],
)
def test_https_or_loopback_is_accepted(url: str, expected: str) -> None:
    """https anywhere, plain http only to loopback; a trailing slash is stripped."""
    assert resolve(["m.csv", "--base-url", url]).base_url == expected


@pytest.mark.parametrize(
    "url", ["http://example.com", "http://10.0.0.1/v1", "http://[::2]/v1", "http://127.1/v1"]
)
def test_plain_http_elsewhere_is_refused(url: str) -> None:
    """Plain http to a host that is not loopback is refused, naming the https URL to use."""
    secure = "https://" + url.split("://", 1)[1]
    assert usage_error(["m.csv", "--base-url", url]) == (
        "--base-url: plain http is allowed only to a loopback host (127.0.0.1, ::1, localhost); "
        f"use {secure}")


def test_plain_http_in_config_names_file_and_line() -> None:
    """The https rule names the config file, its line and the key."""
    assert config_error("concurrency: 2\nbase_url: http://example.com/v1/\n") == (
        "cfg.yaml:2: base_url: plain http is allowed only to a loopback host (127.0.0.1, ::1, "
        "localhost); use https://example.com/v1")


# ----------------------------------------------------------------------------- config file


def test_empty_config_file_sets_nothing() -> None:
    """An empty (or comments-only) config file is fine: everything stays default."""
    for text in ("", "# nothing here\n", "---\n"):
        write("cfg.yaml", text)
        s = resolve(["m.csv", "--config", "cfg.yaml"])
        assert s.config == "cfg.yaml"
        assert s.sources["config"] == "flag"
        assert {v for k, v in s.sources.items() if k != "config"} == {"default"}


def test_example_config_has_every_key_and_loads_to_defaults() -> None:
    """config.example.yaml holds exactly the config keys, in order, with their defaults."""
    path = REPO / "config.example.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert list(data) == list(CONFIG_KEYS)
    s = resolve(["m.csv", "--config", str(path)])
    defaults = resolve(["m.csv"])
    for option in OPTIONS:
        if option.name != "config":
            assert getattr(s, option.name) == getattr(defaults, option.name), option.name


def test_unknown_key_suggests_the_closest() -> None:
    """A typo names the line and the closest known setting."""
    assert config_error("timeout: 5\nrpm: 60\nconcurency: 4\n") == (
        'cfg.yaml:3: unknown setting "concurency"; did you mean "concurrency"?')
    assert config_error("max-attempts: 3\n") == (
        'cfg.yaml:1: unknown setting "max-attempts"; did you mean "max_attempts"?')


def test_unknown_key_without_a_close_one_lists_the_settings() -> None:
    """A key like nothing known lists the settings a file may hold."""
    message = config_error("zzz: 1\n")
    assert message.startswith('cfg.yaml:1: unknown setting "zzz"; the settings are target, ')
    assert message.endswith("backoff_initial, backoff_max")


@pytest.mark.parametrize(
    "key", ["api_key", "openai_api_key", "key", "token", "OPENAI_API_KEY", "api-key",
            "client_secret", "access_token", "apikey"],
)
def test_secret_in_config_is_refused_without_echo(key: str) -> None:
    """A key named like a secret is refused, and its value never appears in the message."""
    message = config_error(f"concurrency: 4\n{key}: {KEY}\n")
    assert message == (
        "cfg.yaml:2: an API key does not belong in a config file; put it in the OPENAI_API_KEY "
        "environment variable (or use --api-key-file)")
    assert KEY not in message


def test_secret_is_refused_for_every_command() -> None:
    """status, failed and validate refuse a key in the file too."""
    for command in COMMANDS:
        message = config_error(f"api_key: {KEY}\n", command=command)
        assert message.startswith("cfg.yaml:1: an API key does not belong in a config file")


def test_secret_is_refused_before_a_later_value_error() -> None:
    """A pasted key is named first, even when another line is also wrong."""
    message = config_error(f"concurrency: 0\napi_key: {KEY}\n")
    assert message.startswith("cfg.yaml:2: an API key does not belong")


def test_api_key_env_and_file_are_settings_not_secrets(tmp_path: Path) -> None:
    """api_key_env and api_key_file are allowed; a relative key file is taken from the file's
    directory."""
    (tmp_path / "etc").mkdir()
    write("etc/cfg.yaml", "api_key_env: MY_KEY\napi_key_file: key.txt\nlog: out/r.jsonl\n")
    s = resolve(["m.csv", "--config", "etc/cfg.yaml"])
    assert (s.api_key_env, s.api_key_file, s.log) == ("MY_KEY", "etc/key.txt", "etc/out/r.jsonl")
    s = resolve(["m.csv", "--config", "etc/cfg.yaml", "--log", "here.jsonl"])
    assert s.log == "here.jsonl"


def test_config_cannot_name_a_config() -> None:
    """`config:` in a config file says to pass --config on the command line."""
    assert config_error("config: other.yaml\n") == (
        'cfg.yaml:1: "config" cannot be set in a config file; pass --config FILE on the command '
        "line")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('concurrency: "16"\n',
         'cfg.yaml:1: concurrency: got text "16" in quotes; give 1 to 1024 without quotes'),
        ("concurrency: abc\n",
         'cfg.yaml:1: concurrency: "abc" is not a whole number; give 1 to 1024'),
        ("concurrency: 0\n", "cfg.yaml:1: concurrency: 0 is out of range; give 1 to 1024"),
        ("concurrency: -3\n", "cfg.yaml:1: concurrency: -3 is out of range; give 1 to 1024"),
        ("concurrency: 0x10\n",
         'cfg.yaml:1: concurrency: "0x10" is not a whole number; give 1 to 1024'),
        ("concurrency: [1, 2]\n", "cfg.yaml:1: concurrency: got a list; give 1 to 1024"),
        ("timeout:\n  a: 1\n", "cfg.yaml:2: timeout: got a mapping; give a number of seconds "
                               "above 0 and at most 3600"),
        ("concurrency:\n", "cfg.yaml:1: concurrency: empty; give 1 to 1024 (or remove the line "
                           "for the default, 256)"),
        ("wait: yes\n", 'cfg.yaml:1: wait: "yes" is not true or false; give true or false'),
        ("wait: 1\n", 'cfg.yaml:1: wait: "1" is not true or false; give true or false'),
        ("wait: 'true'\n",
         'cfg.yaml:1: wait: got text "true" in quotes; give true or false without quotes'),
        ("target: assistant\n",
         'cfg.yaml:1: target: unknown target "assistant"; did you mean "assistant-files"?'),
        ("rpm: 0\n", "cfg.yaml:1: rpm: 0 is out of range; give auto or 1 to 1000000"),
        ("log: '-'\n", 'cfg.yaml:1: log: "-" cannot be used here (the log is read back to '
                       "resume); give a file path"),
        ("log: 2024-13-45\n", "cfg.yaml:1: log: the value is not valid for its YAML type; put "
                              "it in quotes if it is text"),
    ],
)
def test_bad_config_value_is_one_line(text: str, message: str) -> None:
    """A wrong type or range names file, line, key, what is wrong and what to give."""
    assert config_error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurrency: 4\nrpm: [1\n", "cfg.yaml:2: not valid YAML (expected ',' or ']', but got "
                                      "'<stream end>'); fix the file (see config.example.yaml)"),
        ("a: 1\n\tb: 2\n", "cfg.yaml:2: not valid YAML (found character '\\t' that cannot start "
                           "any token); fix the file (see config.example.yaml)"),
        ("rpm: 1\nrpm: 2\n", 'cfg.yaml:2: "rpm" is set twice (first on line 1); keep one'),
        ("timeout: {a: 1, a: 2}\n", 'cfg.yaml:1: not valid YAML (found key "a" twice (first on '
                                    "line 1)); fix the file (see config.example.yaml)"),
        ("- concurrency: 4\n", "cfg.yaml:1: the config file is a list, not a mapping of "
                               "settings; write one `setting: value` a line (see "
                               "config.example.yaml)"),
        ("just words\n", "cfg.yaml:1: the config file is a single value, not a mapping of "
                         "settings; write one `setting: value` a line (see config.example.yaml)"),
        ("a: 1\n---\nb: 2\n", "cfg.yaml:2: not valid YAML (but found another document); fix "
                              "the file (see config.example.yaml)"),
        ("log: !!python/object:os.system 1\n", "cfg.yaml:1: not valid YAML (could not "
                                               "determine a constructor for the tag "
                                               "'tag:yaml.org,2002:python/object:os.system'); "
                                               "fix the file (see config.example.yaml)"),
        ("timeout: 5\nrpm: 1\x07\n", "cfg.yaml:2: a character YAML does not allow (#x0007); "
                                     "remove it"),
        ("? [a, b]\n: 1\n", "cfg.yaml:1: a setting name must be a plain word (no merge keys, "
                            "lists or mappings); see config.example.yaml"),
    ],
)
def test_bad_config_shape_is_one_line(text: str, message: str) -> None:
    """Bad YAML, a repeated key and a document that is not a mapping name file and line."""
    assert config_error(text) == message


def test_config_file_not_utf8_names_the_line() -> None:
    """Bytes that are not UTF-8 name the line they are on."""
    Path("cfg.yaml").write_bytes(b"timeout: 5\norg: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        resolve(["m.csv", "--config", "cfg.yaml"])
    assert str(info.value) == "cfg.yaml:2: not UTF-8 text; save the config file as UTF-8"


def test_missing_config_file_or_directory(tmp_path: Path) -> None:
    """A missing file and a directory each get one line saying what to do."""
    assert usage_error(["m.csv", "--config", "nope.yaml"]) == (
        "nope.yaml: no such config file; check the path given to --config")
    (tmp_path / "d").mkdir()
    assert usage_error(["m.csv", "--config", "d"]) == (
        "d: is a directory; give --config the path of a YAML file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_config_file() -> None:
    """A config file we may not read is named, with what to check."""
    write("cfg.yaml", "rpm: 5\n")
    os.chmod("cfg.yaml", 0)
    assert usage_error(["m.csv", "--config", "cfg.yaml"]) == (
        "cfg.yaml: cannot read the config file (permission denied); check its permissions")


def test_config_errors_are_config_errors_with_exit_2() -> None:
    """Config file problems raise ConfigError (a UsageError: exit 2)."""
    write("cfg.yaml", "rpm: 0\n")
    with pytest.raises(ConfigError) as info:
        resolve(["m.csv", "--config", "cfg.yaml"])
    assert info.value.exit_code == 2


# ----------------------------------------------------------------------------- other commands


@pytest.mark.parametrize("command", ["status", "failed"])
def test_readers_ignore_run_only_values(command: str) -> None:
    """status and failed accept run-only keys (even broken values) and take the shared ones."""
    write("cfg.yaml", "concurrency: 0\nbase_url: http://example.com\nlog: r.jsonl\n"
                      "target: vector-store-files\n")
    s = resolve(["m.csv", "--config", "cfg.yaml"], command=command,
                env={"OPENAI_BASE_URL": "notaurl"})
    assert (s.log, s.target, s.concurrency) == ("r.jsonl", "vector-store-files", 256)
    assert s.sources["concurrency"] == "default"


def test_readers_still_refuse_unknown_keys() -> None:
    """A typo is a typo for status too: the same file serves every command."""
    assert config_error("concurency: 4\n", command="status") == (
        'cfg.yaml:1: unknown setting "concurency"; did you mean "concurrency"?')


def test_validate_checks_everything_run_would() -> None:
    """validate checks run-only values in the file and the environment, without a key."""
    assert config_error("concurrency: 0\n", command="validate") == (
        "cfg.yaml:1: concurrency: 0 is out of range; give 1 to 1024")
    assert usage_error(["m.csv"], command="validate", env={"OPENAI_BASE_URL": "x"}) == (
        'OPENAI_BASE_URL: "x" is not a URL; give e.g. https://api.openai.com/v1')
    write("cfg.yaml", "concurrency: 3\n")
    s = resolve(["m.csv", "--config", "cfg.yaml"], command="validate")
    assert (s.concurrency, s.sources["concurrency"]) == (3, "config")


def test_status_json_flag() -> None:
    """status takes --json."""
    assert resolve(["m.csv", "--json"], command="status").json is True


def test_stdin_manifest_needs_log_and_format() -> None:
    """`-` as the manifest needs --log and --format (from any source)."""
    assert usage_error(["-"]) == (
        '--log: required when the manifest is "-" (stdin); give --log FILE for the result log')
    assert usage_error(["-", "--log", "r.jsonl"]) == (
        '--format: required when the manifest is "-" (stdin); give --format csv, yaml or jsonl')
    s = resolve(["-", "--log", "r.jsonl", "--format", "jsonl"], command="failed")
    assert (s.manifest, s.log, s.format) == ("-", "r.jsonl", "jsonl")


def test_wait_needs_vector_stores() -> None:
    """--wait with assistant files is refused once the target is known; with vector stores it
    is taken. The target may come from the manifest (no --target), so the check waits for it."""
    s = resolve(["m.csv", "--wait"])
    with pytest.raises(UsageError) as info:
        check_for_target(s, "assistant-files")
    assert str(info.value) == (
        "--wait: waiting for processing applies only to vector stores; remove it or attach to "
        "vector stores (a vector_store_id manifest)")
    with pytest.raises(UsageError) as info:
        check_for_target(resolve(["m.csv", "--wait", "--target", "assistant-files"]),
                         "assistant-files")
    assert str(info.value).endswith("remove it or give --target vector-store-files")
    s = resolve(["m.csv", "--wait", "--target", "vector-store-files", "--wait-timeout", "30"])
    check_for_target(s, "vector-store-files")
    assert (s.wait, s.wait_timeout) == (True, 30.0)


def test_batches_for_assistants_name_the_config_line() -> None:
    """batch_size from a config file, on a manifest of assistants: the file and line are named
    (a ConfigError), as they were when the target was a setting."""
    write("cfg.yaml", "rpm: 60\nbatch_size: 10\n")
    s = resolve(["m.csv", "--config", "cfg.yaml"])
    with pytest.raises(ConfigError) as info:
        check_for_target(s, "assistant-files")
    assert str(info.value) == (
        "cfg.yaml:2: batch_size: batches exist only for vector stores; remove it or attach to "
        "vector stores (a vector_store_id manifest)")
    check_for_target(s, "vector-store-files")  # taken there
    check_for_target(resolve(["m.csv", "--config", "cfg.yaml"], command="status"),
                     "assistant-files")  # status does not use it


# ----------------------------------------------------------------------------- the API key


def key_file(text: str, mode: int, name: str = "key.txt") -> str:
    write(name, text)
    os.chmod(name, mode)
    return name


def test_key_from_environment() -> None:
    """The key comes from OPENAI_API_KEY, stripped, and says where it came from."""
    key = load_api_key(resolve(["m.csv"]), {"OPENAI_API_KEY": f" {KEY}\n"})
    assert key.reveal() == KEY
    assert key.source == "the OPENAI_API_KEY environment variable"
    assert key.last4 == "tail"


def test_key_from_a_named_variable() -> None:
    """--api-key-env names another variable."""
    key = load_api_key(resolve(["m.csv", "--api-key-env", "NIGHTLY_KEY"]), {"NIGHTLY_KEY": KEY})
    assert (key.reveal(), key.source) == (KEY, "the NIGHTLY_KEY environment variable")


@pytest.mark.parametrize("environ", [{}, {"OPENAI_API_KEY": ""}, {"OPENAI_API_KEY": "  \n"}])
def test_missing_key_says_what_to_do(environ: dict[str, str]) -> None:
    """An unset or empty variable is one UsageError line."""
    with pytest.raises(UsageError) as info:
        load_api_key(resolve(["m.csv"]), environ)
    assert str(info.value) == (
        "OPENAI_API_KEY: not set; export your API key in it (or pass --api-key-env NAME or "
        "--api-key-file FILE)")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (KEY + " extra", "OPENAI_API_KEY: the key has a space or line break inside; set "
                         "OPENAI_API_KEY to the key alone"),
        (KEY + "\nmore", "OPENAI_API_KEY: the key has a space or line break inside; set "
                         "OPENAI_API_KEY to the key alone"),
        (KEY + "\u00e9", "OPENAI_API_KEY: the key holds non-ASCII or control characters, which "
                         "cannot go in an HTTP header; set OPENAI_API_KEY to the key alone"),
    ],
)
def test_malformed_env_key_is_refused_unseen(value: str, message: str) -> None:
    """A key that would break the header is refused, and not shown."""
    with pytest.raises(UsageError) as info:
        load_api_key(resolve(["m.csv"]), {"OPENAI_API_KEY": value})
    assert str(info.value) == message
    assert KEY not in str(info.value)


def test_key_file_0600_is_read() -> None:
    """A 0600 key file is read and stripped; it beats the variable."""
    path = key_file(KEY + "\n", 0o600)
    key = load_api_key(resolve(["m.csv", "--api-key-file", path]), {"OPENAI_API_KEY": "sk-other"})
    assert (key.reveal(), key.source) == (KEY, "the key file key.txt")
    assert load_api_key(resolve(["m.csv", "--api-key-file", key_file(KEY, 0o400, "k2")]),
                        {}).reveal() == KEY


@pytest.mark.parametrize(
    ("mode", "how"), [(0o644, "readable by others"), (0o640, "readable by others"),
                      (0o604, "readable by others"), (0o620, "open to others")],
)
def test_key_file_open_to_others_is_refused(mode: int, how: str) -> None:
    """A key file with any group or other bit is refused, saying how to fix it."""
    path = key_file(KEY, mode)
    with pytest.raises(UsageError) as info:
        load_api_key(resolve(["m.csv", "--api-key-file", path]), {})
    assert str(info.value) == (
        f"key.txt: the key file is {how} (mode {mode:04o}); run chmod 600 key.txt")
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "key.txt: the key file is empty; put your API key in it"),
        ("  \n\n", "key.txt: the key file is empty; put your API key in it"),
        (f"{KEY}\n{KEY}\n", "key.txt: the key has a space or line break inside; put only the key "
                            "in the file"),
        (f"OPENAI_API_KEY={KEY} x", "key.txt: the key has a space or line break inside; put only "
                                    "the key in the file"),
        (f"{KEY}\u2603", "key.txt: the key holds non-ASCII or control characters, which cannot "
                         "go in an HTTP header; put only the key in the file"),
    ],
)
def test_bad_key_file_content_is_refused_unseen(text: str, message: str) -> None:
    """An empty file or one holding more than the key is refused; the key is never shown."""
    path = key_file(text, 0o600)
    with pytest.raises(UsageError) as info:
        load_api_key(resolve(["m.csv", "--api-key-file", path]), {})
    assert str(info.value) == message
    assert KEY not in str(info.value)


def test_key_file_missing_or_not_a_file(tmp_path: Path) -> None:
    """A missing key file, a directory, and a key passed where a path belongs."""
    def refused(path: str) -> str:
        with pytest.raises(UsageError) as info:
            load_api_key(resolve(["m.csv", "--api-key-file", path]), {})
        return str(info.value)

    assert refused("none.txt") == "none.txt: no such key file; check --api-key-file"
    (tmp_path / "dir").mkdir(mode=0o700)
    assert refused("dir") == "dir: not a regular file; give --api-key-file a file holding the key"
    message = refused(KEY)
    assert message == ("--api-key-file: the value looks like an API key, not a file path; put "
                       "the key in a file (chmod 600) and give its path")


def test_key_file_from_config_names_the_config() -> None:
    """A key file named by the config file points the user there."""
    write("cfg.yaml", "api_key_file: gone.txt\n")
    with pytest.raises(UsageError) as info:
        load_api_key(resolve(["m.csv", "--config", "cfg.yaml"]), {})
    assert str(info.value) == "gone.txt: no such key file; check api_key_file in cfg.yaml"


def test_api_key_never_shows_itself() -> None:
    """repr, str and format show at most the last four characters."""
    key = ApiKey(KEY, "the OPENAI_API_KEY environment variable")
    for text in (repr(key), str(key), f"{key}", f"{key!r}", repr([key]), repr({"k": key})):
        assert KEY not in text
        assert "SECRET" not in text
    assert repr(key) == "ApiKey(last4='tail', source='the OPENAI_API_KEY environment variable')"
    assert str(key) == "the API key ...tail from the OPENAI_API_KEY environment variable"
    assert ApiKey("sk-sandbox", "x").last4 == "****"
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_settings_hold_no_key() -> None:
    """Settings has no key field; its repr holds nothing from the environment's key."""
    s = resolve(["m.csv"], env={"OPENAI_API_KEY": KEY})
    assert KEY not in repr(s)
    assert not any("key" in name and name not in ("api_key_env", "api_key_file")
                   for name in Settings.__dataclass_fields__)


# ----------------------------------------------------------------------------- hypothesis

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from([*CONFIG_KEYS, "config", "api_key", "concurency"]) | st.text(max_size=12)


def _only_config_errors(path: Path, command: str) -> None:
    error: UsageError | None = None
    try:
        resolve(["m.csv", "--config", str(path)], command=command)
    except UsageError as exc:  # anything else propagates and fails the test
        error = exc
    if error is not None:
        assert type(error) is ConfigError, str(error)
        assert "\n" not in str(error)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.dictionaries(_keys, _values, max_size=5) | _values,
       command=st.sampled_from(COMMANDS))
def test_any_yaml_structure_gives_settings_or_one_config_error(
    tmp_path_factory: pytest.TempPathFactory, document: Any, command: str
) -> None:
    """Any YAML-able structure as a config file yields Settings or one ConfigError line."""
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    _only_config_errors(path, command)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=80))
def test_any_text_as_config_gives_settings_or_one_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    """Any text at all as a config file yields Settings or one ConfigError line."""
    path = tmp_path_factory.getbasetemp() / "fuzz.txt"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _only_config_errors(path, "validate")
