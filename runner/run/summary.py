"""The end of a run, in words and as one JSON object, and what the log says (`status`).

JSON field names are a promise (docs/json.md, "The --json fields"); add fields, never rename.
"""

from __future__ import annotations

import datetime
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runner import __version__
from runner.errors import EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME, EXIT_USAGE, SIGNAL_EXITS
from runner.operations.upload import UploadCounts
from runner.requests.outcomes import Counters
from runner.requests.targets import generic_message, refuses_for_good
from runner.run.tally import RunResult

TOP_REASONS = 5
CHANGED_SHOWN = 20  # changed files named in --json (all are counted)
MESSAGE_WIDTH = 160
# A run shorter than this shows no per-minute rate in the text: a few requests in a fraction
# of a second extrapolate to a rate the limiter never allowed over any minute.
RATE_AFTER = 10.0

REFUSAL_HINTS = {
    "auth": "the API refused the key (401) from {key_source}; put a valid key there and run again",
    "quota": "the API says the account's quota is used up (429 insufficient_quota); check the "
             "plan and billing at platform.openai.com, then run again",
    "beta": "the API no longer serves this API version (400 invalid_beta); Assistants v1 is "
            "retired: use --target {other_target}",
    "breaker": "the first {size} {op} requests were all refused the same way ({signature}) "
               "across {owners} owner(s), so the run stopped; check --base-url and the IDs, "
               "then run again",
    "listing": "every named store's listing was refused the same way ({signature}: {detail}), "
               "so nothing was written; check --base-url and the store IDs, then run again",
    "tls": "{detail}; nothing can be sent to that server: check --base-url, or if a proxy or "
           "private CA signs it, name its CA file in SSL_CERT_FILE, then run again",
    "refused": "the API refused the run; see the log, then run again",
}

Reason = tuple[int | None, str | None, str]  # (HTTP status or None, error code, message)


def refusal_line(kind: str, **facts: Any) -> str:
    return REFUSAL_HINTS.get(kind, REFUSAL_HINTS["refused"]).format(**facts)


def rerun_command(argv: Sequence[str]) -> str:
    return "attach-runner " + " ".join(shlex.quote(a) for a in argv)


