"""Fuzzing what users hand the runner, beyond the parsers' own property tests.

tests/manifest/test_manifest.py feeds manifests arbitrary bytes and tokens,
tests/config/test_config.py feeds the config loader YAML structures and text. Here: the config
loader gets arbitrary bytes and must name a line that exists; structured-but-wrong manifests
(JSONL objects, CSV rows, YAML trees) must be refused on exactly the lines that are wrong (or at
least on lines that exist); result logs get arbitrary bytes and arbitrary events (two crashes
were found this way); and the CLI gets arbitrary command lines. Nothing may raise anything but
our one-line errors.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.cli import build_parser
from runner.config import resolve_settings
from runner.errors import ConfigError, LogError, ManifestError, UsageError
from runner.items import is_valid_id
from runner.log.reader import read_log
from runner.manifest import ManifestSource, ManifestStats, check_manifest
from tests.cli import run_main

FUZZ = settings(deadline=None, max_examples=150,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
ASSISTANTS = ("assistant_id", "assistants")
ERROR_LINE = re.compile(r"^attach-runner: error: [^;]+?: [^;]+; \S.*$")
WHERE_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): ")


def line_count(data: bytes) -> int:
    """Lines as an editor shows them (a last line without a newline counts)."""
    return max(1, len(data.splitlines()))


def named_line(message: str, path: str) -> int | None:
    match = WHERE_LINE.match(message)
    assert match is None or match["path"] == path, message
    return int(match["line"]) if match else None


# ---------------------------------------------------------------------- the config file


def load_config(path: Path) -> ConfigError | None:
    args = build_parser().parse_args(["run", "m.csv", "--config", str(path)])
    try:
        resolve_settings(args, command="run", environ={})
    except ConfigError as error:
        return error
    except UsageError as error:  # pragma: no cover - the assertion explains it
        raise AssertionError(f"a config file gave a non-config error: {error}") from None
    return None


CONFIG_TOKENS = ["concurrency", "rpm", "timeout", "target", "log", "wait", "api_key", ":", " ",
                 "\n", "- ", "[", "]", "{", "}", "'", '"', "&a", "*a", "!!", "#", "\t", "0",
                 "-1", "1e9", "auto", "true", "yes", "~", "\x00", "\xff", "\xe9", "---\n", "? "]


@FUZZ
@given(data=st.binary(max_size=300)
       | st.lists(st.sampled_from(CONFIG_TOKENS), max_size=40).map(
           lambda parts: "".join(parts).encode("utf-8", "surrogateescape")))
def test_any_bytes_as_config_give_settings_or_a_line_that_exists(tmp_path: Path, data: bytes):
    """Arbitrary bytes as --config: Settings, or one ConfigError line naming a line the file
    has (only "too large" and "nested too deeply" speak of the whole file)."""
    path = tmp_path / "cfg.yaml"
    path.write_bytes(data)
    error = load_config(path)
    if error is None:
        return
    message = str(error)
    assert "\n" not in message
    assert "; " in message
    line = named_line(message, str(path))
    if line is None:
        assert "too large" in message or "nested too deeply" in message, message
    else:
        assert 1 <= line <= line_count(data), message


_wrong_values = (st.none() | st.booleans() | st.integers(-10**6, 10**9)
                 | st.floats(allow_nan=True) | st.text(max_size=12)
                 | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3),
                                                                         st.integers(), max_size=2))
_names = st.sampled_from(["concurrency", "rpm", "store_rpm", "max_attempts", "timeout",
                          "batch_size", "wait", "wait_timeout", "max_runtime", "target", "format",
                          "base_url", "org", "project", "api_key_env", "quiet", "json",
                          "concurency", "rpm_limit", "threads"])


@FUZZ
@given(entries=st.lists(st.tuples(_names, _wrong_values), min_size=1, max_size=6,
                        unique_by=lambda entry: entry[0]))
def test_a_wrong_setting_is_named_on_its_own_line(tmp_path: Path,
                                                  entries: list[tuple[str, Any]]):
    """A config file of `name: value` lines: an error names the line of the setting it is
    about, and that setting's name."""
    path = tmp_path / "cfg.yaml"
    lines = [f"{name}: {json.dumps(value)}" for name, value in entries]
    path.write_text("\n".join(lines) + "\n")
    error = load_config(path)
    if error is None:
        return
    message = str(error)
    line = named_line(message, str(path))
    assert line is not None, message
    name = entries[line - 1][0]
    assert name in message, (message, lines)


# ---------------------------------------------------------------------- manifests, structured

_ids = st.sampled_from(["asst_1", "asst_2", "file-1", "file-2", "x" * 128, "123"])
_not_ids = st.sampled_from(["", "a b", "x" * 129, "../x", "é", "a/b", "tab\there"])
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _ids | _not_ids,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["assistant_id", "file_id", "vector_store_id", "x"]), inner, max_size=3),
    max_leaves=6)
