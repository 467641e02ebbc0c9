"""Per-file options in manifests (SPEC "Manifests"): `attributes` and `chunking_strategy` read
from every format into `Item.options`, and every wrong value refused on a line of its own, by
`validate` and by `run` (exit 2, nothing sent), through the real CLI against a sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.attributes import Options
from runner.errors import ManifestError
from runner.items import Item
from runner.manifest import ManifestSource, check_manifest, iter_items, open_manifest
from tests.cli import run_cli

ERROR = "attach-runner: error: "
VS = ("vector_store_id", "vector_stores")
STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


def items(path: Path, columns: tuple[str, str] = VS) -> list[Item]:
    source = open_manifest(str(path), None)
    check_manifest(source, *columns)
    return list(iter_items(source, *columns))


# ---------------------------------------------------------------- each format reads them


def test_csv_cells_hold_json_and_an_empty_cell_gives_none(tmp_path: Path) -> None:
    """CSV: JSON in quoted cells; an empty cell is "not given" (None), `{}` clears (kept)."""
    path = tmp_path / "m.csv"
    path.write_text(
        "vector_store_id,file_id,attributes,chunking_strategy\n"
        'vs_1,file-1,"{""year"": 2021, ""draft"": false, ""team"": ""ml""}",\n'
        'vs_1,file-2,,"{""type"": ""auto""}"\n'
        "vs_1,file-3,,\n"
        "vs_1,file-4,{},\n")
    assert items(path) == [
        Item("vs_1", "file-1", 2, Options({"year": 2021, "draft": False, "team": "ml"}, None)),
        Item("vs_1", "file-2", 3, Options(None, {"type": "auto"})),
        Item("vs_1", "file-3", 4, None),
        Item("vs_1", "file-4", 5, Options({}, None)),
    ]


def test_jsonl_and_yaml_items_carry_the_same_keys(tmp_path: Path) -> None:
    """JSONL objects and YAML `items:` give options as keys of the item."""
    rows = [{"vector_store_id": "vs_1", "file_id": "file-1", "attributes": {"year": 2021.5}},
            {"vector_store_id": "vs_1", "file_id": "file-2", "chunking_strategy": STATIC},
            {"vector_store_id": "vs_1", "file_id": "file-3"}]
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    yml = tmp_path / "m.yaml"
    yml.write_text("items:\n" + "".join(f"  - {json.dumps(row)}\n" for row in rows))
    expected = [Item("vs_1", "file-1", 1, Options({"year": 2021.5}, None)),
                Item("vs_1", "file-2", 2, Options(None, STATIC)),
                Item("vs_1", "file-3", 3, None)]
    assert items(jsonl) == expected
    assert items(yml) == [item._replace(line=item.line + 1) for item in expected]


def test_grouped_yaml_entries_are_ids_or_mappings(tmp_path: Path) -> None:
    """Grouped YAML: an entry is a file id, or {file_id, attributes, chunking_strategy};
    unquoted yes/on stay booleans (YAML 1.1), quoted ones stay strings."""
    path = tmp_path / "m.yaml"
    path.write_text(
        "vector_stores:\n"
        "  vs_1:\n"
        "    - file-1\n"
        "    - {file_id: file-2, attributes: {public: yes, note: 'no', n: 0x10}}\n"
        "    - file_id: file-3\n"
        "      chunking_strategy: {type: auto}\n"
        "      attributes: {}\n")
    assert items(path) == [
        Item("vs_1", "file-1", 3, None),
        Item("vs_1", "file-2", 4, Options({"public": True, "note": "no", "n": 16}, None)),
        Item("vs_1", "file-3", 5, Options({}, {"type": "auto"})),
    ]


def test_validate_takes_options_and_counts_a_same_options_repeat_once(tmp_path: Path) -> None:
    """A pair repeated with the same options (2021 == 2021.0, keys in any order) is a repeat,
    warned once; validate says OK."""
    path = tmp_path / "m.jsonl"
    pair = '{"vector_store_id": "vs_1", "file_id": "file-1", '
    path.write_text(pair + '"attributes": {"y": 2021, "a": true}}\n'
                    + pair + '"attributes": {"a": true, "y": 2021.0}}\n')
    res = run_cli("validate", "m.jsonl", cwd=tmp_path)
    assert res.code == 0, res.err
    assert "pairs: 1  (rows 2, repeated 1)" in res.out
    assert res.err.count("repeated pair") == 1


# ---------------------------------------------------------------- every wrong value


V = '{"vector_store_id": "vs_1", "file_id": "file-1", '
STATIC_WITH = '"chunking_strategy": {"type": "static", "static": {%s}}}'
TOKENS = "give a whole number from 100 to 4096"
E_ACUTE = "\u00e9"  # two bytes in UTF-8, one code point: lengths count code points
JSONL_CASES = {
    "nested-object": (V + '"attributes": {"a": {"b": 1}}}',
                      'attribute "a" is an object; values are strings, numbers or booleans: give '
                      "each nested value a key of its own"),
    "array": (V + '"attributes": {"a": [1, 2]}}',
              'attribute "a" is a list; values are strings, numbers or booleans: join the list '
              "into one string"),
    "17-keys": (V + '"attributes": {' + ", ".join(f'"k{i}": {i}' for i in range(17)) + "}}",
                "attributes has 17 keys, over the limit of 16; keep at most 16"),
    "65-character-key": (V + '"attributes": {"' + E_ACUTE * 65 + '": 1}}',
                         'attribute key "' + E_ACUTE * 40 + '..." (65 characters) is longer than '
                         "64 characters; shorten it"),
    "empty-key": (V + '"attributes": {"": 1}}',
                  "attributes has an empty key; name every attribute (1 to 64 characters)"),
    "513-character-string": (V + '"attributes": {"a": "' + E_ACUTE * 513 + '"}}',
                             'attribute "a" is a string of 513 characters, over the limit of 512; '
                             "shorten it"),
    "nan": (V + '"attributes": {"a": NaN}}',
            "line holds NaN, which JSON does not allow; give a finite number, or a string"),
    "infinity": (V + '"attributes": {"a": -Infinity}}',
                 "line holds -Infinity, which JSON does not allow; give a finite number, or a "
                 "string"),
    "float-overflow": (V + '"attributes": {"a": 1e400}}',
                       'attribute "a" is not a finite number (it reads as inf); give a finite '
                       "number, or a string"),
    "null-value": (V + '"attributes": {"a": null}}',
                   'attribute "a" is null; give it a value (a string, number or boolean), or '
                   "leave the key out"),
    "integer-past-2-53": (V + '"attributes": {"a": -9007199254740993}}',
                          'attribute "a" is -9007199254740993, beyond +-2^53, where numbers lose '
                          "digits; write it as a string"),
    "lone-surrogate": (V + '"attributes": {"a": "x\\udc00"}}',
                       'attribute "a" holds \\udc00, half of a UTF-16 pair, which is not text; '
                       "write the character itself, or both halves of its pair"),
    "lone-surrogate-key": (V + '"attributes": {"k\\ud800": 1}}',
                           'attribute key "k\\ud800" holds \\ud800, half of a UTF-16 pair, '
                           "which is not text; write the character itself, or both halves of "
                           "its pair"),
    "attributes-null": (V + '"attributes": null}',
                        "attributes is null; leave the key out to leave the file's attributes as "
                        "they are, or give {} to clear them"),
    "attributes-not-object": (V + '"attributes": "year=2021"}',
                              'attributes is a string, not an object; write an object like '
                              '{"year": 2021}'),
    "repeated-key": (V + '"attributes": {"a": 1, "a": 2}}',
                     'key "a" appears twice in one object; keep one'),
    "overlap-over-half": (V + STATIC_WITH % '"max_chunk_size_tokens": 801, '
                                            '"chunk_overlap_tokens": 401',
                          "chunk_overlap_tokens is 401, over half of max_chunk_size_tokens (801); "
                          "give at most 400"),
    "unknown-type": (V + '"chunking_strategy": {"type": "fixed"}}',
                     'chunking_strategy type is "fixed"; use {"type": "auto"} or {"type": '
                     '"static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": '
                     "400}}"),
    "auto-extra-key": (V + '"chunking_strategy": {"type": "auto", "size": 1}}',
                       'chunking_strategy of type "auto" has an unknown key "size"; it takes '
                       'only "type"'),
    "static-extra-key": (V + STATIC_WITH % '"max_chunk_size_tokens": 800, '
                                           '"chunk_overlap_tokens": 400, "x": 1',
                         'chunking_strategy "static" has an unknown key "x"; it takes only '
                         '"max_chunk_size_tokens" and "chunk_overlap_tokens"'),
    "float-tokens": (V + STATIC_WITH % '"max_chunk_size_tokens": 800.0, '
                                       '"chunk_overlap_tokens": 400',
                     f'max_chunk_size_tokens is a number ("800.0"), not a whole number; {TOKENS}'),
    "boolean-tokens": (V + STATIC_WITH % '"max_chunk_size_tokens": true, '
                                         '"chunk_overlap_tokens": 0',
                       'max_chunk_size_tokens is a boolean ("true"), not a whole number; '
                       + TOKENS),
    "tokens-too-few": (V + STATIC_WITH % '"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0',
                       f"max_chunk_size_tokens is 99, out of range; {TOKENS}"),
    "tokens-too-many": (V + STATIC_WITH % '"max_chunk_size_tokens": 4097, '
                                          '"chunk_overlap_tokens": 0',
                        f"max_chunk_size_tokens is 4097, out of range; {TOKENS}"),
    "static-missing": (V + '"chunking_strategy": {"type": "static"}}',
                       'chunking_strategy of type "static" has no "static"; write "static": '
                       '{"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}'),
}
CSV_HEAD = "vector_store_id,file_id,attributes,chunking_strategy\n"
OTHER_CASES = {
    "csv-cell-not-json": ("m.csv", CSV_HEAD + "vs_1,file-1,year=2021,\n", 2,
                          'attributes cell is not JSON (Expecting value); write JSON in a quoted '
                          'cell, like "{""year"": 2021}"'),
    "csv-cell-repeated-key": ("m.csv", CSV_HEAD + 'vs_1,file-1,"{""a"": 1, ""a"": 2}",\n', 2,
                              'attributes cell names key "a" twice; keep one'),
    "csv-cell-nan": ("m.csv", CSV_HEAD + 'vs_1,file-1,,"{""type"": NaN}"\n', 2,
                     "chunking_strategy cell holds NaN, which JSON does not allow; give a finite "
                     "number, or a string"),
    "csv-true-is-not-1": ("m.csv", CSV_HEAD + "vs_1,file-1,\"{\"\"a\"\": 1}\",\n"
                          "vs_1,file-1,\"{\"\"a\"\": true}\",\n", 3,
                          "vs_1/file-1 is repeated with other options than on line 2; give the "
                          "pair one set of attributes and chunking_strategy, or remove the "
                          "repeat"),
    "options-on-assistants": ("m.csv", "assistant_id,file_id,attributes\n"
                              'asst_1,file-1,"{""a"": 1}"\n', 2,
                              "attributes are given but assistant-files has no per-file options "
                              "(only vector stores do); remove them, or attach to a vector store"),
    "yaml-date": ("m.yaml", "items:\n  - {vector_store_id: vs_1, file_id: file-1,\n"
                  "     attributes: {day: 2021-01-01}}\n", 2,
                  'attribute "day" is a date ("2021-01-01"); quote it to keep it as a string'),
    "yaml-null-value": ("m.yaml", "vector_stores:\n  vs_1:\n    - file_id: file-1\n"
                        "      attributes: {a: ~}\n", 3,
                        'attribute "a" is null; give it a value (a string, number or boolean), '
                        "or leave the key out"),
    "yaml-nan": ("m.yaml", "items:\n  - {vector_store_id: vs_1, file_id: f-1, attributes: "
                 "{a: .nan}}\n", 2,
                 'attribute "a" is not a finite number (it reads as nan); give a finite '
                 "number, or a string"),
    "yaml-boolean-key": ("m.yaml", "items:\n  - {vector_store_id: vs_1, file_id: f-1, "
                         "attributes: {yes: 1}}\n", 2,
                         'attribute key "true" is a boolean, not a string; quote it'),
    "yaml-entry-unknown-key": ("m.yaml", "vector_stores:\n  vs_1:\n    - {file_id: f-1, "
                               "attribute: {a: 1}}\n", 3,
                               'entry has an unknown key "attribute"; an entry takes file_id '
                               "(or path), attributes and chunking_strategy"),
}
CASES = {f"jsonl-{name}": ("m.jsonl", line + "\n", 1, expect)
         for name, (line, expect) in JSONL_CASES.items()} | OTHER_CASES


@pytest.mark.parametrize("name", list(CASES))
def test_each_wrong_value_is_one_line_exit_2_nothing_sent(tmp_path: Path, sandbox,
                                                          name: str) -> None:
    """validate and run: one `FILE:LINE: what; what to do` line, exit 2, no request."""
    file, text, line, expect = CASES[name]
    (tmp_path / file).write_text(text, encoding="utf-8")
    sb = sandbox()
    for argv in (["validate", file], ["run", file, "--base-url", sb.base_url]):
        res = run_cli(*argv, cwd=tmp_path)
        assert "Traceback" not in res.err
        assert res.err.splitlines() == [f"{ERROR}{file}:{line}: {expect}"], argv
        assert res.code == 2
    assert sb.record()["requests"] == 0


def test_a_plain_repeat_of_a_pair_with_options_names_both_lines(tmp_path: Path) -> None:
    """Plain first, options later (and the other way round): both lines named, each time."""
    path = tmp_path / "m.csv"
    path.write_text(CSV_HEAD + "vs_1,file-1,,\nvs_2,file-2,{},\nvs_1,file-1,{},\nvs_2,file-2,,\n")
    source = ManifestSource(str(path), str(path), "csv")
    with pytest.raises(ManifestError) as caught:
        check_manifest(source, *VS)
    assert [(p.line, p.message.split(";")[0]) for p in caught.value.problems] == [
        (4, "vs_1/file-1 is repeated with other options than on line 2"),
        (5, "vs_2/file-2 is repeated with other options than on line 3"),
    ]


def test_failed_writes_options_that_read_back_the_same(tmp_path: Path, sandbox) -> None:
    """`failed` gives each failed pair's options as JSON cells: fed back as a manifest, the
    pairs come back with the same options."""
    sb = sandbox()  # a file id holding "missing" is a 404 there: refused, so failed
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"vector_store_id": "vs_1", "file_id": "file-missing1", "attributes": {"t": "a,\\"b\\"", '
        '"n": 1.5, "ok": false}, "chunking_strategy": {"type": "auto"}}\n'
        '{"vector_store_id": "vs_1", "file_id": "file-missing2", "attributes": {}}\n'
        '{"vector_store_id": "vs_1", "file_id": "file-missing3"}\n')
    res = run_cli("run", "m.jsonl", "--base-url", sb.base_url, "--no-progress", cwd=tmp_path)
    assert res.code == 1, res.err
    out = run_cli("failed", "m.jsonl", cwd=tmp_path)
    assert out.code == 0, out.err
    (tmp_path / "retry.csv").write_text(out.out)
    back = items(tmp_path / "retry.csv")
    assert [(i.file_id, i.options) for i in back] == [(i.file_id, i.options)
                                                      for i in items(path)]
    assert back[0].options is not None
    assert back[2].options is None
