"""Manifests: every format and shape read from real files, every bad row named by line."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import ManifestError, UsageError
from runner.items import ID_RULE, Item
from runner.manifest import (
    FORMATS,
    ManifestSource,
    ManifestStats,
    check_manifest,
    iter_items,
    open_manifest,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "manifests"
ASSISTANTS = ("assistant_id", "assistants")
VECTOR_STORES = ("vector_store_id", "vector_stores")
JSONL_TODO = 'write one object a line, like {"assistant_id": "asst_abc", "file_id": "file-1"}'
PROPERTY_SETTINGS = settings(
    deadline=None, max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def source(name: str, fmt: str | None = None) -> ManifestSource:
    """A manifest from tests/data/manifests, named as a user would give it."""
    return open_manifest(str(DATA / name), fmt)


def pairs(src: ManifestSource, target: tuple[str, str] = ASSISTANTS) -> list[tuple[str, str, int]]:
    return [(i.owner, i.file_id, i.line) for i in iter_items(src, *target)]


def problems(src: ManifestSource, target: tuple[str, str] = ASSISTANTS) -> list[str]:
    """The message lines of a manifest that must fail, without the path prefix."""
    with pytest.raises(ManifestError) as caught:
        check_manifest(src, *target)
    prefix = f"{src.display}:"
    lines = caught.value.lines()
    assert all(line.startswith(prefix) or line.startswith("and ") for line in lines)
    return [line.removeprefix(prefix) for line in lines]


def write(path: Path, data: bytes | str) -> ManifestSource:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return open_manifest(str(path), None)


# ---------------------------------------------------------------- good manifests


def test_csv_bom_crlf_quotes_blank_rows_and_column_order() -> None:
    """CSV: BOM, CRLF, quoted commas and newlines, padding, blank rows; lines are physical."""
    assert pairs(source("good.csv")) == [
        ("asst_one", "file-a1", 2),
        ("asst_one", "file-a2", 4),
        ("asst_two", "file-b1", 6),
        ("asst_one", "file-a1", 8),
    ]


def test_jsonl_items_with_blank_lines_and_extra_keys() -> None:
    """JSONL: one object a line, blank lines skipped, unknown keys ignored, no final newline."""
    assert pairs(source("good.jsonl")) == [
        ("asst_one", "file-a1", 1),
        ("asst_one", "file-a2", 3),
        ("asst_two", "file-b1", 5),
        ("asst_one", "file-a1", 6),
    ]


def test_yaml_items_shape() -> None:
    """YAML items: flow and block items, quoted ids, extra keys ignored; the item's line."""
    assert pairs(source("good-items.yaml")) == [
        ("asst_one", "file-a1", 3),
        ("asst_one", "file-a2", 4),
        ("asst_two", "file-b1", 6),
        ("asst_one", "file-a1", 7),
    ]


def test_yaml_grouped_shape() -> None:
    """YAML grouped under assistants:, an empty list allowed; each file's own line."""
    assert pairs(source("good-grouped.yaml")) == [
        ("asst_one", "file-a1", 3),
        ("asst_one", "file-a2", 4),
        ("asst_two", "file-b1", 5),
    ]


def test_yaml_grouped_vector_stores() -> None:
    """vector_stores: is the group key of the vector-store target."""
    assert pairs(source("good-vector-stores.yaml"), VECTOR_STORES) == [
        ("vs_one", "file-a1", 2),
        ("vs_one", "file-a2", 2),
        ("vs_two", "file-b1", 4),
    ]


def test_csv_vector_store_column() -> None:
    """A vector_store_id header reads under the vector-store target."""
    assert pairs(source("vector-store-header.csv"), VECTOR_STORES) == [("vs_1", "file-1", 2)]


