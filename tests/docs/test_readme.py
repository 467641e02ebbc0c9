"""The README stays true: its tables match the code, its flags exist, its recording matches the
demo, and its quick start commands are the ones CI runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from runner.cli import HELP, build_parser
from runner.config import CONFIG_KEYS, OPTIONS
from tests.cli import make_pairs, run_cli, write_csv

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
# Flags the README spells wrong on purpose, to show the error that names the closest one.
TYPOS = {"--concurency"}


def section(title: str) -> str:
    """The text of the README section (## or ###) with this title, up to the next heading."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", README + "\n## end",
                      re.MULTILINE | re.DOTALL)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def table(text: str) -> list[list[str]]:
    """The rows of the first Markdown table in `text`, cells stripped, header and rule dropped."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return cells[2:]


def code(cell: str) -> str:
    """`--x N` -> --x N; an empty cell stays empty."""
    return cell.replace("`", "").strip()


def fields(title: str) -> list[str]:
    return [code(row[0]) for row in table(section(title))]


def test_quick_start_has_the_two_commands():
    """The quick start gives exactly the demo and the test commands (CI runs the second)."""
    quick = section("Quick start")
    assert "```sh\npip install . && attach-runner demo\n```" in quick
    assert "```sh\npip install -e '.[test]' && pytest\n```" in quick
    assert "pytest" in (REPO / ".ci" / "run").read_text()


def test_configuration_table_matches_the_options():
    """One row per setting, in order: flag and metavar, off switch, config key, environment
    variable and default are those of runner.config.OPTIONS."""
    rows = table(section("Configuration"))
    expected = [
        [f"{o.flag} {o.metavar}" if o.metavar else o.flag, o.off_flag or "",
         o.name if o.in_config else "", o.env or "", o.default_doc]
        for o in OPTIONS
    ]
    assert [[code(cell) for cell in row[:5]] for row in rows] == expected
    assert all(row[5] for row in rows), "every setting has a meaning"


def test_configuration_table_matches_config_example():
    """The README's config keys are config.example.yaml's, and the example's values are the
    defaults the README shows."""
    example = yaml.safe_load((REPO / "config.example.yaml").read_text(encoding="utf-8"))
    rows = {code(row[2]): code(row[4]) for row in table(section("Configuration")) if row[2]}
    assert list(rows) == list(example) == list(CONFIG_KEYS)
    for key, value in example.items():
        if value is None:
            assert rows[key] in ("none", "by extension", "<manifest>.results.jsonl",
                                 "from the manifest"), key
        elif isinstance(value, bool):
            assert rows[key] == ("on" if value else "off"), key
        else:
            assert rows[key] == str(value), key


def test_every_flag_the_readme_names_exists():
    """Each --flag written in the README is a flag of some command (no stale names)."""
    parser = build_parser()
    known = {s for a in parser._actions for s in a.option_strings}
    for command in parser.commands.values():  # type: ignore[attr-defined]
        known |= {s for a in command._actions for s in a.option_strings}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", README))
    assert named - known == TYPOS


def test_commands_table_lists_every_command():
    """The commands table has a row for each command the CLI has, and no other."""
    commands = [code(row[0]).split()[1] for row in table(section("Commands"))]
    assert commands == list(HELP)


def test_json_fields_are_documented(tmp_path: Path, sandbox):
    """The --json fields table lists exactly the fields a run prints (plus `error`, present
    when a run is refused or stopped), and the status --json and run --dry-run --json tables
    exactly theirs."""
    sb = sandbox()
    manifest = write_csv(tmp_path / "m.csv", make_pairs(1, 2))
    res = run_cli("run", str(manifest), "--base-url", sb.base_url, "--json")
    assert res.code == 0, res.err
    assert fields("The --json fields") == [*json.loads(res.out), "error"]
    status = run_cli("status", str(manifest), "--json")
    assert fields("status --json") == list(json.loads(status.out))
    dry = run_cli("run", str(manifest), "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert fields("run --dry-run --json") == list(json.loads(dry.out))


def test_sync_json_fields_are_documented(tmp_path: Path, sandbox):
    """`sync --json` prints run's fields plus exactly the sync table's, and each `stores`
    entry exactly the store table's fields."""
    sb = sandbox()
    sb.preload("vector_store", "vs_1", ["file-1", "file-x"])
    manifest = write_csv(tmp_path / "m.csv", [("vs_1", "file-1"), ("vs_1", "file-2")],
                         "vector_store_id")
    res = run_cli("sync", str(manifest), "--base-url", sb.base_url, "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    run_fields = fields("The --json fields")
    assert [f for f in out if f not in run_fields] == fields("sync --json")[:4]
    store_fields = []
    for name in fields("sync --json")[4:]:  # the second table, after its header rows
        if name != "field" and not name.startswith("---"):
            store_fields += [part.strip(" `") for part in name.split(",")]
    assert list(out["stores"][0]) == store_fields


def test_demo_recording_matches_the_demo():
    """The README's recording of `attach-runner demo` has the lines the demo prints now (numbers,
    paths and the bar aside), in order."""
    block = re.search(r"```text\n\$ attach-runner demo\n(.*?)```", README, re.DOTALL)
    assert block
    recorded = [line for line in block.group(1).splitlines() if "━" not in line]
    res = run_cli("demo")
    assert res.code == 0, res.out + res.err
    printed = res.out.splitlines()

    def shape(line: str) -> str:
        line = re.sub(r"\S*/\S*", "PATH", line)  # paths and URLs (also "N/M")
        return re.sub(r"\d[\d,.]*", "N", line)

    wanted = [shape(line) for line in recorded]
    got = iter(shape(line) for line in printed)
    missing = [line for line in wanted if not any(line == other for other in got)]
    assert missing == []
