"""Which target (SPEC "Which target"): read from the manifest by every command, stdin
included; --target or `target:` only where the manifest cannot say, and refused, naming both,
where it contradicts the manifest; rows that mix the two owner columns refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.manifest import detect_target, open_manifest
from tests.cli import run_cli, write_csv, write_jsonl, write_yaml

ERROR = "attach-runner: error: "
PAIRS = [("vs_1", "file-1"), ("vs_1", "file-2"), ("vs_2", "file-3")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "yaml"])
def test_detect_target_reads_the_first_row_that_says(tmp_path: Path, fmt: str) -> None:
    """Each format names its target by its owner column; the line that says is kept."""
    writer = {"csv": write_csv, "jsonl": write_jsonl, "yaml": write_yaml}[fmt]
    path = writer(tmp_path / f"m.{fmt}", PAIRS, owner="vector_store_id")
    found = detect_target(open_manifest(str(path), None))
    assert found is not None
    assert (found.target, found.line) == ("vector-store-files", 1 if fmt != "yaml" else 2)
    path = writer(tmp_path / f"a.{fmt}", [("asst_1", "file-1")], owner="assistant_id")
    found = detect_target(open_manifest(str(path), None))
    assert found is not None
    assert found.target == "assistant-files"


def test_grouped_yaml_and_empty_manifests(tmp_path: Path) -> None:
    """`assistants:` names assistant-files; an empty manifest names nothing."""
    (tmp_path / "g.yaml").write_text("\n# files\nassistants:\n  asst_1: [file-1]\n")
    found = detect_target(open_manifest(str(tmp_path / "g.yaml"), None))
    assert found is not None
    assert (found.target, found.line) == ("assistant-files", 3)
    (tmp_path / "e.csv").write_text("")
    assert detect_target(open_manifest(str(tmp_path / "e.csv"), None)) is None


@pytest.mark.parametrize("command", ["run", "validate", "status", "failed", "dry-run"])
def test_every_command_reads_the_target_from_the_manifest(tmp_path: Path, sandbox,
                                                          command: str) -> None:
    """No --target: a vector-store manifest is run against vector stores, whatever the
    command (the old default, assistant-files, would have refused its header)."""
    write_csv(tmp_path / "m.csv", PAIRS, owner="vector_store_id")
    sb = sandbox()
    argv = {"run": ["run", "m.csv", "--base-url", sb.base_url, "--json", "--no-progress"],
            "dry-run": ["run", "m.csv", "--dry-run", "--json"],
            "status": ["status", "m.csv", "--json"]}.get(command, [command, "m.csv"])
    res = run_cli(*argv, cwd=tmp_path)
    assert res.code == 0, res.err
    if command in ("run", "dry-run", "status"):
        assert res.json()["target"] == "vector-store-files"
    elif command == "validate":
        assert "vector-store-files, from the manifest" in res.out
    else:
        assert res.out.startswith("vector_store_id,file_id,")
    record = sb.record()
    assert record["requests"] == (3 if command == "run" else 0)
    if command == "run":
        assert sorted(record["pairs"]) == sorted(f"{o}/{f}" for o, f in PAIRS)


def test_stdin_target_is_read_from_the_spooled_copy(tmp_path: Path, sandbox) -> None:
    """`-`: the spooled copy names the target before any request."""
    sb = sandbox()
    text = "".join(f'{{"assistant_id": "asst_1", "file_id": "file-{i}"}}\n' for i in range(3))
    res = run_cli("run", "-", "--format", "jsonl", "--log", "r.jsonl", "--base-url", sb.base_url,
                  "--json", "--no-progress", stdin=text, cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.json()["target"] == "assistant-files"
    assert sorted(sb.record()["pairs"]) == [f"asst_1/file-{i}" for i in range(3)]


def test_an_empty_manifest_needs_no_target(tmp_path: Path, sandbox) -> None:
    """Nothing to do, exit 0, nothing sent, with no --target."""
    sb = sandbox()
    (tmp_path / "m.jsonl").write_text("")
    res = run_cli("run", "m.jsonl", "--base-url", sb.base_url, "--no-progress", cwd=tmp_path)
    assert res.code == 0, res.err
    assert sb.record()["requests"] == 0


@pytest.mark.parametrize("given", ["flag", "config"])
def test_a_target_that_contradicts_the_manifest_names_both(tmp_path: Path, sandbox,
                                                            given: str) -> None:
    """--target (or `target:` in a config file) against the manifest: exit 2, one line
    naming the manifest's line and the setting, nothing sent."""
    write_jsonl(tmp_path / "m.jsonl", PAIRS, owner="vector_store_id")
    (tmp_path / "cfg.yaml").write_text("rpm: 60\ntarget: assistant-files\n")
    sb = sandbox()
    setting = (["--target", "assistant-files"] if given == "flag"
               else ["--config", "cfg.yaml"])
    named, drop = (("--target assistant-files", "drop --target") if given == "flag" else
                   ("target: assistant-files in cfg.yaml:2", "remove target: from the config "
                    "file"))
    for command in ("run", "validate", "status", "failed"):
        extra = ["--base-url", sb.base_url] if command == "run" else []
        res = run_cli(command, "m.jsonl", *setting, *extra, cwd=tmp_path)
        assert res.err.splitlines() == [
            f'{ERROR}m.jsonl:1: object names "vector_store_id", so the manifest is for '
            f"vector-store-files, but {named} says otherwise; {drop} (the manifest says "
            "which), or give a manifest for assistant-files"], command
        assert res.code == 2
    assert sb.record()["requests"] == 0


