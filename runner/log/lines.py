"""The log's line format, both ways: how the writer spells each line, and how the reader
recognises the common ones without parsing them. Nothing outside runner/log spells a line:
the engine, the operations and the commands hand values to `ResultLog`'s `append_*` methods.

Every line is `{"event": ..., "ts": ..., "run": ..., **fields}`, in that key order, as compact
ASCII JSON: no spaces, and non-ASCII text escaped (`\\u00e9`, a lone surrogate `\\ud800`), so a
line is always valid UTF-8. These are exactly the bytes `json.dumps(line, separators=(",",
":"))` makes; a line that a user or a tool rewrote with `json.dumps`'s default spacing
(`{"event": "done", ...}`) reads the same.

The lines written for every pair (`sent`, `done`, and the batch lines) are spelled here with
f-strings, not with the JSON encoder: a string that needs no escape (printable ASCII without `"`
or `\\`, which every ID obeying the ID rule is) is a JSON string as it stands; any other string
(an ID from a store's listing is the server's, not checked by the ID rule; an error message is
anything) goes through json's string encoder. Other lines (run-start, run-end, `append`'s) go
through json's encoder whole. A property test (tests/log/test_format.py) holds the pair lines
equal, byte for byte, to the encoder's for any text.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from runner.items import Item, LocalFile

# Every line the writer makes starts with these bytes (key order is fixed), and every line
# json.dumps makes by default with those: what a torn last line may begin with.
LINE_PREFIX = b'{"event":"'
SPACED_PREFIX = b'{"event": "'

# The outcomes that leave a pair in place: a `done` line with one of them records the digest
# of the managed attributes the pair was left with (SPEC, "The result log").
IN_PLACE = frozenset({"attached", "already_attached", "updated"})

_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
_encode = _ENCODER.encode


class LoggedError(Protocol):
    """What a `done` line says of the last error (requests.targets.ApiError is one)."""

    @property
    def type(self) -> str | None: ...
    @property
    def message(self) -> str: ...
    @property
    def code(self) -> str | None: ...


class PairEnd(Protocol):
    """A pair's end as its `done` line records it (requests.outcomes.Outcome is one)."""

    @property
    def outcome(self) -> str: ...
    @property
    def status(self) -> int | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def error(self) -> LoggedError | None: ...
    @property
    def retryable(self) -> bool: ...
    @property
    def uncertain(self) -> bool: ...
    @property
    def file_status(self) -> str | None: ...
    @property
    def op(self) -> str: ...


def looks_torn(tail: bytes) -> bool:
    """Whether bytes after the last newline can be one line cut short: the start of a line in
    either spelling (ours, or json.dumps's default), or NUL bytes (what some filesystems leave
    after a power cut)."""
    return (LINE_PREFIX.startswith(tail[: len(LINE_PREFIX)])
            or SPACED_PREFIX.startswith(tail[: len(SPACED_PREFIX)])
            or not tail.strip(b"\0"))


def plain(text: str) -> bool:
    """Whether `text` is the inside of a JSON string as it stands, as json's ASCII encoder
    spells it: printable ASCII without `"` or `\\`. A per-character test, so one call over
    several strings joined answers for each of them."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def quote(value: str) -> str:
    """`value` as a JSON string, as the encoder spells it; without the encoder when no
    character needs escaping (every ID obeying the ID rule)."""
    return f'"{value}"' if plain(value) else _encode(value)


def fields_members(fields: Mapping[str, object]) -> str:
    """Any fields as JSON members (`"k":v,...`, no braces), in the order given."""
    return _encode(fields)[1:-1] if fields else ""


# The per-pair lines test their strings once, joined (one `plain` a line, not one a string),
# then splice them in as they stand; a line holding any string that needs escaping is spelled
# string by string through `quote`. `owner_column` is one of ours (assistant_id,
# vector_store_id), never a value read from outside.


def sent_members(owner_column: str, item: Item, op: str) -> str:
    """A `sent` line's fields: `op`, then the pair."""
    owner, file_id = item.owner, item.file_id
    local = "" if item.local is None else local_members(item.local)
    if plain(op + owner + file_id):
        return f'"op":"{op}","{owner_column}":"{owner}","file_id":"{file_id}"{local}'
    return (f'"op":{quote(op)},"{owner_column}":{quote(owner)},"file_id":{quote(file_id)}'
            f"{local}")


