"""The project's errors: each carries the exit code the CLI returns for it.

    RunnerError            (exit 70 unless a subclass says otherwise)
    ├── UsageError         2  bad flag, bad env value, missing key, bad file given
    │   ├── ConfigError    2  the YAML config file
    │   ├── ManifestError  2  one or more bad manifest rows (path, line, message)
    │   └── LogError       2  a result log that is not ours or is corrupt in the middle
    └── LockedError        3  another run holds the log

The exit codes, every one of them, are named here (SPEC "Exit codes"); a run's own ending
(1, 4, 5, 130, 143) is read off its result by runner/run/tally.py `exit_code_for`, not raised.

A message names where, what is wrong and what to do; the CLI prints it as
`attach-runner: error: <message>`. No message ever holds the API key.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_FAILED = 1  # some pairs failed or are still pending
EXIT_USAGE = 2  # bad input of any kind, or the log cannot be written
EXIT_LOCKED = 3  # another run holds the log
EXIT_REFUSED = 4  # the API refused the run as a whole (bad key, wrong URL, no access)
EXIT_RUNTIME = 5  # --max-runtime ran out
EXIT_INTERNAL = 70  # a bug: reported in one line, the full report written aside
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a C tool killed by a closed pipe reports
SIGNAL_EXITS = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal's number


class RunnerError(Exception):
    exit_code: ClassVar[int] = EXIT_INTERNAL

    @property
    def message(self) -> str:
        return str(self)


class UsageError(RunnerError):
    exit_code: ClassVar[int] = EXIT_USAGE


class ConfigError(UsageError):
    pass


class LogError(UsageError):
    pass


class ManifestProblem:
    """One bad row: where it is and what is wrong (message already says what to do)."""

    __slots__ = ("path", "line", "message")

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"ManifestProblem({str(self)!r})"


MAX_REPORTED_PROBLEMS = 20


class ManifestError(UsageError):
    """A manifest with one or more bad rows; `lines()` gives one line each, capped at 20."""

    def __init__(self, problems: list[ManifestProblem], total: int | None = None) -> None:
        self.problems = problems
        self.total = total if total is not None else len(problems)
        super().__init__(str(problems[0]) if problems else "bad manifest")

    def lines(self) -> list[str]:
        shown = [str(p) for p in self.problems[:MAX_REPORTED_PROBLEMS]]
        rest = self.total - len(shown)
        if rest > 0:
            shown.append(f"and {rest} more")
        return shown


class LockedError(RunnerError):
    exit_code: ClassVar[int] = EXIT_LOCKED


# Secrets to scrub from any crash report: the run registers the key once it is loaded.
SECRETS: list[str] = []


def register_secret(secret: str) -> None:
    if secret and secret not in SECRETS:
        SECRETS.append(secret)


def one_line(text: str) -> str:
    """`text` as one printable line: a newline or control character in a path or value the
    user gave is shown escaped (\\n), so an error is always exactly one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def scrub_secrets(text: str) -> str:
    for secret in SECRETS:
        text = text.replace(secret, "[REDACTED]")
    return text