@pytest.mark.parametrize(
    "name",
    [
        "empty.csv",
        "header-only.csv",
        "blank-lines.csv",
        "empty.yaml",
        "empty-items.yaml",
        "comments-only.yaml",
        "empty.jsonl",
        "blank-lines.jsonl",
    ],
)
def test_empty_manifests_are_not_errors(name: str) -> None:
    """A zero-byte file, a header only, items: [] or only comments: zero items, no error."""
    src = source(name)
    assert check_manifest(src, *ASSISTANTS) == ManifestStats()
    assert list(iter_items(src, *ASSISTANTS)) == []


def test_items_are_items() -> None:
    """iter_items yields runner.items.Item values."""
    first = next(iter_items(source("good.csv"), *ASSISTANTS))
    assert first == Item("asst_one", "file-a1", 2)


# ---------------------------------------------------------------- bad CSV


def test_csv_bad_rows_each_named() -> None:
    """Spaces, short and long rows, empty values, slashes, 129 chars, a tab: one line each."""
    assert problems(source("bad-rows.csv")) == [
        f'3: file_id "file 7" is not a valid ID; {ID_RULE}',
        "4: row has 1 field but the header has 2; give every row a value for each column",
        "5: assistant_id is empty; every row needs assistant_id and file_id",
        "6: file_id is empty; every row needs assistant_id and file_id",
        "7: row has 3 fields but the header has 2; "
        "quote a value that holds a comma, or name every column in the header",
        f'8: assistant_id "asst/../x" is not a valid ID; {ID_RULE}',
        f'9: file_id "{"f" * 40}..." (129 characters) is not a valid ID; {ID_RULE}',
        f'11: file_id "file\\tx" is not a valid ID; {ID_RULE}',
    ]


def test_csv_missing_file_id_column() -> None:
    """A header without file_id is one error on line 1."""
    assert problems(source("no-file-column.csv")) == [
        '1: header has no "file_id" column; the header row must name assistant_id and file_id'
    ]


def test_csv_without_header() -> None:
    """A file whose first row is data names both missing columns."""
    assert problems(source("no-header.csv")) == [
        '1: header has no "assistant_id" or "file_id" column; '
        "the header row must name assistant_id and file_id"
    ]


def test_csv_duplicated_header() -> None:
    """A column named twice is ambiguous: an error on the header line."""
    assert problems(source("duplicate-header.csv")) == [
        '1: header names "assistant_id" twice; give each column its own name'
    ]


def test_csv_wrong_target_column() -> None:
    """An assistant_id header under the vector-store target names the target to pass."""
    assert problems(source("header-only.csv"), VECTOR_STORES) == [
        '1: header names "assistant_id" but --target vector-store-files needs a '
        '"vector_store_id" column; rename the column or pass --target assistant-files'
    ]
    assert problems(source("vector-store-header.csv")) == [
        '1: header names "vector_store_id" but --target assistant-files needs an '
        '"assistant_id" column; rename the column or pass --target vector-store-files'
    ]


def test_csv_not_utf8() -> None:
    """A Latin-1 byte is named with its line; later rows are still read."""
    assert problems(source("not-utf8.csv")) == [
        "3: line is not UTF-8 (byte 0xe9 at column 6); save the file as UTF-8"
    ]


def test_csv_nul_byte() -> None:
    """A NUL byte (which csv would accept) is an error on its line."""
    assert problems(source("nul.csv")) == [
        "3: line holds a NUL byte; save the file as plain UTF-8 text"
    ]


def test_csv_utf16() -> None:
    """A UTF-16 export is one error, not a NUL on every line."""
    assert problems(source("utf16.csv")) == ["1: file is UTF-16 text; save it as UTF-8"]


def test_csv_ten_megabyte_line(tmp_path: Path) -> None:
    """A 10 MB line is one error on its line; the rows around it are still read."""
    data = b"assistant_id,file_id\nasst_1,file-1\n" + b"x" * (10 << 20) + b"\nasst_2,file 2\n"
    src = write(tmp_path / "huge.csv", data)
    assert problems(src) == [
        "3: line is longer than 1 MiB; put one pair on each line",
        f'4: file_id "file 2" is not a valid ID; {ID_RULE}',
    ]


