"""attach-runner's command line: parse, dispatch, and turn every error into one line + exit code.

No traceback reaches a user: a RunnerError prints its line(s); anything else is a bug, reported
in one line that says where the full report was written (or shown whole with --debug).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import difflib
import json
import os
import select
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from typing import NoReturn

from runner import __version__
from runner.config import (
    DEFAULT_API_KEY_ENV,
    Settings,
    add_options,
    hide_keys,
    is_secret_name,
    resolve_settings,
)
from runner.console import Io, stdout_io
from runner.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_USAGE,
    SIGNAL_EXITS,
    ManifestError,
    RunnerError,
    UsageError,
    one_line,
    scrub_secrets,
)

PROG = "attach-runner"


EXAMPLES = {
    "run": """examples:
  attach-runner run jobs/nightly.csv
  attach-runner run jobs/stores.yaml --batch-size 500 --wait
  attach-runner run jobs/nightly.csv --rpm 3000 --concurrency 32 --json
  generate-pairs | attach-runner run - --format jsonl --log nightly.results.jsonl

Rerun the same command after any trouble: it resumes from the log.""",
    "detach": """examples:
  attach-runner detach jobs/withdrawn.csv
  attach-runner detach jobs/withdrawn.csv --dry-run
  attach-runner detach jobs/withdrawn.csv --json --log nightly.results.jsonl

Each pair's file is taken out of its vector store (or assistant); the file object stays.
Rerun the same command after any trouble: it resumes from the log.""",
    "sync": """examples:
  attach-runner sync jobs/stores.yaml --dry-run     # list the stores, print the plan
  attach-runner sync jobs/stores.yaml
  attach-runner sync jobs/stores.yaml --max-delete 50 --json

Each vector store the manifest names ends holding exactly its files there, with the
manifest's attributes: missing ones are added, stale attributes updated, and then files the
manifest does not list are detached (never in a store the manifest does not name). A store
that would lose more than half its files stops the run before any detach (exit 4) unless
--max-delete allows it. Rerun the same command after any trouble.""",
    "validate": """examples:
  attach-runner validate jobs/nightly.csv
  attach-runner validate jobs/stores.yaml""",
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

# The top-level --help: the commands in the order a new user meets them.
TOP_EXAMPLES = """examples:
  attach-runner demo                         # see it work on a local sandbox
  attach-runner validate jobs/nightly.csv    # check a manifest; sends nothing
  attach-runner run jobs/nightly.csv         # attach every pair
  attach-runner run jobs/nightly.csv         # again after trouble: resumes
  attach-runner status jobs/nightly.csv      # what the log says of each pair
  attach-runner failed jobs/nightly.csv      # the failed pairs, as a manifest
  attach-runner detach jobs/withdrawn.csv    # take pairs out (the files stay)
  attach-runner sync jobs/stores.yaml        # stores hold exactly the manifest