def local_members(local: LocalFile) -> str:
    """A path pair's file, after its pair's members (a leading comma): what a later run's
    quick check compares (SPEC "Identity"), and when its content was read (the racy rule)."""
    return (f',"path":{quote(local.path)},"sha256":"{local.sha256}","bytes":{local.size},'
            f'"mtime_ns":{local.mtime_ns},"hashed_ns":{local.hashed_ns}')


def done_members(owner_column: str, item: Item, end: PairEnd, digest: str | None) -> str:
    """A `done` line's fields: `op`, the pair, the outcome, status, attempts, error, retryable,
    uncertain, then the file status and the attributes' digest when there are ones. `digest`:
    given, or made from the item's managed attributes when the outcome leaves it in place
    (then with the fingerprint of their text as written, when the fast path kept it)."""
    owner, file_id, op, outcome = item.owner, item.file_id, end.op, end.outcome
    file_status, status, error = end.file_status, end.status, end.error
    written = None
    if digest is None and item.options is not None:
        digest = recorded_digest(item, outcome)
        if digest is not None:
            written = item.options.written_digest()
    if plain(f"{op}{owner}{file_id}{outcome}{file_status or ''}{digest or ''}"):
        head = (f'"op":"{op}","{owner_column}":"{owner}","file_id":"{file_id}",'
                f'"outcome":"{outcome}"')
    else:
        head = (f'"op":{quote(op)},"{owner_column}":{quote(owner)},"file_id":{quote(file_id)},'
                f'"outcome":{quote(outcome)}')
    members = (
        f'{head},"status":{"null" if status is None else status},"attempts":{end.attempts},'
        f'"error":{"null" if error is None else _error_object(error)},'
        f'"retryable":{"true" if end.retryable else "false"},'
        f'"uncertain":{"true" if end.uncertain else "false"}'
    )
    if file_status is not None:
        members += f',"file_status":{quote(file_status)}'
    if digest is not None:
        members += f',"attributes_digest":{quote(digest)}'
    if written is not None:
        members += f',"attributes_written":"{written}"'
    if item.local is not None:
        members += local_members(item.local)
    return members


def _error_object(error: LoggedError) -> str:
    """`{"type":...,"message":...,"code":...}`, as the encoder spells that dict."""
    kind, code = error.type, error.code
    return (f'{{"type":{"null" if kind is None else quote(kind)},'
            f'"message":{quote(error.message)},'
            f'"code":{"null" if code is None else quote(code)}}}')


def recorded_digest(item: Item, outcome: str) -> str | None:
    """SPEC: a `done` line that leaves managed attributes in place records their digest."""
    options = item.options
    if options is None or not options.manages_attributes or outcome not in IN_PLACE:
        return None
    return options.digest()


def batch_members(owner_column: str, store: str, file_ids: Sequence[str], op: str,
                  batch_id: str | None = None) -> str:
    """A `batch-sent` line's fields (no batch id) or a `batch-created` line's."""
    batch = f'"batch_id":{quote(batch_id)},' if batch_id is not None else ""
    return (f'"op":{quote(op)},"{owner_column}":{quote(store)},{batch}'
            f'"file_ids":[{",".join(map(quote, file_ids))}]')


class LineSpeller:
    """Spells one run's lines: `{"event":E,"ts":T,"run":R` + `,` members + `}` and a newline.
    Everything before the members is spelled once per event name and millisecond (a busy
    run writes dozens of lines a millisecond); the time's whole second once a second."""

    __slots__ = (
        "_run_part",  # ',"run":"3f2a..."', spelled once
        "_ms",  # the millisecond (of time.time_ns()) that _heads are spelled for
        "_heads",  # event -> '{"event":"sent","ts":"2026-11-25T11:02:03.123Z","run":"3f2a..."'
        "_ts_second",  # the whole UTC second that _ts_prefix spells
        "_ts_prefix",  # "2026-11-25T11:02:03." for _ts_second
    )

    def __init__(self, run_id: str) -> None:
        self._run_part = ',"run":' + quote(run_id)
        self._ms = -1
        self._heads: dict[str, str] = {}
        self._ts_second = -1
        self._ts_prefix = ""

    def line(self, event: str, members: str, ns: int) -> bytes:
        """The whole line at `ns` (time.time_ns()), newline included, as ASCII bytes."""
        ms = ns // 1_000_000
        if ms != self._ms:
            self._ms = ms
            self._heads = {}
        head = self._heads.get(event)
        if head is None:
            head = self._heads[event] = self._head(event, ms)
        return f"{head},{members}}}\n".encode() if members else f"{head}}}\n".encode()

    def _head(self, event: str, ms: int) -> str:
        second, rest = divmod(ms, 1000)
        if second != self._ts_second:
            self._ts_second = second
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        return f'{{"event":{quote(event)},"ts":"{self._ts_prefix}{rest:03d}Z"{self._run_part}'