def test_csv_field_over_csv_limit(tmp_path: Path) -> None:
    """A quoted field past csv's limit (an unclosed quote, say) is one error, not a traceback."""
    data = 'assistant_id,file_id\nasst_1,"' + "y" * 200_000 + '"\nasst_2,file-2\n'
    src = write(tmp_path / "wide.csv", data)
    assert problems(src) == [
        "2: a field is longer than 131072 characters; check for a quote that is never closed"
    ]


def test_csv_lone_carriage_return(tmp_path: Path) -> None:
    """Old Mac line ends inside a line are named, not a csv traceback."""
    src = write(tmp_path / "cr.csv", "assistant_id,file_id\nasst_1,file-1\rasst_2,file-2\n")
    assert problems(src) == [
        "2: row holds a lone carriage return (\\r); save the file with \\n or \\r\\n line ends"
    ]


def test_csv_line_numbers_after_multiline_quotes(tmp_path: Path) -> None:
    """A row after a quoted field spanning three lines is reported on its physical line."""
    data = 'note,assistant_id,file_id\n"a\nb\nc",asst_1,file-1\n"d",asst_2,bad id\n'
    assert problems(write(tmp_path / "multi.csv", data)) == [
        f'5: file_id "bad id" is not a valid ID; {ID_RULE}'
    ]


def test_twenty_problems_kept_and_all_counted() -> None:
    """25 bad rows: the first 20 kept in order, total 25, then "and 5 more"."""
    with pytest.raises(ManifestError) as caught:
        check_manifest(source("many-errors.csv"), *ASSISTANTS)
    error = caught.value
    assert error.total == 25
    assert [p.line for p in error.problems] == list(range(2, 22))
    assert error.lines()[-1] == "and 5 more"
    assert len(error.lines()) == 21


def test_iter_items_stops_at_first_bad_row() -> None:
    """Unchecked, iter_items yields the good rows before the first bad one, then raises."""
    seen: list[Item] = []
    with pytest.raises(ManifestError) as caught:
        seen.extend(iter_items(source("bad-rows.csv"), *ASSISTANTS))
    assert seen == [Item("asst_ok", "file-ok", 2)]
    assert caught.value.total == 1
    assert caught.value.problems[0].line == 3


# ---------------------------------------------------------------- bad YAML


def test_yaml_alias_bomb_refused() -> None:
    """A billion-laughs document is refused at the first alias, quickly."""
    assert problems(source("alias-bomb.yaml")) == [
        "2: YAML aliases are not allowed in a manifest; write each value out"
    ]


def test_yaml_duplicate_group_key() -> None:
    """A repeated assistant key is an error on the second key's line."""
    assert problems(source("duplicate-key.yaml")) == [
        '4: key "asst_one" appears twice in one mapping (first on line 2); '
        "keep one, merging what they hold"
    ]


def test_yaml_duplicate_item_key() -> None:
    """A repeated key inside one item is refused too (safe_load would keep the last)."""
    assert problems(source("duplicate-item-key.yaml")) == [
        '4: key "file_id" appears twice in one mapping (first on line 3); '
        "keep one, merging what they hold"
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "list.yaml",
            '1: manifest is a list; put it under "items:", or group files under "assistants:"',
        ),
        (
            "scalar.yaml",
            '1: manifest is a single value, not a mapping; start it with "items:" or "assistants:"',
        ),
        ("no-shape.yaml", '1: manifest has no "items:" or "assistants:"; add one'),
        (
            "unknown-top-key.yaml",
            '1: unknown key "itmes" at the top of the manifest; use "items:" or "assistants:"',
        ),
        (
            "grouped-not-list.yaml",
            '2: files of "asst_one" are a string, not a list; write asst_one: [file-1, file-2]',
        ),
        (
            "grouped-not-mapping.yaml",
            '2: "assistants:" is a list, not a mapping; '
            'write "assistants: {asst_abc: [file-1, file-2]}"',
        ),
        (
            "items-not-list.yaml",
            '1: "items:" is a mapping, not a list; '
            'write "- {assistant_id: asst_abc, file_id: file-1}" lines',
        ),
        (
            "wrong-group.yaml",
            '1: "vector_stores:" groups files for --target vector-store-files, but --target '
            'assistant-files needs "assistants:"; rename the key or pass --target '
            "vector-store-files",
        ),
        (
            "syntax-error.yaml",
            "3: YAML syntax error: while parsing a flow mapping, expected ',' or '}', "
            "but got '{'; fix the YAML on this line",
        ),
        (
            "two-documents.yaml",
            "2: YAML syntax error: expected a single document in the stream, "
            "but found another document; fix the YAML on this line",
        ),
    ],
)
def test_yaml_document_shapes(name: str, expected: str) -> None:
    """A document of the wrong shape is one clear line."""
    assert problems(source(name)) == [expected]