def test_a_target_that_agrees_is_taken(tmp_path: Path) -> None:
    write_yaml(tmp_path / "m.yaml", PAIRS, owner="vector_store_id")
    res = run_cli("validate", "m.yaml", "--target", "vector-store-files", cwd=tmp_path)
    assert res.code == 0, res.err


@pytest.mark.parametrize(("file", "text", "expect"), [
    ("m.jsonl",
     '{"vector_store_id": "vs_1", "file_id": "file-1"}\n'
     '{"vector_store_id": "vs_1", "file_id": "file-2"}\n'
     '{"assistant_id": "asst_1", "file_id": "file-3"}\n'
     '{"assistant_id": "asst_1", "file_id": "file-4"}\n',
     ['m.jsonl:3: object names "assistant_id" but line 1 names "vector_store_id"; a manifest is '
      "for one target: move the assistant-files pairs to a manifest of their own",
      'm.jsonl:4: object names "assistant_id" but line 1 names "vector_store_id"; a manifest is '
      "for one target: move the assistant-files pairs to a manifest of their own"]),
    ("m.yaml",
     "items:\n  - {assistant_id: asst_1, file_id: file-1}\n"
     "vector_stores:\n  vs_1: [file-2]\n",
     ['m.yaml:3: "vector_stores:" groups files for vector-store-files, but line 2 is for '
      "assistant-files; a manifest is for one target: move the vector-store-files pairs to a "
      "manifest of their own"]),
    ("m.jsonl",
     '{"vector_store_id": "vs_1", "assistant_id": "asst_1", "file_id": "file-1"}\n',
     ['m.jsonl:1: object names both "assistant_id" and "vector_store_id"; a manifest is for '
      "one target: keep one of them"]),
    ("m.csv", "assistant_id,vector_store_id,file_id\nasst_1,,file-1\n",
     ['m.csv:1: header names both "assistant_id" and "vector_store_id"; a manifest is for one '
      "target: keep one of them"]),
])
def test_rows_that_mix_the_owner_columns_are_refused(tmp_path: Path, sandbox, file: str,
                                                     text: str, expect: list[str]) -> None:
    """Each row of the other kind names the first line of the manifest's own kind."""
    (tmp_path / file).write_text(text)
    sb = sandbox()
    for argv in (["validate", file], ["run", file, "--base-url", sb.base_url]):
        res = run_cli(*argv, cwd=tmp_path)
        assert res.err.splitlines() == [ERROR + line for line in expect]
        assert res.code == 2
    assert sb.record()["requests"] == 0


def test_batch_size_on_a_manifest_of_assistants_is_refused(tmp_path: Path, sandbox) -> None:
    """The vector-store-only settings are checked against the target the manifest names."""
    write_csv(tmp_path / "m.csv", [("asst_1", "file-1")])
    sb = sandbox()
    res = run_cli("run", "m.csv", "--batch-size", "10", "--base-url", sb.base_url, cwd=tmp_path)
    assert res.err.splitlines() == [
        f"{ERROR}--batch-size: batches exist only for vector stores; remove it or attach to "
        "vector stores (a vector_store_id manifest)"]
    assert res.code == 2
    assert sb.record()["requests"] == 0