Each command has --help with its options and examples: attach-runner run --help"""

HELP = {
    "run": "attach every pair of a manifest (resumes from the log)",
    "detach": "take each pair's file out of its owner; the file object stays",
    "sync": "vector stores: make each named store hold exactly the manifest's files",
    "validate": "check a manifest and config; sends nothing, needs no key",
    "status": "what the log says of a manifest's pairs",
    "failed": "the failed pairs as a CSV manifest on stdout",
    "sandbox": "a local stand-in of the API, for rehearsals and tests",
    "demo": "run the example against an in-process sandbox with a few faults",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become our one-line UsageError (with the closest option)."""

    # On the top parser: the command parsers, so an unknown flag is matched against the flags
    # of the command it was given to (argparse reports it from the top parser).
    commands: Mapping[str, argparse.ArgumentParser] | None = None

    def error(self, message: str) -> NoReturn:
        if "unrecognized arguments:" in message:
            unknown = message.split("unrecognized arguments:", 1)[1].split()
            raise UsageError(self._unknown(unknown[0] if unknown else "?"))
        if "invalid choice:" in message and self.prog == PROG:
            raise UsageError(_unknown_command(message))
        # argparse quotes what was typed: never a pasted key.
        raise UsageError(f"{self.prog}: {hide_keys(message)}; see {self.prog} --help")

    def _unknown(self, arg: str) -> str:
        if not arg.startswith("-"):
            return (f"{_quote(arg)}: unexpected argument; {self.prog} takes one MANIFEST "
                    f"(quote a path with spaces); see {self.prog} --help")
        name = arg.split("=", 1)[0]  # never the value: `--api-key=sk-...` must not be echoed
        bare = name.lstrip("-")
        if is_secret_name(bare):
            return (f"{name}: the API key is never given on the command line; export it in "
                    f"{DEFAULT_API_KEY_ENV} (or name its variable with --api-key-env NAME, or "
                    "its file with --api-key-file FILE)")
        if bare.lower() in _TLS_OFF or any(w in bare.lower() for w in ("verify", "cert", "ssl")):
            return (f"{name}: TLS verification cannot be turned off; to trust a private CA, "
                    "set SSL_CERT_FILE to its certificate (plain http works only to loopback)")
        mine = self.prog.rsplit(" ", 1)[-1]
        holders = [command for command, parser in (self.commands or {}).items()
                   if command != mine and name in parser._option_string_actions]
        if holders:  # a real flag in the wrong place: say so, rather than guess a look-alike
            return (f"{name}: not an option of {mine} (only of {', '.join(holders)}); "
                    f"see {self.prog} --help")
        known = {s.lstrip("-"): s for a in self._actions for s in a.option_strings}
        close = difflib.get_close_matches(bare, list(known), n=1, cutoff=0.6)
        if close:
            return f"{name}: unknown option; did you mean {known[close[0]]}?"
        return f"{name}: unknown option; see {self.prog} --help"


# Flag names that ask to turn TLS verification off (curl's -k, wget's, pip's ...).
_TLS_OFF = frozenset({"k", "insecure", "no-tls", "unsafe", "trusted-host"})


def _quote(text: str) -> str:
    """Something the user typed, for a message: one line, short, never a key."""
    shown = one_line(text if len(text) <= 60 else text[:60] + "...")
    return hide_keys(f'"{shown}"')