def test_yaml_wrong_types() -> None:
    """Numbers, booleans, nulls, lists, missing keys, the other target's key: one line each."""
    assert problems(source("bad-types.yaml")) == [
        '2: file_id is a number, not a string; quote it: "123"',
        '3: assistant_id is a boolean, not a string; quote it: "yes"',
        "4: file_id is empty; every item needs assistant_id and file_id",
        '5: item has no "file_id"; every item needs assistant_id and file_id',
        '6: item names "vector_store_id" but --target assistant-files needs "assistant_id"; '
        "rename the key or pass --target vector-store-files",
        "7: item is a string, not a mapping; "
        "write each item as {assistant_id: asst_abc, file_id: file-1}",
        "8: file_id is a list, not a string; give one ID per item",
        f'9: assistant_id "asst one" is not a valid ID; {ID_RULE}',
    ]


def test_yaml_grouped_under_wrong_key_for_vector_stores() -> None:
    """assistants: under the vector-store target names the target to pass."""
    assert problems(source("good-grouped.yaml"), VECTOR_STORES) == [
        '1: "assistants:" groups files for --target assistant-files, but --target '
        'vector-store-files needs "vector_stores:"; rename the key or pass --target '
        "assistant-files"
    ]


def test_yaml_not_utf8_nul_and_deep_nesting(tmp_path: Path) -> None:
    """Bad bytes, a NUL and 1,000 nested lists each give one line with its line number."""
    assert problems(write(tmp_path / "a.yaml", b"items:\n- {assistant_id: a\xff}\n")) == [
        "2: line is not UTF-8 (byte 0xff at column 19); save the file as UTF-8"
    ]
    assert problems(write(tmp_path / "b.yaml", b"items: []\nx: a\x00\n")) == [
        "2: line holds a character YAML does not allow (U+0000); remove it"
    ]
    assert problems(write(tmp_path / "c.yaml", b"items:\n" + b"[" * 1000)) == [
        "2: YAML is nested more than 32 levels deep; a manifest needs 4"
    ]


# ---------------------------------------------------------------- bad JSONL


def test_jsonl_bad_lines() -> None:
    """Trailing comma, array, scalar, number, missing key, null, repeated key, wrong target."""
    got = problems(source("bad.jsonl"))
    # The JSON parser's own words vary across Python versions; the rest of the line does not.
    assert got[0].startswith("2: line is not valid JSON (")
    assert got[0].endswith(f"); {JSONL_TODO}")
    assert got[1:] == [
        f"3: line is not a JSON object (it is a list); {JSONL_TODO}",
        f"4: line is not a JSON object (it is a string); {JSONL_TODO}",
        '5: assistant_id is a number, not a string; quote it: "123"',
        '6: object has no "file_id"; every object needs assistant_id and file_id',
        "7: file_id is empty; every object needs assistant_id and file_id",
        '8: key "file_id" appears twice in one object; keep one',
        '9: object names "vector_store_id" but --target assistant-files needs "assistant_id"; '
        "rename the key or pass --target vector-store-files",
        f'10: file_id "file\\x00a8" is not a valid ID; {ID_RULE}',
    ]