def group_reasons(reasons: Iterable[tuple[Reason, int]]) -> list[dict[str, Any]]:
    """Failure reasons as `{status, code, message, count}`, most frequent first; messages that
    differ only in the object IDs they name are one reason."""
    grouped: dict[Reason, int] = {}
    for (status, code, message), n in reasons:
        key = (status, code, generic_message(message or ""))
        grouped[key] = grouped.get(key, 0) + n
    ordered = sorted(grouped.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return [{"status": s, "code": c, "message": m, "count": n} for (s, c, m), n in ordered]


def next_step(exit_code: int, *, manifest: str, argv: Sequence[str], retryable_failed: int,
              refused: int, op: str = "attach") -> str:
    """The command a user should run next."""
    rerun = rerun_command(argv)
    if manifest == "-":
        rerun += "   (with the same manifest on stdin)"
    if exit_code == EXIT_OK:
        return f"nothing: every pair is {_DONE[op]}"
    if exit_code == EXIT_USAGE:
        return (f"{rerun}   (once the log's disk has room, or with another --log: the run "
                "resumes from what was written)")
    if exit_code in (EXIT_REFUSED, EXIT_RUNTIME, *SIGNAL_EXITS.values()):
        return f"{rerun}   (the same command resumes where this run stopped)"
    if refused and not retryable_failed:
        return (f"attach-runner failed {shlex.quote(manifest)} > failed.csv   (see what the API "
                "refused; fix it, then rerun with --retry-failed)")
    return f"{rerun}   (retries the failed pairs; refused ones need --retry-failed)"


# The word for a pair the operation finished: "every pair is attached" / "... detached".
_DONE = {"attach": "attached", "detach": "detached", "sync": "in place"}


def build_summary(result: RunResult, counters: Counters, *, target: str, manifest: str,
                  log: str, rpm: int | None, learned_rpm: float | None, exit_code: int,
                  argv: Sequence[str], error: str | None, run_id: str | None = None,
                  op: str = "attach", uploads: UploadCounts | None = None) -> dict[str, Any]:
    """The facts of one run, as `--json` prints them (and the text summary shows them).
    `op`: the run's operation (attach for `run`, detach for `detach`); `uploads`: what it
    did with local files (attach only)."""
    tally = result.tally
    reasons = group_reasons(tally.failed_reasons.items())
    refused_now = sum(r["count"] for r in reasons if refuses_for_good(r["status"]))
    elapsed = max(result.elapsed, 1e-9)
    settled = (tally.attached + tally.already_attached + tally.updated + tally.detached
               + tally.already_detached + tally.failed)
    detach = op == "detach"
    summary: dict[str, Any] = {
        "exit": exit_code,
        "op": op,
        "target": target,
        "manifest": manifest,
        "log": log,
        "pairs": tally.pairs,
        "attached": tally.attached,
        "already_attached": tally.already_attached,
        "updated": tally.updated,
        "detached": tally.detached,
        "already_detached": tally.already_detached,
        "failed": tally.failed,
        "attached_earlier": 0 if detach else tally.done_earlier,
        "detached_earlier": tally.done_earlier if detach else 0,
        "refused_earlier": tally.refused_earlier,
        "pending": tally.pending,
        "duplicates": tally.duplicates,
        "failed_by_reason": reasons,
        "requests": counters.requests,
        "attach_requests": counters.attach_requests,
        "checks": counters.checks,
        "polls": counters.polls,
        "retries": counters.retries,
        "throttled": counters.throttled,
        "uncertain": counters.uncertain,
        "still_in_progress": counters.still_in_progress,
        "update_requests": counters.updates,
        "chunking_mismatch": counters.chunking_mismatch,
        "by_status": {str(s): n for s, n in sorted(counters.statuses.items())},
        "elapsed_s": round(result.elapsed, 3),
        "rate_per_min": round(counters.requests / elapsed * 60, 1),
        "pairs_per_min": round(settled / elapsed * 60, 1),
        "rpm": rpm if rpm is not None else "auto",
        "rpm_learned": round(learned_rpm, 1) if learned_rpm else None,
        "interrupted": result.stop in ("SIGINT", "SIGTERM", "max-runtime"),
        "stopped_by": result.stop,
        "next": next_step(exit_code, manifest=manifest, argv=argv,
                          retryable_failed=tally.failed - refused_now,
                          refused=refused_now + tally.refused_earlier, op=op),
        "run_id": run_id,
        "finished_at": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds").replace("+00:00", "Z"),
        "version": __version__,
    }
    if uploads is not None:
        summary.update(upload_facts(uploads, elapsed))
    if error:
        summary["error"] = error
    return summary


def upload_facts(uploads: UploadCounts, elapsed: float) -> dict[str, Any]:
    """The local files' part of a summary (SPEC "Output"): file objects made, contents found
    uploaded already, uncertain uploads adopted, objects that may be duplicates (never
    deleted), and the bytes uploaded with their rate over the run."""
    return {
        "uploaded": uploads.uploaded,
        "reused": uploads.reused,
        "adopted": uploads.adopted,
        "possible_duplicates": list(uploads.possible_duplicates),
        "bytes_uploaded": uploads.bytes,
        "upload_mb_per_s": round(uploads.bytes / 1e6 / elapsed, 2),
        "replaced": uploads.replaced,
        "files_deleted": uploads.deletes.deleted,
        "changed": len(uploads.changed),
        "changed_examples": [{"path": path, "old_file_id": old}
                             for path, old in list(uploads.changed.items())[:CHANGED_SHOWN]],
    }


# --- text -------------------------------------------------------------------------------------

def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    whole = int(s)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m{whole % 60:02d}s"


def _bytes(count: int) -> str:
    """1.2 GB, 35.0 MB, 12 KB, 800 bytes."""
    for unit, size in (("GB", 1e9), ("MB", 1e6)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{count / 1e3:,.0f} KB" if count >= 1e3 else f"{count:,} bytes"


def _headline(s: Mapping[str, Any]) -> str:
    code = s["exit"]
    not_attached = s["failed"] + s["refused_earlier"] + s["pending"]
    done = _DONE.get(s.get("op", "attach"), "attached")
    if code == EXIT_OK:
        verdict = f"every pair is {done}"
    elif code == EXIT_USAGE:
        verdict = "stopped: the log could not be written"
    elif code == EXIT_REFUSED:  # the API refused, or a certificate failed: the error line says
        verdict = "stopped: the run was refused as a whole"
    elif code == EXIT_RUNTIME:
        verdict = f"stopped at --max-runtime; {s['pending']:,} pairs not done yet"
    elif code in SIGNAL_EXITS.values():
        verdict = f"interrupted ({s['stopped_by']}); {s['pending']:,} pairs not done yet"
    else:
        verdict = f"{not_attached:,} of {s['pairs']:,} pairs not {done}"
    return (f"attach-runner: {verdict} ({s['pairs']:,} pairs, {s['target']}, "
            f"{_seconds(s['elapsed_s'])}, exit {code})")


def reason_lines(reasons: Sequence[Mapping[str, Any]], *, indent: str = "    ",
                 top: int = TOP_REASONS, more: str = "") -> list[str]:
    """`  3  404: No file found with id '<id>'.`: the top reasons, then how many more."""
    if not reasons:
        return []
    width = len(f"{max(r['count'] for r in reasons[:top]):,}")
    lines = []
    for r in reasons[:top]:
        status = str(r["status"]) if r["status"] is not None else "no answer"
        code = f" {r['code']}" if r["code"] else ""
        # A server's message may hold line breaks or control characters: one clean line.
        message = " ".join("".join(c if c.isprintable() else " " for c in r["message"]).split())
        if len(message) > MESSAGE_WIDTH:
            message = message[:MESSAGE_WIDTH] + "..."
        lines.append(f"{indent}{r['count']:>{width},}  {status}{code}: {message}")
    if len(reasons) > top:
        lines.append(f"{indent}... and {len(reasons) - top} other reason(s){more}")
    return lines


def _table(rows: Sequence[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max(len(name) for name, _ in rows)
    return [f"{indent}{name.ljust(width)}  {value}" for name, value in rows]


def format_summary(s: Mapping[str, Any]) -> str:
    """The human summary: a headline, a short table, the top failure reasons, the log and the
    command to run next. Short enough for cron mail."""
    width = len(f"{s['pairs']:,}")

    def n(value: int) -> str:
        return f"{value:>{width},}"

    limit = f"limit {s['rpm']:,}/min" if s["rpm"] != "auto" else (
        f"limit auto, learned {s['rpm_learned']:,.0f}/min" if s["rpm_learned"] else "limit auto")
    if s.get("op") == "detach":
        rows: list[tuple[str, str]] = [
            ("detached now", n(s["detached"]) + "   (taken out; the file objects stay)"),
            ("already detached", n(s["already_detached"]) + "   (not there: nothing to remove)"),
            ("detached earlier", n(s["detached_earlier"]) + "   (per the log; not sent again)"),
            ("failed", n(s["failed"])),
        ]
    elif s.get("op") == "sync":
        rows = [
            ("added now", n(s["attached"])),
            ("found in place", n(s["already_attached"] + s["attached_earlier"])
             + "   (listed with the manifest's attributes)"),
            ("updated", n(s["updated"]) + "   (in place; attributes set to the manifest's)"),
            ("detached", n(s["detached"] + s["already_detached"])
             + "   (in a named store, not in the manifest; only objects the tool uploaded "
             "are deleted, once in no store)"),
            ("failed", n(s["failed"])),
        ]
    else:
        rows = [
            ("attached now", n(s["attached"])),
            ("already attached", n(s["already_attached"]) + "   (the server had them)"),
        ]
        if s["updated"]:
            rows.append(("updated", n(s["updated"])
                         + "   (in place; attributes set to the manifest's)"))
        rows += [
            ("attached earlier", n(s["attached_earlier"])
             + "   (per the log; not sent again)"),
            ("failed", n(s["failed"])),
        ]
    at_failed = len(rows)
    if s.get("uploaded") or s.get("reused") or s.get("adopted"):
        rows.append(("uploaded", n(s["uploaded"])
                     + f"   ({_bytes(s['bytes_uploaded'])}, {s['upload_mb_per_s']:,.1f} "
                     f"MB/s; {s['reused']:,} reused, {s['adopted']:,} found by listing)"))
    if s.get("replaced") or s.get("files_deleted"):
        rows.append(("replaced", n(s.get("replaced", 0))
                     + f"   (old versions taken out of their stores; {s['files_deleted']:,} "
                     "file objects of ours deleted)"))
    if s["refused_earlier"]:
        rows.append(("refused earlier", n(s["refused_earlier"])
                     + "   (skipped; --retry-failed sends them)"))
    if s["pending"]:
        rows.append(("not done", n(s["pending"]) + "   (the next run does them)"))
    if s["duplicates"]:
        rows.append(("repeated", n(s["duplicates"]) + "   (in the manifest; attached once)"))
    rows += [
        ("requests", f"{s['requests']:,} in {_seconds(s['elapsed_s'])}"
                     + (f": {s['rate_per_min']:,.0f}/min" if s["elapsed_s"] >= RATE_AFTER else "")
                     + f" ({limit})"),
        ("", (f"{s['list_requests']:,} list requests, " if "list_requests" in s else "")
             + f"{s['checks']:,} checks of uncertain outcomes, {s['retries']:,} retries, "
             f"{s['throttled']:,} throttled (429)"
             + (f", {s['polls']:,} polls" if s["polls"] else "")),
        ("log", s["log"]),
        ("next", s["next"]),
    ]
    table = _table(rows)
    # The reasons go right under the "failed" row.
    reasons = reason_lines(s["failed_by_reason"], indent="      ",
                           more=" (all of them: --json, or attach-runner status --json)")
    lines = [_headline(s), *table[:at_failed], *reasons, *table[at_failed:]]
    if s["still_in_progress"]:
        lines.append(f"  warning: {s['still_in_progress']:,} files were still processing when "
                     "--wait-timeout ran out (counted as attached)")
    if s.get("possible_duplicates"):
        shown = ", ".join(s["possible_duplicates"][:5])
        lines.append(f"  warning: {len(s['possible_duplicates']):,} file objects may be "
                     f"duplicates of uploads whose outcome was unknown ({shown}); they were "
                     "not adopted (not provably ours) and are never deleted: check them in "
                     "the dashboard")
    if s["chunking_mismatch"]:
        lines.append(f"  warning: {s['chunking_mismatch']:,} files are in their store with "
                     "another chunking strategy than the manifest's (chunking cannot change in "
                     "place; detach and add them again to change it)")
    return "\n".join(lines)


def format_status(st: Mapping[str, Any]) -> str:
    """`attach-runner status`: a small table of what the log says of the manifest's pairs."""
    lock = (f"a run holds the log now (PID {st['locked_by']})" if st["locked_by"]
            else "no run holds the log now")
    if not st["runs"]:
        return "\n".join([
            f"{st['manifest']} ({st['target']}): never run; no log at {st['log']}",
            f"  {st['pairs']:,} pairs pending; start with: attach-runner run "
            f"{shlex.quote(st['manifest'])}",
            f"  {lock}",
        ])
    width = len(f"{st['pairs']:,}")

    def n(value: int) -> str:
        return f"{value:>{width},}"

    rows = [
        ("pairs", n(st["pairs"]) + "   (in the manifest, repeats once)"),
        ("attached", n(st["attached"])),
        ("already attached", n(st["already_attached"]) + "   (the server had them)"),
        *([("updated", n(st["updated"]) + "   (attributes set to the manifest's)")]
          if st["updated"] else []),
        *([("detached", n(st["detached"]) + "   (taken out; the file objects stay)"),
           ("already detached", n(st["already_detached"]) + "   (were not there)")]
          if st["detached"] or st["already_detached"] else []),
        ("failed", n(st["failed"])
         + (f"   ({st['refused']:,} refused: skipped unless --retry-failed)"
            if st["refused"] else "")),
        ("uncertain", n(st["uncertain"]) + "   (checked first by the next run)"),
        ("pending", n(st["pending"]) + "   (never sent)"),
    ]
    if st["not_in_manifest"]:
        rows.append(("not in manifest", n(st["not_in_manifest"]) + "   (in the log only)"))
    if st.get("uploaded_contents") or st.get("uncertain_uploads"):
        rows.append(("local files", f"{st['uploaded_contents']:,} contents uploaded, "
                     f"{st['uncertain_uploads']:,} uploads uncertain (checked first), "
                     f"{st['changed']:,} changed and {st['missing']:,} missing since the log"))
    if st.get("replaced") or st.get("files_deleted") or st.get("replaces_pending") or st.get(
            "file_deletes_pending"):
        rows.append(("replaced", f"{st['replaced']:,} old versions taken out, "
                     f"{st['files_deleted']:,} file objects of ours deleted; the next run: "
                     f"{st['replaces_pending']:,} to take out, {st['file_deletes_pending']:,} "
                     "to delete"))
    if st.get("possible_duplicates"):
        rows.append(("possible duplicates", ", ".join(st["possible_duplicates"][:5])
                     + "   (not provably ours: never adopted, never deleted)"))
    last = st.get("last_exit")
    head = (f"{st['manifest']} ({st['target']}): log {st['log']}, {st['runs']} run(s)"
            + (f", the last ended with exit {last}" if last is not None else ""))
    lines = [head, *_table(rows)]
    if st["failed_by_reason"]:
        lines.append("  failed by reason:")
        lines += reason_lines(st["failed_by_reason"], indent="    ",
                              more=" (all of them: --json)")
    lines.append(f"  {lock}")
    return "\n".join(lines)
