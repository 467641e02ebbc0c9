"""Bad input: every wrong thing a user can hand `run` gets one line, exit 2, and no request.

Each case is a real file (most under tests/data/bad/) or command line, run through the real CLI
(`python -m runner run ...`) in its own directory against a sandbox, whose record proves that
nothing was sent. The line is `attach-runner: error: <where>: <what>; <what to do>`; warnings
may add lines of their own, a traceback never appears.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runner.cli import main
from tests.cli import SANDBOX_KEY, cli_env, main_in, make_a_worker_raise, run_cli

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
ERROR = "attach-runner: error: "
ERROR_LINE = re.compile(
    r"^attach-runner: error: (?P<where>[^;]+?): (?P<what>[^;]+); (?P<todo>\S.*)$")
ID_RULE = "IDs may hold only A-Z a-z 0-9 _ - (1 to 128 characters)"
# A key that may be typed where it does not belong; it must never be echoed.
SENTINEL = "sk-SENTINEL-" + secrets.token_hex(16)
GOOD_CSV = "assistant_id,file_id\nasst_1,file-1\nasst_2,file-2\n"


@dataclass(frozen=True)
class Case:
    """One bad input. `argv` follows `run`; `expect` is the whole message after the prefix."""

    argv: tuple[str, ...]
    expect: str
    files: tuple[str, ...] = ()  # names under tests/data/bad, copied into the run's directory
    env: Mapping[str, str] = field(default_factory=dict)
    key: str | None = SANDBOX_KEY  # OPENAI_API_KEY for the run
    setup: Callable[[Path], None] | None = None  # makes what a data file cannot hold
    base_url: bool = True  # pass --base-url <sandbox> (off where the base URL is the case)
    lock_ok: bool = False  # the case is found under the lock, so a lock file may be left
    command: str = "run"


def good(tmp: Path, name: str = "m.csv") -> None:
    (tmp / name).write_text(GOOD_CSV)


def write(name: str, content: str | bytes, *, also_good: bool = True) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        if also_good:
            good(tmp)

    return setup


def ten_megabyte_line(tmp: Path) -> None:
    with open(tmp / "long.csv", "w") as f:
        f.write("assistant_id,file_id\n")
        f.write("asst_1," + "x" * (10 << 20) + "\n")


def fifo(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        good(tmp)
        os.mkfifo(tmp / name)

    return setup


def directory(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        good(tmp)
        (tmp / name).mkdir()

    return setup


def symlink_loop(tmp: Path) -> None:
    (tmp / "a.csv").symlink_to("b.csv")
    (tmp / "b.csv").symlink_to("a.csv")


def key_file(text: str, mode: int) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        good(tmp)
        path = tmp / "key.txt"
        path.write_text(text)
        path.chmod(mode)

    return setup


def log_lines(*lines: str) -> Callable[[Path], None]:
    return write("m.csv.results.jsonl", "".join(line + "\n" for line in lines))


def docs_and(name: str, manifest: str) -> Callable[[Path], None]:
    """docs/ (a file file search takes, an empty one, one over 512 MB, one of another
    extension), and the manifest `name` beside it ("{tmp}" standing for the folder)."""
    def setup(tmp: Path) -> None:
        docs = tmp / "docs"
        docs.mkdir()
        (docs / "a.md").write_text("A")
        (docs / "empty.md").write_text("")
        (docs / "notes.xyz").write_text("N")
        with open(docs / "big.txt", "wb") as big:  # sparse: no disk used
            big.truncate(512 * 1024 * 1024 + 1)
        (tmp / name).write_text(manifest.replace("{tmp}", str(tmp)))

    return setup


def path_case(path: str, expect: str, *, file_id: str = "",
              command: str = "run") -> Case:
    """A CSV naming `path` on line 2, after docs/ is made; `{tmp}` in `expect` is the folder."""
    return Case(("m.csv",), "m.csv:" + expect, command=command,
                setup=docs_and("m.csv", f"vector_store_id,file_id,path\nvs_1,{file_id},{path}\n"))


EVENT = '{"event":"run-start","ts":"2026-01-01T00:00:00.000Z","run":"r1","manifest":"m.csv"}'
NOT_OURS = "this file is not an attach-runner log or was edited: move it away or pass another --log"
TLS = ("TLS verification cannot be turned off; to trust a private CA, set SSL_CERT_FILE to its "
       "certificate (plain http works only to loopback)")
KEY_FLAG = ("the API key is never given on the command line; export it in OPENAI_API_KEY (or "
            "name its variable with --api-key-env NAME, or its file with --api-key-file FILE)")
HTTP_ONLY_LOOPBACK = "plain http is allowed only to a loopback host (127.0.0.1, ::1, localhost)"
JSONL_EXAMPLE = 'write one object a line, like {"assistant_id": "asst_abc", "file_id": "file-1"}'
# Where nothing in the manifest names its target, its messages speak of vector stores.
JSONL_EXAMPLE_VS = ('write one object a line, like {"vector_store_id": "vs_abc", '
                    '"file_id": "file-1"}')


def bad(name: str, expect: str, *extra: str) -> Case:
    """A manifest from tests/data/bad, run as it is."""
    return Case((name, *extra), f"{name}:{expect}", files=(name,))


def config(name: str, expect: str, *, base_url: bool = True) -> Case:
    """A config file from tests/data/bad, given to --config for a good manifest."""
    return Case(("m.csv", "--config", name), f"{name}:{expect}", files=(name,), setup=good,
                base_url=base_url)


def flag(*argv: str, expect: str, setup: Callable[[Path], None] = good,
         env: Mapping[str, str] | None = None, base_url: bool = True) -> Case:
    """Flags (or environment variables) with a good manifest."""
    return Case(("m.csv", *argv), expect, setup=setup, env=env or {}, base_url=base_url)


CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ CSV manifests
    "csv-column-missing-on-one-row": bad(
        "csv-column-missing.csv",
        "3: row has 1 field but the header has 2; give every row a value for each column"),
    "csv-duplicated-header-names": bad(
        "csv-duplicated-header.csv",
        '1: header names "file_id" twice; give each column its own name'),
    "csv-nul-byte": bad(
        "csv-nul-byte.csv", "2: line holds a NUL byte; save the file as plain UTF-8 text"),
    "csv-10mb-single-line": Case(
        ("long.csv",), "long.csv:2: line is longer than 1 MiB; put one pair on each line",
        setup=ten_megabyte_line),
    "csv-id-with-space": bad(
        "csv-id-with-space.csv", f'2: assistant_id "asst 1" is not a valid ID; {ID_RULE}'),
    "csv-id-over-128-chars": bad(
        "csv-id-too-long.csv",
        f'2: file_id "file-{"x" * 35}..." (129 characters) is not a valid ID; {ID_RULE}'),
    "csv-id-with-path-slashes": bad(
        "csv-id-with-slash.csv", f'2: file_id "../../files/file-1" is not a valid ID; {ID_RULE}'),
    "csv-not-utf8": bad(
        "csv-not-utf8.csv",
        "2: line is not UTF-8 (byte 0xe9 at column 16); save the file as UTF-8"),
    "csv-utf16": bad("csv-utf16.csv", "1: file is UTF-16 text; save it as UTF-8"),
    "csv-no-file-id-column": bad(
        "csv-no-file-id-column.csv",
        '1: header has no "file_id" column; the header row must name assistant_id and file_id'),
    "csv-target-contradicts-manifest": bad(
        "csv-wrong-target-column.csv",
        '1: header names "vector_store_id", so the manifest is for vector-store-files, but '
        "--target assistant-files says otherwise; drop --target (the manifest says which), or "
        "give a manifest for assistant-files", "--target", "assistant-files"),
    # A row `failed` wrote after a detach: `run` would attach what the user meant to detach.
    "csv-op-detach-row": Case(
        ("f.csv",), "f.csv:3: op is detach: this manifest detaches (as `failed` writes it after "
        "a detach); run it with `attach-runner detach`, not `run`",
        setup=write("f.csv", "vector_store_id,file_id,op\nvs_1,file-1,attach\n"
                             "vs_1,file-2,detach\n", also_good=False)),
    "jsonl-op-detach-row": Case(
        ("f.jsonl",), "f.jsonl:2: op is detach: this manifest detaches (as `failed` writes it "
        "after a detach); run it with `attach-runner detach`, not `run`",
        setup=write("f.jsonl", '{"vector_store_id": "vs_1", "file_id": "file-1"}\n'
                               '{"vector_store_id": "vs_1", "file_id": "file-2", '
                               '"op": "detach"}\n', also_good=False)),
    "csv-extra-unquoted-comma": bad(
        "csv-extra-field.csv",
        "2: row has 3 fields but the header has 2; quote a value that holds a comma, or name "
        "every column in the header"),
    "csv-quote-never-closed": bad(
        "csv-unclosed-quote.csv",
        '2: a quoted value is never closed (no closing "); close the quote or remove it'),
    "csv-text-after-closing-quote": bad(
        "csv-text-after-quote.csv",
        '2: text follows a closing quote (like "asst_1"x); quote the whole value or none of it'),
    "csv-empty-id": bad(
        "csv-empty-id.csv", "2: file_id is empty; every row needs assistant_id and file_id"),
    "csv-lone-carriage-return": bad(
        "csv-lone-cr.csv",
        "2: row holds a lone carriage return (\\r); save the file with \\n or \\r\\n line ends"),
    # ------------------------------------------------------------------ YAML manifests
    "yaml-a-list": bad(
        "yaml-list.yaml",
        '1: manifest is a list; put it under "items:", or group files under "vector_stores:"'),
    "yaml-a-scalar": bad(
        "yaml-scalar.yaml",
        '1: manifest is a single value, not a mapping; start it with "items:" or '
        '"vector_stores:"'),
    "yaml-grouped-with-non-list": bad(
        "yaml-grouped-not-list.yaml",
        '2: files of "asst_1" are a string, not a list; write asst_1: [file-1, file-2]'),
    "yaml-duplicate-keys": bad(
        "yaml-duplicate-keys.yaml",
        '3: key "asst_1" appears twice in one mapping (first on line 2); keep one, merging what '
        "they hold"),
    "yaml-alias-bomb": bad(
        "yaml-alias-bomb.yaml",
        "2: YAML aliases are not allowed in a manifest; write each value out"),
    "yaml-bad-syntax": bad(
        "yaml-bad-syntax.yaml",
        "2: YAML syntax error: while parsing a flow mapping, expected ',' or '}', but got "
        "'<stream end>'; fix the YAML on this line"),
    "yaml-unknown-top-key": bad(
        "yaml-unknown-top-key.yaml",
        '1: unknown key "itemz" at the top of the manifest; use "items:" or "vector_stores:"'),
    "yaml-target-contradicts-manifest": bad(
        "yaml-wrong-group.yaml",
        '1: "vector_stores:" key, so the manifest is for vector-store-files, but --target '
        "assistant-files says otherwise; drop --target (the manifest says which), or give a "
        "manifest for assistant-files", "--target", "assistant-files"),
    "yaml-number-as-id": bad(
        "yaml-number-id.yaml", '2: file_id is a number, not a string; quote it: "123"'),
    "yaml-items-not-a-list": bad(
        "yaml-items-not-list.yaml",
        '2: "items:" is a mapping, not a list; write "- {vector_store_id: vs_abc, file_id: '
        'file-1}" lines'),
    "yaml-two-documents": bad(
        "yaml-two-documents.yaml",
        "2: YAML syntax error: expected a single document in the stream, but found another "
        "document; fix the YAML on this line"),
    "yaml-python-tag": bad(
        "yaml-python-tag.yaml", "2: file_id is a list, not a string; give one ID per item"),
    "yaml-nested-too-deep": bad(
        "yaml-deep-nesting.yaml", "1: YAML is nested more than 32 levels deep; a manifest needs 4"),
    # ------------------------------------------------------------------ JSONL manifests
    "jsonl-trailing-comma": bad(
        "jsonl-trailing-comma.jsonl",
        "1: line is not valid JSON (Expecting property name enclosed in double quotes at column "
        f"48); {JSONL_EXAMPLE_VS}"),
    "jsonl-array-line": bad(
        "jsonl-array-line.jsonl", f"2: line is not a JSON object (it is a list); {JSONL_EXAMPLE}"),
    "jsonl-non-string-id": bad(
        "jsonl-non-string-id.jsonl", '1: file_id is a number, not a string; quote it: "7"'),
    "jsonl-missing-key": bad(
        "jsonl-missing-key.jsonl",
        '1: object has no "file_id"; every object needs assistant_id and file_id'),
    "jsonl-duplicate-key": bad(
        "jsonl-duplicate-key.jsonl", '1: key "file_id" appears twice in one object; keep one'),
    "jsonl-null-id": bad(
        "jsonl-null-id.jsonl", "1: file_id is empty; every object needs assistant_id and file_id"),
    "jsonl-not-utf8": bad(
        "jsonl-not-utf8.jsonl",
        "1: line is not UTF-8 (byte 0xe9 at column 43); save the file as UTF-8"),
    # ------------------------------------------------------------------ local files (path)
    "path-missing": path_case(
        "docs/nope.md", '2: path "docs/nope.md" does not exist ({tmp}/docs/nope.md); check the '
        "name, or the folder it is relative to (the manifest's)"),
    "path-a-folder": path_case(
        "docs", '2: path "docs" is a folder; name a file, or a glob such as folder/**/*.md for '
        "what is in a folder"),
    "path-empty-file": path_case(
        "docs/empty.md", '2: path "docs/empty.md" is empty; leave it out: an empty file has '
        "nothing to search"),
    "path-over-512-mb": path_case(
        "docs/big.txt", '2: path "docs/big.txt" is 512 MB, over file search\'s 512 MB; split '
        "it, or leave it out"),
    "path-extension-not-taken": path_case(
        "docs/notes.xyz", '2: path "docs/notes.xyz" is a .xyz file, which file search does not '
        "take; convert it to one of c cpp cs css doc docx go html java js json md pdf php pptx "
        "py rb sh tex ts txt, or leave it out"),
    "path-glob-matches-nothing": path_case(
        "docs/e*", '2: glob "docs/e*" matches no file file search can take (1 file '
        "skipped: 1 empty: {tmp}/docs); check the folder is there (and mounted) and the "
        "pattern"),
    "path-glob-folder-missing": path_case(
        "mnt/share/*.md", '2: glob "mnt/share/*.md" matches no file file search can take (its '
        "folder is not there: {tmp}/mnt/share); check the folder is there (and mounted) and "
        "the pattern"),
    "path-and-file-id": path_case(
        "docs/a.md", "2: row gives both file_id and path; give one: file_id for a file already "
        "uploaded, path for a local file to upload", file_id="file-1"),
    "path-on-assistants": Case(
        ("m.jsonl",), "m.jsonl:1: path names a local file to upload, which only vector stores "
        "take; for assistant-files give the file_id of an uploaded file instead",
        setup=docs_and("m.jsonl", '{"assistant_id": "asst_1", "path": "docs/a.md"}\n')),
    "path-two-rows-other-options": Case(
        ("m.csv",), 'm.csv:3: file "docs/a.md" is matched for vs_1 with other options than on '
        "line 2; give the file one set of attributes and chunking_strategy: narrow one of the "
        "globs, or give both rows the same options",
        setup=docs_and("m.csv", 'vector_store_id,path,attributes\nvs_1,docs/*.md,"{""a"": 1}"\n'
                                "vs_1,docs/a.md,\n")),
    "sync-path-missing": path_case(
        "docs/nope.md", '2: path "docs/nope.md" does not exist ({tmp}/docs/nope.md); check the '
        "name, or the folder it is relative to (the manifest's)", command="sync"),
    # detach takes a path named without a glob as the log recorded it (the file may be
    # gone), but a glob that matches nothing is still an error.
    "detach-glob-matches-nothing": path_case(
        "gone/*.md", '2: glob "gone/*.md" matches no file file search can take (its folder '
        "is not there: {tmp}/gone); check the folder is there (and mounted) and the pattern",
        command="detach"),
    # ------------------------------------------------------------------ config files
    "config-unknown-key-suggests": config(
        "config-unknown-key.yaml", '2: unknown setting "concurency"; did you mean "concurrency"?'),
    "config-wrong-type": config(
        "config-wrong-type.yaml", '1: concurrency: "lots" is not a whole number; give 1 to 1024'),
    "config-number-in-quotes": config(
        "config-quoted-number.yaml",
        '1: concurrency: got text "8" in quotes; give 1 to 1024 without quotes'),
    "config-zero-concurrency": config(
        "config-zero-concurrency.yaml", "1: concurrency: 0 is out of range; give 1 to 1024"),
    "config-negative-rpm": config(
        "config-negative-rpm.yaml", "1: rpm: -60 is out of range; give auto or 1 to 1000000"),
    "config-zero-attempts": config(
        "config-zero-attempts.yaml", "1: max_attempts: 0 is out of range; give 1 to 100"),
    "config-zero-timeout": config(
        "config-zero-timeout.yaml",
        "1: timeout: 0 is out of range; give a number of seconds above 0 and at most 3600"),
    "config-negative-timeout": config(
        "config-negative-timeout.yaml",
        "1: timeout: -5 is out of range; give a number of seconds above 0 and at most 3600"),
    "config-bad-yaml": config(
        "config-bad-yaml.yaml",
        "2: not valid YAML (expected ',' or ']', but got '<stream end>'); fix the file (see "
        "config.example.yaml)"),
    "config-a-list": config(
        "config-list.yaml",
        "1: the config file is a list, not a mapping of settings; write one `setting: value` a "
        "line (see config.example.yaml)"),
    "config-plain-http-base-url": config(
        "config-plain-http.yaml",
        f"1: base_url: {HTTP_ONLY_LOOPBACK}; use https://api.example.com/v1", base_url=False),
    "config-yes-for-true": config(
        "config-yes-for-true.yaml", '1: wait: "yes" is not true or false; give true or false'),
    "config-set-twice": config(
        "config-set-twice.yaml", '2: "concurrency" is set twice (first on line 1); keep one'),
    "config-control-character": config(
        "config-control-char.yaml", "2: a character YAML does not allow (#x0007); remove it"),
    "config-not-utf8": config(
        "config-not-utf8.yaml", "1: not UTF-8 text; save the config file as UTF-8"),
    "config-batches-for-assistants": config(
        "config-batch-for-assistants.yaml",
        "1: batch_size: batches exist only for vector stores; remove it or attach to vector "
        "stores (a vector_store_id manifest)"),
    "config-holds-api-key": Case(
        ("m.csv", "--config", "cfg.yaml"),
        "cfg.yaml:2: an API key does not belong in a config file; put it in the OPENAI_API_KEY "
        "environment variable (or use --api-key-file)",
        setup=write("cfg.yaml", f"concurrency: 4\napi_key: {SENTINEL}\n")),
    "config-holds-token": Case(
        ("m.csv", "--config", "cfg.yaml"),
        "cfg.yaml:1: an API key does not belong in a config file; put it in the OPENAI_API_KEY "
        "environment variable (or use --api-key-file)",
        setup=write("cfg.yaml", f"openai_token: {SENTINEL}\n")),
    "config-key-as-org": Case(
        ("m.csv", "--config", "cfg.yaml"),
        "cfg.yaml:1: org: the value looks like an API key, not an organization ID; put the key "
        "in OPENAI_API_KEY (or a file for --api-key-file) and give an organization ID here "
        "(e.g. org-abc123)",
        setup=write("cfg.yaml", f"org: {SENTINEL}\n")),
    "config-key-in-yaml-alias": Case(
        ("m.csv", "--config", "cfg.yaml"),
        "cfg.yaml:1: not valid YAML (found undefined alias '(a value that looks like an API "
        "key)'); fix the file (see config.example.yaml)",
        setup=write("cfg.yaml", f"org: *{SENTINEL}\n")),
    "config-missing": flag(
        "--config", "none.yaml",
        expect="none.yaml: no such config file; check the path given to --config"),
    "config-a-directory": flag(
        "--config", "conf.d", setup=directory("conf.d"),
        expect="conf.d: is a directory; give --config the path of a YAML file"),
    "config-a-fifo": flag(
        "--config", "cfg.fifo", setup=fifo("cfg.fifo"),
        expect="cfg.fifo: not a regular file; give --config the path of a YAML file"),
    # ------------------------------------------------------------------ flags
    "flag-concurrency-not-a-number": flag(
        "--concurrency", "lots",
        expect='--concurrency: "lots" is not a whole number; give 1 to 1024'),
    "flag-concurrency-zero": flag(
        "--concurrency", "0", expect="--concurrency: 0 is out of range; give 1 to 1024"),
    "flag-concurrency-too-high": flag(
        "--concurrency", "5000", expect="--concurrency: 5000 is out of range; give 1 to 1024"),
    "flag-rpm-negative": flag(
        "--rpm", "-1", expect="--rpm: -1 is out of range; give auto or 1 to 1000000"),
    "flag-rpm-not-whole": flag(
        "--rpm", "1.5", expect='--rpm: "1.5" is not a whole number or auto; give auto or 1 to '
                               "1000000"),
    "flag-max-attempts-zero": flag(
        "--max-attempts", "0", expect="--max-attempts: 0 is out of range; give 1 to 100"),
    "flag-timeout-zero": flag(
        "--timeout", "0", expect="--timeout: 0 is out of range; give a number of seconds above 0 "
                                 "and at most 3600"),
    "flag-timeout-nan": flag(
        "--timeout", "nan", expect='--timeout: "nan" is not a number of seconds; give a number '
                                   "above 0 and at most 3600"),
    "flag-batch-size-too-big": flag(
        "--target", "vector-store-files", "--batch-size", "2001",
        expect="--batch-size: 2001 is out of range; give 0 to 2000"),
    "flag-wait-for-assistants": flag(
        "--wait", expect="--wait: waiting for processing applies only to vector stores; remove it "
                         "or attach to vector stores (a vector_store_id manifest)"),
    "flag-target-typo-suggests": flag(
        "--target", "assistant", expect='--target: unknown target "assistant"; did you mean '
                                        '"assistant-files"?'),
    "flag-format-unknown": flag(
        "--format", "xml", expect='--format: unknown format "xml"; give csv, yaml or jsonl'),
    "flag-unknown-suggests-closest": flag(
        "--concurency", "4", expect="--concurency: unknown option; did you mean --concurrency?"),
    "flag-of-another-command": flag(
        "--port", "8080", expect="--port: not an option of run (only of sandbox); see "
                                 "attach-runner run --help"),
    "flag-api-key-value-never-echoed": flag(
        f"--api-key={SENTINEL}", expect=f"--api-key: {KEY_FLAG}"),
    "flag-key-shaped-positional": flag(
        SENTINEL, expect='"(a value that looks like an API key)": unexpected argument; '
                         "attach-runner run takes one MANIFEST (quote a path with spaces); see "
                         "attach-runner run --help"),
    "flag-key-as-org": flag(
        "--org", SENTINEL,
        expect="--org: the value looks like an API key, not an organization ID; put the key in "
               "OPENAI_API_KEY (or a file for --api-key-file) and give an organization ID here "
               "(e.g. org-abc123)"),
    "flag-key-as-api-key-env": flag(
        "--api-key-env", SENTINEL,
        expect="--api-key-env: not a variable name; give the NAME of the variable that holds the "
               "key (e.g. OPENAI_API_KEY), not the key itself"),
    "flag-insecure": flag("--insecure", expect=f"--insecure: {TLS}"),
    "flag-no-verify-ssl": flag("--no-verify-ssl", expect=f"--no-verify-ssl: {TLS}"),
    "flag-base-url-not-a-url": flag(
        "--base-url", "api.openai.com", base_url=False,
        expect='--base-url: "api.openai.com" is not a URL; give e.g. https://api.openai.com/v1'),
    "flag-base-url-plain-http-remote": flag(
        "--base-url", "http://api.example.com/v1", base_url=False,
        expect=f"--base-url: {HTTP_ONLY_LOOPBACK}; use https://api.example.com/v1"),
    "flag-base-url-with-password": flag(
        "--base-url", f"https://user:{SENTINEL}@api.example.com/v1", base_url=False,
        expect="--base-url: the URL holds a user name or password; remove it (give e.g. "
               "https://api.openai.com/v1)"),
    "unknown-command-suggests": Case(
        ("m.csv",), '"rnu": unknown command; did you mean run? the commands are run, detach, '
                    "sync, validate, status, failed, sandbox, demo (see attach-runner --help)",
        command="rnu"),
    "no-manifest-given": Case(
        (), "attach-runner run: the following arguments are required: MANIFEST; see "
            "attach-runner run --help"),
    "stdin-without-log": Case(
        ("-", "--format", "csv"), '--log: required when the manifest is "-" (stdin); give --log '
                                  "FILE for the result log"),
    "stdin-without-format": Case(
        ("-", "--log", "r.jsonl"), '--format: required when the manifest is "-" (stdin); give '
                                   "--format csv, yaml or jsonl"),
    # ------------------------------------------------------------------ environment
    "env-base-url-not-a-url": flag(
        env={"OPENAI_BASE_URL": "localhost:8080"}, base_url=False,
        expect='OPENAI_BASE_URL: "localhost:8080" is not a URL; give e.g. '
               "https://api.openai.com/v1"),
    "env-base-url-plain-http-remote": flag(
        env={"OPENAI_BASE_URL": "http://10.1.2.3:8080/v1"}, base_url=False,
        expect=f"OPENAI_BASE_URL: {HTTP_ONLY_LOOPBACK}; use https://10.1.2.3:8080/v1"),
    "env-org-with-space": flag(
        env={"OPENAI_ORG_ID": "org abc"},
        expect='OPENAI_ORG_ID: "org abc" is not an organization ID; it may hold no spaces, '
               "control or non-ASCII characters (e.g. org-abc123)"),
    # ------------------------------------------------------------------ files
    "manifest-missing": Case(("none.csv",), "none.csv: no such file; check the path"),
    "manifest-a-directory": Case(
        ("jobs.csv",), "jobs.csv: is a directory; give the path of a manifest file",
        setup=directory("jobs.csv")),
    "manifest-symlink-loop": Case(
        ("a.csv",), "a.csv: cannot be read (Too many levels of symbolic links); check the path",
        setup=symlink_loop),
    "manifest-a-device": Case(
        ("/dev/zero", "--format", "csv", "--log", "r.jsonl"),
        "/dev/zero: not a file or a pipe (a device or socket); give the path of a manifest "
        "file, or - for stdin"),
    "manifest-unknown-extension": Case(
        ("pairs.txt",), "pairs.txt: cannot tell the format from the name (.csv, .yaml, .yml, "
                        ".jsonl); pass --format csv|yaml|jsonl",
        setup=write("pairs.txt", GOOD_CSV)),
    "manifest-name-with-newline": Case(
        ("night\nly.csv",), "night\\nly.csv: no such file; check the path"),
    "manifest-path-empty": Case(
        ("",), "MANIFEST: the path is empty; give a manifest file, or - for stdin"),
    "log-in-missing-directory": flag(
        "--log", "logs/m.jsonl",
        expect="logs/m.jsonl: its directory does not exist; create it or pass another --log"),
    "log-a-directory": flag(
        "--log", "logs", setup=directory("logs"),
        expect="logs: is a directory; pass a file path to --log"),
    "log-a-fifo": flag(
        "--log", "log.fifo", setup=fifo("log.fifo"),
        expect="log.fifo: not a regular file; pass a file path to --log"),
    "log-not-ours": flag(
        "--log", "notes.txt", setup=write("notes.txt", "shopping: milk, eggs\n"),
        expect=f"notes.txt:1: not a valid result log line (not JSON); {NOT_OURS}"),
    "log-corrupt-in-the-middle": Case(
        ("m.csv",), f"m.csv.results.jsonl:2: not a valid result log line (not JSON); {NOT_OURS}",
        setup=log_lines(EVENT, '{"event":"sent","ts":', EVENT), lock_ok=True),
    "log-line-without-run": Case(
        ("m.csv",), f'm.csv.results.jsonl:2: not a valid result log line (no "event" and "run" '
                    f"strings); {NOT_OURS}",
        setup=log_lines(EVENT, '{"event":"sent"}', EVENT), lock_ok=True),
    # ------------------------------------------------------------------ the key
    "key-missing": Case(
        ("m.csv",), "OPENAI_API_KEY: not set; export your API key in it (or pass --api-key-env "
                    "NAME or --api-key-file FILE)", setup=good, key=None),
    "key-blank": Case(
        ("m.csv",), "OPENAI_API_KEY: not set; export your API key in it (or pass --api-key-env "
                    "NAME or --api-key-file FILE)", setup=good, key="  \n"),
    "key-with-a-space": Case(
        ("m.csv",), "OPENAI_API_KEY: the key has a space or line break inside; set "
                    "OPENAI_API_KEY to the key alone", setup=good, key=f"Bearer {SENTINEL}"),
    "key-named-variable-unset": flag(
        "--api-key-env", "NIGHTLY_KEY",
        expect="NIGHTLY_KEY: not set; export your API key in it (or pass --api-key-env NAME or "
               "--api-key-file FILE)"),
    "key-file-mode-0644": flag(
        "--api-key-file", "key.txt", setup=key_file(SENTINEL + "\n", 0o644),
        expect="key.txt: the key file is readable by others (mode 0644); run chmod 600 key.txt"),
    "key-file-empty": flag(
        "--api-key-file", "key.txt", setup=key_file("\n", 0o600),
        expect="key.txt: the key file is empty; put your API key in it"),
    "key-file-missing": flag(
        "--api-key-file", "key.txt",
        expect="key.txt: no such key file; check --api-key-file"),
    "key-file-a-fifo": flag(
        "--api-key-file", "key.fifo", setup=fifo("key.fifo"),
        expect="key.fifo: not a regular file; give --api-key-file a file holding the key"),
    "key-given-as-key-file": flag(
        "--api-key-file", SENTINEL,
        expect="--api-key-file: the value looks like an API key, not a file path; put the key in "
               "a file (chmod 600) and give its path"),
}


def run_case(case: Case, tmp: Path, base_url: str, *extra: str):
    for name in case.files:
        shutil.copy(BAD / name, tmp / name)
    if case.setup is not None:
        case.setup(tmp)
    argv = [case.command, *case.argv, "--no-progress", *extra]
    if case.base_url:
        argv += ["--base-url", base_url]
    (tmp / "tmp").mkdir(exist_ok=True)
    env = {"TMPDIR": str(tmp / "tmp"), **case.env}
    return run_cli(*argv, env=env, cwd=tmp, key=case.key, timeout=60)


def assert_one_error_line(err: str, expect: str) -> str:
    """Exactly one error line (warnings aside), in the where: what; what to do shape."""
    lines = [line for line in err.splitlines() if not line.startswith("attach-runner: warning: ")]
    assert lines == [ERROR + expect]
    assert ERROR_LINE.match(lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_sent(tmp_path: Path, sandbox, case: Case):
    """Exit 2, one `where: what; what to do` line, no traceback, no request, no stray lock."""
    sb = sandbox()
    res = run_case(case, tmp_path, sb.base_url)
    assert "Traceback" not in res.out + res.err
    assert_one_error_line(res.err, case.expect.replace("{tmp}", str(tmp_path)))
    assert res.code == 2
    assert res.out == ""
    assert sb.record()["requests"] == 0
    assert SENTINEL not in res.out + res.err
    assert SENTINEL[12:-4] not in res.out + res.err
    assert not list((tmp_path / "tmp").iterdir()), "no crash report, no spooled leftovers"
    if not case.lock_ok:
        assert not list(tmp_path.glob("*.lock")), "refused before the lock file was made"


@pytest.mark.parametrize("name", ["csv-nul-byte", "config-zero-concurrency", "log-not-ours",
                                  "key-missing", "flag-unknown-suggests-closest"])
def test_json_gives_the_same_error_as_an_object(tmp_path: Path, sandbox, name: str):
    """With --json, the same line on stderr and {"exit": 2, "error": ...} alone on stdout."""
    sb = sandbox()
    case = CASES[name]
    res = run_case(case, tmp_path, sb.base_url, "--json")
    assert_one_error_line(res.err, case.expect)
    assert res.code == 2
    assert res.json() == {"exit": 2, "error": case.expect}
    assert sb.record()["requests"] == 0


def test_many_bad_rows_are_each_named_then_counted(tmp_path: Path, sandbox):
    """Every bad row has its own line (up to 20, then "and N more"), each in the same shape."""
    sb = sandbox()
    rows = "".join(f"asst_{i},file {i}\n" for i in range(25))
    (tmp_path / "m.csv").write_text("assistant_id,file_id\nasst_ok,file-ok\n" + rows)
    res = run_cli("run", "m.csv", "--base-url", sb.base_url, cwd=tmp_path)
    lines = res.err.splitlines()
    assert res.code == 2
    assert len(lines) == 21
    for number, line in enumerate(lines[:20], 3):
        assert line == f'{ERROR}m.csv:{number}: file_id "file {number - 3}" is not a valid ID; ' \
                       f"{ID_RULE}"
        assert ERROR_LINE.match(line)
    assert lines[20] == f"{ERROR}and 5 more"
    assert sb.record()["requests"] == 0


# ---------------------------------------------------------------------- accepted, not refused

EMPTY = {
    "csv-header-only": ("csv-header-only.csv", None),
    "csv-zero-bytes": ("empty.csv", ""),
    "yaml-empty-items": ("empty.yaml", "items: []\n"),
    "yaml-comments-only": ("comments.yaml", "# nothing tonight\n"),
    "jsonl-blank-lines": ("empty.jsonl", "\n\n"),
}


@pytest.mark.parametrize("name", list(EMPTY.values()), ids=list(EMPTY))
def test_empty_manifest_is_nothing_to_do(tmp_path: Path, sandbox, name: tuple[str, str | None]):
    """A header only, a zero-byte file, `items: []`: not an error; exit 0, nothing sent."""
    sb = sandbox()
    file, text = name
    if text is None:
        shutil.copy(BAD / file, tmp_path / file)
    else:
        (tmp_path / file).write_text(text)
    res = run_cli("run", file, "--base-url", sb.base_url, "--json", cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.err == ""
    assert res.json()["pairs"] == 0
    assert sb.record()["requests"] == 0


@pytest.mark.parametrize(
    "argv",
    [["validate", "m.csv"], ["status", "m.csv"], ["failed", "m.csv"],
     ["run", "m.csv", "--dry-run"]],
    ids=["validate", "status", "failed", "run-dry-run"],
)
def test_commands_that_send_nothing_need_no_key(tmp_path: Path, monkeypatch, argv: list[str]):
    """validate, status, failed and run --dry-run work without OPENAI_API_KEY (and write no
    log, no lock)."""
    monkeypatch.chdir(tmp_path)
    good(tmp_path)
    assert "OPENAI_API_KEY" not in os.environ
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert (code, err.getvalue()) == (0, "")
    assert out.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_demo_needs_no_key(tmp_path: Path):
    """`demo` brings its own sandbox and key: it runs with no OPENAI_API_KEY set."""
    res = run_cli("demo", cwd=tmp_path, key=None)
    assert res.code == 0, res.err
    assert "demo: OK" in res.out


def test_no_command_prints_the_help(tmp_path: Path):
    """No command at all: the help on stderr and exit 2 (several lines, on purpose)."""
    res = run_cli(cwd=tmp_path)
    assert res.code == 2
    assert res.err.startswith("usage: attach-runner")
    assert "Traceback" not in res.err


# ---------------------------------------------------------------------- no traceback, ever

REPORT_LINE = re.compile(
    r"^attach-runner: internal error \(RuntimeError\); this is a bug: the full report is in "
    r"(?P<path>\S+) \(run with --debug to see it here\)$")


def test_a_crash_in_a_worker_is_one_line_and_a_private_report(tmp_path: Path, sandbox,
                                                              monkeypatch):
    """An unexpected exception in a real run: exit 70, one line naming the report; the report
    is 0600 and holds the traceback; the next run finishes the job."""
    sb = sandbox()
    good(tmp_path)
    (tmp_path / "reports").mkdir()
    make_a_worker_raise(monkeypatch)
    res = main_in(tmp_path, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url],
                  reports=tmp_path / "reports")
    assert res.code == 70
    assert "Traceback" not in res.out + res.err
    [line] = res.err.splitlines()
    match = REPORT_LINE.match(line)
    assert match, line
    report = Path(match["path"])
    assert report.parent == tmp_path / "reports"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    text = report.read_text()
    assert text.startswith("attach-runner ")
    assert "Traceback (most recent call last):" in text
    assert "RuntimeError: simulated bug in a worker" in text
    assert sb.record()["requests"] >= 1
    monkeypatch.undo()
    res = run_cli("run", "m.csv", "--base-url", sb.base_url, "--timeout", "2", "--settle", "0.3",
                  cwd=tmp_path)  # a crashed run's uncertain pairs wait --timeout + --settle
    assert res.code == 0, res.err
    assert all(p["attached"] == 1 for p in sb.record()["pairs"].values())


def test_debug_shows_the_traceback_instead(tmp_path: Path, sandbox, monkeypatch):
    """--debug prints the traceback on stderr and writes no report."""
    sb = sandbox()
    good(tmp_path)
    (tmp_path / "reports").mkdir()
    make_a_worker_raise(monkeypatch)
    res = main_in(tmp_path, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url, "--debug"],
                  reports=tmp_path / "reports")
    assert res.code == 70
    assert res.err.startswith("Traceback (most recent call last):")
    assert res.err.splitlines()[-1] == "attach-runner: internal error (RuntimeError); this is a bug"
    assert list((tmp_path / "reports").iterdir()) == []


def test_a_report_that_cannot_be_written_is_still_one_line(tmp_path: Path, sandbox,
                                                           monkeypatch):
    """When the report cannot be written (no such temp directory), still one line, exit 70."""
    sb = sandbox()
    good(tmp_path)
    make_a_worker_raise(monkeypatch)
    missing = tmp_path / "no-such-dir"
    res = main_in(tmp_path, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url],
                  reports=missing)
    assert res.code == 70
    assert res.err.splitlines() == [
        f"attach-runner: internal error (RuntimeError); this is a bug, and its report could not "
        f"be written to {missing} (No such file or directory); run with --debug to see it"]


def test_a_reader_that_leaves_early_is_not_a_crash(tmp_path: Path):
    """`attach-runner ... | head -1`: when stdout's reader goes, exit 141 quietly (as a C tool
    killed by SIGPIPE would), no internal error, no traceback."""
    rows = "".join(f"asst_{i % 7},file-{i}\n" for i in range(20000))
    (tmp_path / "m.csv").write_text("assistant_id,file_id\n" + rows)
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", "m.csv", "--dry-run"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=cli_env(key=None))
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert first.startswith(b"POST /assistants/asst_0/files")
    assert err == b""


EDITED_LOGS = {
    "lone-surrogate-in-an-id": '{"event":"done","run":"r","assistant_id":"\\ud800",'
                               '"file_id":"file-1","outcome":"attached"}',
    "error-fields-not-text": '{"event":"done","run":"r","assistant_id":"asst_1","file_id":'
                             '"file-1","outcome":"failed","retryable":true,"status":"500",'
                             '"error":{"code":[1],"message":{"a":1}}}',
    "huge-status-and-error-list": '{"event":"done","run":"r","assistant_id":"asst_1","file_id":'
                                  '"file-1","outcome":"failed","retryable":false,'
                                  '"status":123456789012345678901234567890,"error":["x"]}',
    "batch-with-odd-ids": '{"event":"batch-created","run":"r","vector_store_id":"vs_1",'
                          '"file_ids":["file-1",5,null],"batch_id":7}',
}


@pytest.mark.parametrize("line", list(EDITED_LOGS.values()), ids=list(EDITED_LOGS))
@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["failed"],
                                     ["run", "--dry-run"]], ids=" ".join)
def test_an_edited_log_with_odd_fields_is_read_without_a_crash(tmp_path: Path, monkeypatch,
                                                               line: str, command: list[str]):
    """Lines that are events but hold odd values (found by fuzzing: these crashed once) are
    read: the readers answer, exit 0, no internal error."""
    good(tmp_path)
    (tmp_path / "m.csv.results.jsonl").write_text(EVENT + "\n" + line + "\n")
    res = main_in(tmp_path, monkeypatch, [command[0], "m.csv", *command[1:]], reports=tmp_path)
    assert (res.code, res.err) == (0, "")
    assert res.out