def test_jsonl_deep_nesting_and_huge_number(tmp_path: Path) -> None:
    """Deep nesting and a 5,000-digit number become lines, not RecursionError or ValueError."""
    data = b"[" * 100_000 + b"\n" + b'{"assistant_id": ' + b"9" * 5000 + b"}\n"
    got = problems(write(tmp_path / "deep.jsonl", data))
    assert got[0] == f"1: line is nested too deeply to read; {JSONL_TODO}"
    assert got[1].startswith("2: line is not valid JSON (")


# ---------------------------------------------------------------- opening


def test_missing_file_and_directory(tmp_path: Path) -> None:
    """A missing path and a directory are one UsageError line each."""
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(UsageError) as caught:
        open_manifest(missing, None)
    assert str(caught.value) == f"{missing}: no such file; check the path"
    with pytest.raises(UsageError) as caught:
        open_manifest(str(tmp_path), "csv")
    assert str(caught.value) == f"{tmp_path}: is a directory; give the path of a manifest file"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    """A file without read permission is named, with what to check."""
    path = tmp_path / "secret.csv"
    path.write_text("assistant_id,file_id\n")
    path.chmod(0)
    with pytest.raises(UsageError) as caught:
        open_manifest(str(path), None)
    assert str(caught.value) == f"{path}: cannot be read (permission denied); check its permissions"


def test_format_from_extension_and_flag(tmp_path: Path) -> None:
    """Extensions choose the format (any case); --format overrides; yml is yaml."""
    extensions = {"a.CSV": "csv", "b.yml": "yaml", "c.YAML": "yaml", "d.jsonl": "jsonl"}
    for name, fmt in extensions.items():
        (tmp_path / name).write_text("")
        assert open_manifest(str(tmp_path / name), None).format == fmt
    assert open_manifest(str(tmp_path / "a.CSV"), "yml").format == "yaml"
    assert open_manifest(str(tmp_path / "a.CSV"), "JSONL").format == "jsonl"


def test_unknown_extension_and_format(tmp_path: Path) -> None:
    """No known extension asks for --format; an unknown --format lists the known ones."""
    path = tmp_path / "pairs.txt"
    path.write_text("")
    with pytest.raises(UsageError) as caught:
        open_manifest(str(path), None)
    assert str(caught.value) == (
        f"{path}: cannot tell the format from the name (.csv, .yaml, .yml, .jsonl); "
        "pass --format csv|yaml|jsonl"
    )
    with pytest.raises(UsageError) as caught:
        open_manifest(str(path), "xml")
    assert str(caught.value) == '--format "xml" is not known; use csv, yaml or jsonl'


def test_stdin_needs_format() -> None:
    """A manifest of "-" without --format is a usage error."""
    with pytest.raises(UsageError) as caught:
        open_manifest("-", None)
    assert str(caught.value) == "-: reading stdin needs --format csv|yaml|jsonl"


def test_stdin_is_spooled(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin is copied whole to a file, so it can be checked and then read again."""
    data = b"assistant_id,file_id\nasst_1,file-1\nasst_1,file 2\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    src = open_manifest("-", "csv")
    assert src.display == "<stdin>"
    assert src.format == "csv"
    assert Path(src.path).read_bytes() == data
    assert problems(src) == [f'3: file_id "file 2" is not a valid ID; {ID_RULE}']


def test_stdin_without_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text-only stdin (no .buffer) is spooled as UTF-8."""
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"assistant_id": "asst_é", "file_id": "f"}\n'))
    src = open_manifest("-", "jsonl")
    assert problems(src) == [f'1: assistant_id "asst_é" is not a valid ID; {ID_RULE}']


