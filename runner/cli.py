"""attach-runner's command line: parse, dispatch, and turn every error into one line + exit code.

No traceback reaches a user: a RunnerError prints its line(s); anything else is a bug, reported
in one line that says where the full report was written (or shown whole with --debug).
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import NoReturn

from runner import __version__, commands
from runner.config import Settings, add_options, resolve_settings
from runner.errors import ManifestError, RunnerError, UsageError, scrub_secrets

PROG = "attach-runner"
EXIT_INTERNAL = 70

EXAMPLES = {
    "run": """examples:
  attach-runner run jobs/nightly.csv
  attach-runner run jobs/stores.yaml --target vector-store-files --batch-size 500 --wait
  attach-runner run jobs/nightly.csv --rpm 3000 --concurrency 32 --json
  generate-pairs | attach-runner run - --format jsonl --log nightly.results.jsonl

Rerun the same command after any trouble: it resumes from the log.""",
    "validate": """examples:
  attach-runner validate jobs/nightly.csv
  attach-runner validate jobs/stores.yaml --target vector-store-files""",
    "status": """examples:
  attach-runner status jobs/nightly.csv
  attach-runner status jobs/nightly.csv --json""",
    "failed": """examples:
  attach-runner failed jobs/nightly.csv > retry.csv
  attach-runner run retry.csv --retry-failed""",
    "sandbox": """examples:
  attach-runner sandbox --port 8089
  attach-runner sandbox --port 0 --rps 50 --fail-rate 0.05 --seed 1""",
    "demo": """example:
  attach-runner demo""",
}

HELP = {
    "run": "attach every pair of a manifest (resumes from the log)",
    "validate": "check a manifest and config; sends nothing, needs no key",
    "status": "what the log says of a manifest's pairs",
    "failed": "the failed pairs as a CSV manifest on stdout",
    "sandbox": "a local stand-in of the API, for rehearsals and tests",
    "demo": "run the example against an in-process sandbox with a few faults",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become our one-line UsageError (with the closest option)."""

    def error(self, message: str) -> NoReturn:
        if "unrecognized arguments:" in message:
            unknown = message.split("unrecognized arguments:", 1)[1].split()
            flag = unknown[0] if unknown else "?"
            known = [s for a in self._actions for s in a.option_strings]
            close = difflib.get_close_matches(flag.split("=", 1)[0], known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"see {self.prog} --help"
            raise UsageError(f"{self.prog}: unknown option {flag}; {hint}")
        if "invalid choice:" in message and self.prog == PROG:
            raise UsageError(f"{message.split(' (choose')[0]}; the commands are "
                             f"{', '.join(HELP)}; see {PROG} --help")
        raise UsageError(f"{self.prog}: {message}; see {self.prog} --help")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, allow_abbrev=False,
                     description="Attach files to OpenAI assistants and vector stores in bulk: "
                                 "bounded, rate-limited, resumable.",
                     epilog="Run `attach-runner demo` to see it work against a local sandbox.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in ("run", "validate", "status", "failed"):
        p = sub.add_parser(name, help=HELP[name], description=HELP[name], epilog=EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           allow_abbrev=False)
        p.add_argument("manifest", metavar="MANIFEST", help="CSV, YAML or JSONL file, or - (stdin)")
        add_options(p, name)
    from runner.sandbox import add_sandbox_arguments

    p = sub.add_parser("sandbox", help=HELP["sandbox"], description=HELP["sandbox"],
                       epilog=EXAMPLES["sandbox"], allow_abbrev=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sandbox_arguments(p)
    sub.add_parser("demo", help=HELP["demo"], description=HELP["demo"], epilog=EXAMPLES["demo"],
                   formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    return parser


def _settings(parser: argparse.ArgumentParser, argv: list[str]) -> Settings:
    args = parser.parse_args(argv)
    return resolve_settings(args, command=args.command, environ=os.environ)


def dispatch(argv: list[str], io: commands.Io) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command
    if command is None:
        parser.print_help(io.err)
        return 2
    if command == "sandbox":
        from runner.sandbox import run_sandbox_command

        return run_sandbox_command(args)
    if command == "demo":
        return commands.demo(lambda a: _settings(build_parser(), a), io)
    settings = resolve_settings(args, command=command, environ=os.environ)
    if command == "run":
        return commands.run(settings, io, argv)
    if command == "validate":
        return commands.validate(settings, io)
    if command == "status":
        return commands.status(settings, io, as_json=settings.json)
    return commands.failed(settings, io)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    io = commands.stdout_io()
    wants_json = "--json" in argv and argv[:1] == ["run"]
    debug = "--debug" in argv
    try:
        return dispatch(argv, io)
    except ManifestError as exc:
        for line in exc.lines():
            io.err.write(f"{PROG}: error: {line}\n")
        return _json_exit(wants_json, exc.exit_code, exc.lines()[0], io)
    except RunnerError as exc:
        io.err.write(f"{PROG}: error: {exc}\n")
        return _json_exit(wants_json, exc.exit_code, str(exc), io)
    except KeyboardInterrupt:
        io.err.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback to users
        return _internal_error(exc, debug, io)


def _json_exit(wants_json: bool, code: int, message: str, io: commands.Io) -> int:
    if wants_json and code in (2, 3):
        io.out.write(json.dumps({"exit": code, "error": message}) + "\n")
    return code


def _internal_error(exc: BaseException, debug: bool, io: commands.Io) -> int:
    report = scrub_secrets("".join(traceback.format_exception(exc)))
    if debug:
        io.err.write(report)
        io.err.write(f"{PROG}: internal error ({type(exc).__name__}); this is a bug\n")
        return EXIT_INTERNAL
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    fd, path = tempfile.mkstemp(prefix=f"attach-runner-crash-{stamp}-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(f"{PROG} {__version__}\n{report}")
    io.err.write(f"{PROG}: internal error ({type(exc).__name__}); this is a bug: the full "
                 f"report is in {path} (run with --debug to see it here)\n")
    return EXIT_INTERNAL
