"""The README and the reference pages in docs/ stay true: their tables match the code, the flags
they name exist, the --json fields they list are those the commands print, the demo's
recording matches the demo, the quick start's commands are the ones CI runs, and every link
reaches its page and heading. A fact is checked wherever it lives, README or docs/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import yaml

from runner.cli import HELP, build_parser
from runner.config import CONFIG_KEYS, OPTIONS
from tests.cli import make_pairs, run_cli, write_csv

# The repository root, wherever this file sits under tests/.
REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README_PAGE = "README.md"
# Every page, by its path from the repository root: the README first, then docs/*.md.
PAGES = {
    path.relative_to(REPO).as_posix(): path.read_text(encoding="utf-8")
    for path in [REPO / README_PAGE, *sorted((REPO / "docs").glob("*.md"))]
}
README = PAGES[README_PAGE]
# Flags the README spells wrong on purpose, to show the error that names the closest one.
TYPOS = {"--concurency"}
FENCE = re.compile(r"^```.*?^```[^\n]*$", re.MULTILINE | re.DOTALL)


class Heading(NamedTuple):
    title: str
    body: str  # the text after the heading, up to the next heading of any level


def prose(text: str) -> str:
    """`text` with its fenced code blocks blanked (a `# comment` in a shell block is no
    heading, and a link in a code block is no link); every offset stays where it was."""
    return FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def headings(text: str) -> list[Heading]:
    """The page's headings (#, ## ...) in order, each with its body; code blocks skipped."""
    plain = prose(text)
    marks = list(re.finditer(r"^#+ (.+)$", plain, re.MULTILINE))
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return [Heading(m.group(1).strip(), text[m.end() + 1:end])
            for m, end in zip(marks, ends, strict=True)]


def find(title: str) -> tuple[str, str]:
    """(page, body) of the one section, among README.md and docs/*.md, with this title."""
    found = [(page, h.body) for page, text in PAGES.items() for h in headings(text)
             if h.title == title]
    assert len(found) == 1, f"{len(found)} sections titled {title!r} in {list(PAGES)}"
    return found[0]


def section(title: str) -> str:
    """The text of the section with this title, wherever it lives, up to the next heading."""
    return find(title)[1]


def table(text: str) -> list[list[str]]:
    """The rows of the first Markdown table in `text`, cells stripped, header and rule dropped."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return cells[2:]


def code(cell: str) -> str:
    """`--x N` -> --x N; an empty cell stays empty."""
    return cell.replace("`", "").strip()


def fields(title: str) -> list[str]:
    """The first column of the section's table, one name a row (`a`, `b` rows split)."""
    names = []
    for row in table(section(title)):
        names += [code(part) for part in row[0].split(",")]
    return names


def slug(title: str, seen: dict[str, int]) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens; a
    repeated anchor on one page gets -1, -2..."""
    base = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
    count = seen.get(base, 0)
    seen[base] = count + 1
    return base if count == 0 else f"{base}-{count}"


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    return {slug(h.title, seen) for h in headings(text)}


def test_quick_start_has_the_two_commands():
    """The README's quick start gives exactly the demo and the test commands (CI runs the
    second)."""
    page, quick = find("Quick start")
    assert page == README_PAGE
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
    """The documented config keys are config.example.yaml's, and the example's values are the
    defaults the table shows."""
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


def test_every_flag_the_docs_name_exists():
    """Each --flag written in the README or a docs/ page is a flag of some command (no stale
    names); only the README's deliberate typo is not."""
    parser = build_parser()
    known = {s for a in parser._actions for s in a.option_strings}
    for command in parser.commands.values():  # type: ignore[attr-defined]
        known |= {s for a in command._actions for s in a.option_strings}
    flag = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
    stale = {page: set(flag.findall(text)) - known for page, text in PAGES.items()}
    assert stale.pop(README_PAGE) == TYPOS
    assert {page: names for page, names in stale.items() if names} == {}


def test_commands_table_lists_every_command():
    """The commands table has a row for each command the CLI has, and no other."""
    commands = [code(row[0]).split()[1] for row in table(section("Commands"))]
    assert commands == list(HELP)


def test_json_fields_are_documented(tmp_path: Path, sandbox):
    """The run --json table lists exactly the fields a run prints (plus `error`, present when
    a run is refused or stopped), and the status --json and run --dry-run --json tables
    exactly theirs."""
    sb = sandbox()
    manifest = write_csv(tmp_path / "m.csv", make_pairs(1, 2))
    res = run_cli("run", str(manifest), "--base-url", sb.base_url, "--json")
    assert res.code == 0, res.err
    assert fields("run --json") == [*json.loads(res.out), "error"]
    status = run_cli("status", str(manifest), "--json")
    assert fields("status --json") == list(json.loads(status.out))
    dry = run_cli("run", str(manifest), "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert fields("run --dry-run --json") == list(json.loads(dry.out))


def test_sync_json_fields_are_documented(tmp_path: Path, sandbox):
    """`sync --json` prints run's fields plus exactly the sync table's, each `stores` entry
    exactly the store table's fields, and `sync --dry-run --json` exactly its table's."""
    sb = sandbox()
    sb.preload("vector_store", "vs_1", ["file-1", "file-x"])
    manifest = write_csv(tmp_path / "m.csv", [("vs_1", "file-1"), ("vs_1", "file-2")],
                         "vector_store_id")
    dry = run_cli("sync", str(manifest), "--base-url", sb.base_url, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    planned = json.loads(dry.out)
    assert fields("sync --dry-run --json") == list(planned)
    res = run_cli("sync", str(manifest), "--base-url", sb.base_url, "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    run_fields = fields("run --json")
    assert [f for f in out if f not in run_fields] == fields("sync --json")
    store_fields = fields("Each `stores` entry")
    assert list(out["stores"][0]) == store_fields
    assert list(planned["stores"][0]) == store_fields


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


def test_links_reach_their_page_and_heading():
    """Every relative link of the README and docs/ names a file or folder of the repository,
    and every #anchor a heading of the page it names."""
    broken = []
    for page, text in PAGES.items():
        here = (REPO / page).parent
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(text)):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            resolved = (here / path).resolve() if path else REPO / page
            if not resolved.exists():
                broken.append(f"{page}: {target} (no such file)")
            elif anchor and anchor not in anchors(resolved.read_text(encoding="utf-8")):
                broken.append(f"{page}: {target} (no such heading)")
    assert broken == []


def test_every_docs_page_is_linked_from_the_readme():
    """The README links each reference page of docs/, so none is an orphan."""
    linked = {target.partition("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", README)}
    pages = {page for page in PAGES if page.startswith("docs/")}
    assert pages, "docs/ has no pages"
    assert pages - linked == set()


def test_code_points_to_docs_that_exist():
    """A docs page the code names (`docs/sandbox.md ("Rules it follows")`, say) exists, with
    the sections named."""
    cited = re.compile(r'(docs/[\w-]+\.md)(?: \(((?:"[^"]+"(?:, )?)+)\))?')
    missing = []
    for source in sorted((REPO / "runner").rglob("*.py")):
        for page, titles in cited.findall(source.read_text(encoding="utf-8")):
            if page not in PAGES:
                missing.append(f"{source.relative_to(REPO)}: {page}")
                continue
            have = {h.title for h in headings(PAGES[page])}
            missing += [f"{source.relative_to(REPO)}: {page} {title!r}"
                        for title in re.findall(r'"([^"]+)"', titles) if title not in have]
    assert missing == []