def test_stdin_spool_removed_at_exit() -> None:
    """The spooled copy of stdin is deleted when the interpreter exits."""
    code = "from runner.manifest import open_manifest; print(open_manifest('-', 'csv').path)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=b"assistant_id,file_id\n",
        capture_output=True,
        check=True,
    )
    spooled = Path(done.stdout.decode().strip())
    assert spooled.name.startswith("attach-runner-manifest-")
    assert not spooled.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_spooled(tmp_path: Path) -> None:
    """A pipe such as <(generate) can be read only once, so it is spooled like stdin."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as out:
            out.write(b"assistant_id,file_id\nasst_1,file-1\n")

    writer = threading.Thread(target=feed)
    writer.start()
    src = open_manifest(str(fifo), None)
    writer.join(timeout=10)
    assert src.display == str(fifo)
    assert src.path != str(fifo)
    check_manifest(src, *ASSISTANTS)
    assert pairs(src) == [("asst_1", "file-1", 2)]


# ---------------------------------------------------------------- stats and memory


def test_stats_count_rows_pairs_duplicates_and_crowded_owners(tmp_path: Path) -> None:
    """Rows include repeats; pairs are distinct; owners over the limit are listed, most first."""
    rows = [("asst_big", f"file-{i}") for i in range(25)]
    rows += [("asst_mid", f"file-{i}") for i in range(21)]
    rows += [("asst_small", "file-1"), ("asst_small", "file-2")]
    rows += [("asst_big", "file-0"), ("asst_big", "file-1"), ("asst_small", "file-1")]
    text = "assistant_id,file_id\n" + "".join(f"{o},{f}\n" for o, f in rows)
    stats = check_manifest(write(tmp_path / "s.csv", text), *ASSISTANTS)
    assert stats == ManifestStats(
        rows=51,
        pairs=48,
        duplicates=3,
        owners=3,
        max_files_owner="asst_big",
        max_files=25,
        owners_over=[("asst_big", 25), ("asst_mid", 21)],
        owners_over_count=2,
    )
    stricter = check_manifest(write(tmp_path / "s.csv", text), *ASSISTANTS, over_limit=21)
    assert stricter.owners_over == [("asst_big", 25)]


def test_stats_crowded_owners_capped(tmp_path: Path) -> None:
    """At most 20 crowded owners are listed, sorted; the count says how many there were."""
    text = "assistant_id,file_id\n" + "".join(
        f"asst_{i:02d},file-{j}\n" for i in range(25) for j in range(2)
    )
    stats = check_manifest(write(tmp_path / "c.csv", text), *ASSISTANTS, over_limit=1)
    assert stats.owners_over == [(f"asst_{i:02d}", 2) for i in range(20)]
    assert stats.owners_over_count == 25
    assert stats.max_files_owner == "asst_00"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_streaming_memory_is_flat(tmp_path: Path, fmt: str) -> None:
    """Reading 100,000 CSV or JSONL rows holds a line at a time, never the whole file."""
    path = tmp_path / f"big.{fmt}"
    with open(path, "w") as out:
        if fmt == "csv":
            out.write("assistant_id,file_id\n")
            out.writelines(f"asst_{i % 97},file-{i:08d}\n" for i in range(100_000))
        else:
            out.writelines(
                f'{{"assistant_id": "asst_{i % 97}", "file_id": "file-{i:08d}"}}\n'
                for i in range(100_000)
            )
    src = open_manifest(str(path), None)
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_items(src, *ASSISTANTS))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 100_000
    assert peak < 1 << 20, f"peak {peak} bytes for a {path.stat().st_size}-byte file"


# The examples in jobs/ and the demo's packaged manifest: tests/commands/test_demo.py.


# ---------------------------------------------------------------- properties

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
# Valid IDs YAML would read as another type unless quoted, and the longest one allowed.
TRICKY_IDS = ["123", "yes", "no", "null", "true", "1e3", "0x1F", "-", "_", "1_000", "2024-01-01"]
TRICKY_IDS += ["x" * 128]
ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=12) | st.sampled_from(TRICKY_IDS)
pair_lists = st.lists(st.tuples(ids, ids), max_size=30)


Pairs = list[tuple[str, str]]


def write_pairs(path: Path, shape: str, rows: Pairs) -> tuple[str, Pairs]:
    """Write pairs in a shape; return the format and the pairs as that shape orders them."""
    if shape == "csv":
        with open(path, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["file_id", "assistant_id"])
            writer.writerows((f, o) for o, f in rows)
        return "csv", rows
    if shape == "jsonl":
        lines = (json.dumps({"assistant_id": o, "file_id": f}) + "\n" for o, f in rows)
        path.write_text("".join(lines))
        return "jsonl", rows
    if shape == "yaml-items":
        items = [{"assistant_id": o, "file_id": f} for o, f in rows]
        path.write_text(yaml.safe_dump({"items": items}, sort_keys=False))
        return "yaml", rows
    grouped: dict[str, list[str]] = {}
    for owner, file_id in rows:
        grouped.setdefault(owner, []).append(file_id)
    path.write_text(yaml.safe_dump({"assistants": grouped}, sort_keys=False))
    return "yaml", [(o, f) for o, files in grouped.items() for f in files]


@PROPERTY_SETTINGS
@given(rows=pair_lists, shape=st.sampled_from(["csv", "jsonl", "yaml-items", "yaml-grouped"]))
def test_valid_pairs_round_trip(tmp_path: Path, rows: Pairs, shape: str) -> None:
    """Any list of valid pairs, written in any format or shape, reads back as the same pairs."""
    fmt, expected = write_pairs(tmp_path / "m", shape, rows)
    src = ManifestSource("m", str(tmp_path / "m"), fmt)
    stats = check_manifest(src, *ASSISTANTS)
    assert [(i.owner, i.file_id) for i in iter_items(src, *ASSISTANTS)] == expected
    assert stats.rows == len(expected)
    assert stats.pairs == len(set(expected))


# Pieces of all three formats, so random input reaches past the first syntax check.
TOKENS = ["assistant_id", "file_id", "vector_store_id", "items", "assistants", "asst_1", "file-1"]
TOKENS += ["123", "~", "null"]
TOKENS += [",", ":", " ", "\n", "\r\n", '"', "'", "{", "}", "[", "]", "- ", "&a ", "*a", "#"]
TOKENS += ["!!str ", "? ", "\t", "\x00", "\ufeff", "é", "\\", "---\n", "%YAML 1.1\n", "<<: "]
inputs = (
    st.binary(max_size=400)
    | st.text(max_size=300).map(str.encode)
    | st.lists(st.sampled_from(TOKENS), max_size=60).map(lambda parts: "".join(parts).encode())
)


def check_or_error(src: ManifestSource, target: tuple[str, str]) -> ManifestStats | ManifestError:
    try:
        return check_manifest(src, *target)
    except ManifestError as error:
        return error


@PROPERTY_SETTINGS
@given(data=inputs, fmt=st.sampled_from(FORMATS), owner=st.sampled_from([0, 1]))
def test_any_input_fails_only_cleanly(tmp_path: Path, data: bytes, fmt: str, owner: int) -> None:
    """Arbitrary bytes give items or ManifestError lines: one line each, with a line number."""
    target = (ASSISTANTS, VECTOR_STORES)[owner]
    path = tmp_path / "fuzz"
    path.write_bytes(data)
    src = ManifestSource("fuzz", str(path), fmt)
    outcome = check_or_error(src, target)
    if isinstance(outcome, ManifestStats):
        assert sum(1 for _ in iter_items(src, *target)) == outcome.rows
        return
    assert outcome.total >= len(outcome.problems) >= 1
    for problem in outcome.problems:
        assert problem.line is not None
        assert problem.line >= 1
        assert "\n" not in str(problem)
        assert "\r" not in str(problem)
    with pytest.raises(ManifestError):
        list(iter_items(src, *target))