def _unknown_command(message: str) -> str:
    typed = message.split("invalid choice: ", 1)[1].split(" (choose", 1)[0].strip("'")
    close = difflib.get_close_matches(typed, list(HELP), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return (f"{_quote(typed)}: unknown command; {hint}the commands are {', '.join(HELP)} "
            f"(see {PROG} --help)")


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse `argv`; an unknown flag is reported by the parser of its command, naming the
    closest flag that command takes."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands = getattr(parser, "commands", None) or {}
        commands.get(getattr(args, "command", None) or "", parser).error(
            "unrecognized arguments: " + " ".join(unknown))
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, allow_abbrev=False,
                     description="Attach files to OpenAI assistants and vector stores in bulk:\n"
                                 "bounded, rate-limited, resumable.",
                     epilog=TOP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.commands = sub.choices
    for name in ("run", "detach", "sync", "validate", "status", "failed"):
        p = sub.add_parser(name, help=HELP[name], description=HELP[name], epilog=EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           allow_abbrev=False)
        p.add_argument("manifest", metavar="MANIFEST", help="CSV, YAML or JSONL file, or - (stdin)")
        add_options(p, name)
    from runner.sandbox.flags import add_sandbox_arguments

    p = sub.add_parser("sandbox", help=HELP["sandbox"], description=HELP["sandbox"],
                       epilog=EXAMPLES["sandbox"], allow_abbrev=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sandbox_arguments(p)
    sub.add_parser("demo", help=HELP["demo"], description=HELP["demo"], epilog=EXAMPLES["demo"],
                   formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    for child in sub.choices.values():  # so a flag of another command is named as such
        if isinstance(child, _Parser):
            child.commands = sub.choices
    return parser


def _settings(parser: argparse.ArgumentParser, argv: list[str]) -> Settings:
    args = parse(parser, argv)
    return resolve_settings(args, command=args.command, environ=os.environ)


def dispatch(argv: list[str], io: Io) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    command = args.command
    if command is None:
        parser.print_help(io.err)
        return EXIT_USAGE
    if command == "sandbox":
        from runner.sandbox import run_sandbox_command

        return run_sandbox_command(args)
    # Each command's module is imported when it runs: a nightly `run` does not load `sync`,
    # `status` or the demo (start-up is part of every run's time).
    if command == "demo":
        from runner.commands.demo import demo

        return demo(lambda a: _settings(build_parser(), a), io)
    settings = resolve_settings(args, command=command, environ=os.environ)
    if command == "run":
        from runner.commands.run import run

        io.json = settings.json
        return run(settings, io, argv)
    if command == "detach":
        from runner.commands.detach import detach

        io.json = settings.json
        return detach(settings, io, argv)
    if command == "sync":
        from runner.commands.sync import sync

        io.json = settings.json
        return sync(settings, io, argv)
    if command == "validate":
        from runner.commands.validate import validate

        return validate(settings, io)
    if command == "status":
        from runner.commands.status import status

        return status(settings, io, as_json=settings.json)
    from runner.commands.failed import failed

    return failed(settings, io)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    io = stdout_io()
    # Until the settings are resolved (a bad flag or config), only the command line can say.
    flag_json = "--json" in argv and argv[:1] in (["run"], ["detach"], ["sync"])
    debug = "--debug" in argv
    try:
        return dispatch(argv, io)
    except ManifestError as exc:
        lines = [one_line(line) for line in exc.lines()]
        for line in lines:
            io.err.write(f"{PROG}: error: {line}\n")
        return _json_exit(flag_json, exc.exit_code, lines[0], io)
    except RunnerError as exc:
        # A path with a newline in it must not split the line, and a key pasted where a path
        # goes (`run -- --api-key=sk-...`) must not be echoed back.
        message = hide_keys(one_line(str(exc)))
        io.err.write(f"{PROG}: error: {message}\n")
        return _json_exit(flag_json, exc.exit_code, message, io)
    except KeyboardInterrupt:
        io.err.write(f"{PROG}: interrupted\n")
        return SIGNAL_EXITS["SIGINT"]
    except BrokenPipeError as exc:
        if not _stdout_is_closed():
            return _internal_error(exc, debug, io)
        return EXIT_BROKEN_PIPE  # `... | head`: the reader left; say nothing, as cat would
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback to users
        return _internal_error(exc, debug, io)


def _stdout_is_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll says POLLERR); if so, point stdout
    at /dev/null so the interpreter's last flush does not complain about it either."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        closed = any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real fd (captured), or no poll()
        return False
    if closed:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
    return closed


def _json_exit(flag_json: bool, code: int, message: str, io: Io) -> int:
    """SPEC: with --json, exits 2 and 3 (nothing ran) still print one object."""
    if (flag_json if io.json is None else io.json) and code in (2, 3):
        io.out.write(json.dumps({"exit": code, "error": message}) + "\n")
    return code


def _internal_error(exc: BaseException, debug: bool, io: Io) -> int:
    report = scrub_secrets("".join(traceback.format_exception(exc)))
    if debug:
        io.err.write(report)
        io.err.write(f"{PROG}: internal error ({type(exc).__name__}); this is a bug\n")
        return EXIT_INTERNAL
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    try:
        # mkstemp makes the file 0600: a report names the user's files and IDs.
        fd, path = tempfile.mkstemp(prefix=f"attach-runner-crash-{stamp}-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"{PROG} {__version__}\n{report}")
    except OSError as write_error:
        io.err.write(f"{PROG}: internal error ({type(exc).__name__}); this is a bug, and its "
                     f"report could not be written to {tempfile.gettempdir()} "
                     f"({write_error.strerror or write_error}); run with --debug to see it\n")
        return EXIT_INTERNAL
    io.err.write(f"{PROG}: internal error ({type(exc).__name__}); this is a bug: the full "
                 f"report is in {path} (run with --debug to see it here)\n")
    return EXIT_INTERNAL