# --- reading ---------------------------------------------------------------------------------

# The lines written for every pair, in the writer's fixed key order, as a regular expression
# that only ever matches valid JSON (IDs, ASCII strings without escapes, numbers, literals):
# "sent", and "done" for a pair in place (attached, already_attached or updated, no error). A
# log is nearly all such lines; the reader's scan hands them over in bulk, unparsed by json.
# The same lines as `json.dumps` writes them with its default separators (", " and ": ": a
# log rewritten by a script) have a pattern of their own: one pattern admitting both costs a
# third more on our own lines. Every other spacing is still read, by json.
_TEXT = rb'[\x20\x21\x23-\x5b\x5d-\x7e]*'  # a JSON string's inside: printable ASCII, no " or \\
_ID = rb"([A-Za-z0-9_-]{1,128})"
_COUNT = rb"(?:0|[1-9][0-9]{0,8})"  # JSON has no leading zeros


def fast_pattern(owner_column: str, *, spaced: bool = False) -> re.Pattern[bytes]:
    """A whole line: "sent", or "done" (group 1) in place; else any other line (group 7, with
    its newline). Groups 2 and 3 are the pair, 4 the outcome, 5 the attributes' digest, 6
    the fingerprint of their text as written (recorded with the digest where the manifest's
    fast path read them). `op` is attach or update (or absent: an older log's line, which
    means attach). With `spaced`, the line as json.dumps writes it by default: ", " between
    members, ": " in them."""
    sep, colon = (b", ", b": ") if spaced else (b",", b":")

    def member(name: bytes, value: bytes) -> bytes:
        return b'"' + name + b'"' + colon + value

    owner = re.escape(owner_column.encode())
    head = sep.join([
        b"\\{" + member(b"event", b'"(?:sent|(done))"'),
        member(b"ts", b'"' + _TEXT + b'"'),
        member(b"run", b'"' + _TEXT + b'"'),
        b"(?:" + member(b"op", b'"(?:attach|update)"') + sep + b")?"
        + member(owner, b'"' + _ID + b'"'),
        member(b"file_id", b'"' + _ID + b'"'),
    ])
    # Only when group 1 (done) matched: the outcome fields, in the writer's order, and the
    # digest of the managed attributes the pair was left with (group 5), if any.
    done = b"(?(1)" + sep + sep.join([
        member(b"outcome", b'"(attached|already_attached|updated)"'),
        member(b"status", b"(?:[1-5][0-9][0-9]|null)"),
        member(b"attempts", _COUNT),
        member(b"error", b"null"),
        member(b"retryable", b"(?:true|false)"),
        member(b"uncertain", b"(?:true|false)"),
    ]) + b"(?:" + sep + member(b"file_status", b'"[a-z_]{1,32}"') + b")?"
    done += (b"(?:" + sep + member(b"attributes_digest", b'"([0-9a-f]{16})"') + b"(?:" + sep
             + member(b"attributes_written", b'"([0-9a-f]{16})"') + b")?)?)")
    # Any other line, even an empty one, is group 7 with its newline: one row a line, always.
    return re.compile(b"^" + head + done + rb"\}$|^(.*\n)", re.MULTILINE)


_TS = re.compile(rb'"ts"\s*:\s*"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3}|\.\d{6})?)Z"')
_RUN_END = re.compile(rb'^\{\s*"event"\s*:\s*"run-end"')


def line_time(line: bytes) -> tuple[str, bool] | None:
    """A complete line's `ts` (ISO 8601, without its Z) and whether it is a `run-end`; None
    when it has no `ts` that reads as one."""
    found = _TS.search(line)
    if found is None:
        return None
    return found.group(1).decode(), _RUN_END.match(line) is not None