_jsonl_lines = st.one_of(
    st.fixed_dictionaries({"assistant_id": _ids | _not_ids, "file_id": _ids | _not_ids}),
    st.fixed_dictionaries({"assistant_id": _json_values, "file_id": _json_values}),
    _json_values)


def jsonl_line_is_good(value: Any) -> bool:
    # A line that names the other target's owner key too is refused, whatever its value
    # (null included): "a manifest is for one target: keep one of them".
    return (isinstance(value, dict) and "vector_store_id" not in value
            and all(isinstance(value.get(k), str) and is_valid_id(value[k])
                    for k in ("assistant_id", "file_id")))


def check(path: Path, fmt: str) -> ManifestStats | ManifestError:
    try:
        return check_manifest(ManifestSource("m", str(path), fmt), *ASSISTANTS)
    except ManifestError as error:
        return error


@FUZZ
@given(values=st.lists(_jsonl_lines, max_size=30))
def test_jsonl_refuses_exactly_the_wrong_lines(tmp_path: Path, values: list[Any]):
    """Objects, one a line: the problems are on exactly the lines that are not a valid pair
    (the first 20 of them), and all of them are counted."""
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(value) + "\n" for value in values))
    bad = [n for n, value in enumerate(values, 1) if not jsonl_line_is_good(value)]
    outcome = check(path, "jsonl")
    if not bad:
        assert isinstance(outcome, ManifestStats)
        assert outcome.rows == len(values)
        return
    assert isinstance(outcome, ManifestError)
    assert [p.line for p in outcome.problems] == bad[:20]
    assert outcome.total == len(bad)
    assert all("; " in p.message and "\n" not in str(p) for p in outcome.problems)


_cells = _ids | _not_ids.filter(lambda text: "," not in text) | st.just(" ")


@FUZZ
@given(header=st.permutations(["assistant_id", "file_id", "note"]),
       rows=st.lists(st.lists(_cells, max_size=5), max_size=25))
def test_csv_refuses_exactly_the_wrong_rows(tmp_path: Path, header: list[str],
                                            rows: list[list[str]]):
    """CSV rows of any length and any cell: the problems are on exactly the rows that have
    too few fields, extra non-empty ones, or a cell that is not an ID."""
    path = tmp_path / "m.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    owner_at, file_at = header.index("assistant_id"), header.index("file_id")

    def row_is_bad(row: list[str]) -> bool:
        if not any(cell.strip() for cell in row):
            return False  # a blank row is skipped
        if len(row) < 3 or any(cell.strip() for cell in row[3:]):
            return True
        return not (is_valid_id(row[owner_at].strip()) and is_valid_id(row[file_at].strip()))

    bad = [n for n, row in enumerate(rows, 2) if row_is_bad(row)]
    outcome = check(path, "csv")
    if not bad:
        assert isinstance(outcome, ManifestStats), outcome
        return
    assert isinstance(outcome, ManifestError)
    assert [p.line for p in outcome.problems] == bad[:20]
    assert outcome.total == len(bad)


_yaml_keys = st.sampled_from(["items", "assistants", "vector_stores", "assistant_id", "file_id",
                              "asst_1", "file-1", "x"])
_yaml_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | _ids | _not_ids,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_yaml_keys, inner, max_size=4),
    max_leaves=12)


@FUZZ
@given(tree=_yaml_trees, flow=st.booleans())
def test_yaml_trees_give_pairs_or_lines_that_exist(tmp_path: Path, tree: Any, flow: bool):
    """Any YAML tree (block or flow style): pairs, or problems on lines the file has."""
    path = tmp_path / "m.yaml"
    text = yaml.safe_dump(tree, default_flow_style=flow, allow_unicode=True)
    path.write_text(text)
    outcome = check(path, "yaml")
    if isinstance(outcome, ManifestStats):
        return
    for problem in outcome.problems:
        assert problem.line is not None
        assert 1 <= problem.line <= line_count(text.encode()), (problem, text)
        assert "; " in problem.message


# ---------------------------------------------------------------------- result logs

_event_names = st.sampled_from(["run-start", "run-end", "sent", "done", "batch-sent",
                                "batch-created", "upload-sent", "uploaded", "upload-failed",
                                "possible-duplicates", "file-delete-sent", "file-deleted",
                                "other"])
_log_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.sampled_from(["asst_1", "file-1", "vs_1", "attached", "failed", "already_attached",
                       "\ud800", "a\nb"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["code", "message", "type"]), inner, max_size=3),
    max_leaves=6)
# IDs are mostly strings (odd ones too), so events reach past the readers' type checks.
_log_ids = st.sampled_from(["asst_1", "file-1", "vs_1", "\ud800", "a\nb", ""]) | _log_values
_events = st.builds(
    lambda event, fields: {"event": event, "ts": "2026-01-01T00:00:00.000Z", "run": "r", **fields},
    _event_names,
    st.fixed_dictionaries({}, optional={
        "assistant_id": _log_ids, "vector_store_id": _log_ids, "file_id": _log_ids,
        "file_ids": st.lists(_log_ids, max_size=3) | _log_values,
        "outcome": st.sampled_from(["attached", "already_attached", "failed", "detached",
                                    "already_detached"]) | _log_values,
        "op": st.sampled_from(["attach", "detach", "detach-version"]) | _log_values,
        "path": st.sampled_from(["/d/a.md", "/d/b.md"]) | _log_values,
        "sha256": st.sampled_from(["a" * 64, "b" * 64]) | _log_values,
        "bytes": _log_values, "mtime_ns": _log_values, "hashed_ns": _log_values,
        "file_status": st.sampled_from(["failed", "completed"]) | _log_values,
        "status": _log_values, "error": st.dictionaries(
            st.sampled_from(["code", "message", "type"]), _log_values, max_size=3) | _log_values,
        "retryable": _log_values, "uncertain": _log_values, "batch_id": _log_ids,
        "exit": _log_values, "counts": _log_values}))


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_as_a_log_read_or_one_error_naming_a_line(tmp_path: Path, data: bytes):
    """Arbitrary bytes as a log: events, or one LogError naming a line the file has."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(data)
    try:
        list(read_log(str(path), warn=lambda message: None))
    except LogError as error:
        message = str(error)
        assert "\n" not in message
        line = named_line(message, str(path))
        assert line is not None
        assert 1 <= line <= line_count(data)


@FUZZ
@given(events=st.lists(_events, max_size=12),
       command=st.sampled_from([["status"], ["status", "--json"], ["failed"],
                                ["run", "--dry-run"]]))
def test_any_events_in_a_log_never_crash_the_readers(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     events: list[dict[str, Any]],
                                                     command: list[str]):
    """Lines that are events with any fields at all: status, failed and --dry-run answer
    (exit 0), or refuse in one line (exit 2); never an internal error."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # a report, if any, stays here
    ids = ["asst_1", "file-1", "vs_1"]  # every pair the events can name is in the manifest
    Path("m.csv").write_text("assistant_id,file_id\n" + "".join(
        f"{owner},{file_id}\n" for owner in ids for file_id in ids))
    Path("m.csv.results.jsonl").write_text(
        "".join(json.dumps(event) + "\n" for event in events))
    res = run_main([command[0], "m.csv", *command[1:]])
    assert res.code in (0, 2), res.err
    if res.code == 2:
        [line] = res.err.splitlines()
        assert ERROR_LINE.match(line), line


# ---------------------------------------------------------------------- command lines

_arg_tokens = st.sampled_from([
    "m.csv", "nope.csv", "-", "--format", "csv", "xml", "--log", "r.jsonl", "--target",
    "vector-store-files", "assistant", "--config", "cfg.yaml", "--concurrency", "0", "16", "-1",
    "--rpm", "auto", "1.5", "--timeout", "nan", "--batch-size", "5", "--wait", "--json",
    "--dry-run", "--retry-failed", "--quiet", "--base-url", "http://example.com", "ftp://x",
    "--org", "sk-proj-abcdefghijklmnop0123", "nope.yaml", "--api-key-env", "--api-key-file",
    "--concurency", "--insecure", "-k",
    "--api-key=sk-x", "", " ", "\n", "--", "=", "--json=1", "é"])


@FUZZ
@given(command=st.sampled_from(["run", "validate", "status", "failed"]),
       args=st.lists(_arg_tokens, max_size=8))
def test_any_command_line_is_answered_or_refused_in_one_line(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            command: str, args: list[str]):
    """Any mix of known and wrong flags and values: exit 0, or exit 2 with every line in the
    `where: what; what to do` shape; never an internal error. No key is set, so `run` can
    never reach the network (it needs one)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # a report, if any, stays here
    Path("m.csv").write_text("assistant_id,file_id\nasst_1,file-1\n")
    Path("cfg.yaml").write_text("concurrency: 4\n")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("assistant_id,file_id\nasst_1,file-1\n"))
    res = run_main([command, *args])
    err = res.err
    assert res.code in (0, 2), err
    lines = [line for line in err.splitlines() if not line.startswith("attach-runner: warning:")]
    if res.code == 0:
        assert lines == []
    else:
        assert len(lines) == 1, err
        assert ERROR_LINE.match(lines[0]), lines[0]
        assert "abcdefghijklmnop" not in err
        assert "sk-x" not in err
