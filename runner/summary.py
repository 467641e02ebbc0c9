"""The end of a run, in words and as one JSON object, and what the log says (`status`).

JSON field names are a promise (README: "The --json summary"); add fields, never rename.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from runner.attempt import Counters
from runner.engine import RunResult

TOP_REASONS = 5

REFUSAL_HINTS = {
    "auth": "the API refused the key (401) from {key_source}; put a valid key there and run again",
    "quota": "the API says the account's quota is used up (429 insufficient_quota); check the "
             "plan and billing at platform.openai.com, then run again",
    "beta": "the API no longer serves this API version (400 invalid_beta); Assistants v1 is "
            "retired: use --target {other_target}",
    "breaker": "the first {size} attach requests were all refused the same way ({signature}) "
               "across {owners} owner(s), so the run stopped; check --base-url and the IDs, "
               "then run again",
    "refused": "the API refused the run; see the log, then run again",
}


def refusal_line(kind: str, **facts: Any) -> str:
    return REFUSAL_HINTS.get(kind, REFUSAL_HINTS["refused"]).format(**facts)


def rerun_command(argv: Sequence[str]) -> str:
    return "attach-runner " + " ".join(shlex.quote(a) for a in argv)


def next_step(exit_code: int, *, manifest: str, argv: Sequence[str], retryable_failed: int,
              refused: int) -> str:
    """The command a user should run next."""
    rerun = rerun_command(argv)
    if exit_code == 0:
        return "nothing: every pair is attached"
    if exit_code in (4, 5, 130, 143):
        return f"{rerun}   (the same command resumes where this run stopped)"
    if refused and not retryable_failed:
        return (f"attach-runner failed {shlex.quote(manifest)} > failed.csv   (see what the API "
                "refused; fix it, then rerun with --retry-failed)")
    return f"{rerun}   (retries the failed pairs; refused ones need --retry-failed)"


def build_summary(result: RunResult, counters: Counters, *, target: str, manifest: str,
                  log: str, rpm: int | None, learned_rpm: float | None, exit_code: int,
                  argv: Sequence[str], error: str | None) -> dict[str, Any]:
    tally = result.tally
    reasons = sorted(tally.failed_reasons.items(), key=lambda kv: -kv[1])
    refused_now = sum(n for (status, _, _), n in reasons if status is not None and status < 500
                      and status not in (408, 409, 429))
    elapsed = max(result.elapsed, 1e-9)
    summary: dict[str, Any] = {
        "exit": exit_code,
        "target": target,
        "manifest": manifest,
        "log": log,
        "pairs": tally.pairs,
        "attached": tally.attached,
        "already_attached": tally.already_attached,
        "failed": tally.failed,
        "attached_earlier": tally.done_earlier,
        "refused_earlier": tally.refused_earlier,
        "pending": tally.pending,
        "duplicates": tally.duplicates,
        "failed_by_reason": [
            {"status": status, "code": code, "message": message, "count": n}
            for (status, code, message), n in reasons
        ],
        "requests": counters.requests,
        "attach_requests": counters.attach_requests,
        "checks": counters.checks,
        "polls": counters.polls,
        "retries": counters.retries,
        "throttled": counters.throttled,
        "uncertain": counters.uncertain,
        "still_in_progress": counters.still_in_progress,
        "elapsed_s": round(result.elapsed, 3),
        "rate_per_min": round(counters.requests / elapsed * 60, 1),
        "rpm": rpm if rpm is not None else "auto",
        "rpm_learned": round(learned_rpm, 1) if learned_rpm else None,
        "interrupted": result.stop in ("SIGINT", "SIGTERM", "max-runtime"),
        "stopped_by": result.stop,
        "next": next_step(exit_code, manifest=manifest, argv=argv,
                          retryable_failed=tally.failed - refused_now,
                          refused=refused_now + tally.refused_earlier),
    }
    if error:
        summary["error"] = error
    return summary


def format_summary(s: Mapping[str, Any]) -> str:
    """The human summary: a few short lines, cron-mail friendly."""
    lines = [
        f"attach-runner: {s['pairs']} pairs ({s['target']}): "
        f"{s['attached']} attached, {s['already_attached']} already attached, "
        f"{s['failed']} failed, {s['attached_earlier']} attached earlier"
        + (f", {s['refused_earlier']} refused earlier (skipped)" if s["refused_earlier"] else "")
        + (f", {s['pending']} not done" if s["pending"] else ""),
    ]
    for reason in s["failed_by_reason"][:TOP_REASONS]:
        status = reason["status"] if reason["status"] is not None else "no answer"
        code = f" {reason['code']}" if reason["code"] else ""
        lines.append(f"  failed {reason['count']}: {status}{code}: {reason['message'][:160]}")
    rest = len(s["failed_by_reason"]) - TOP_REASONS
    if rest > 0:
        lines.append(f"  ... and {rest} other reasons (attach-runner status shows them all)")
    rate = f"{s['rate_per_min']:.0f}/min"
    limit = f"limit {s['rpm']}/min" if s["rpm"] != "auto" else (
        f"limit auto, learned {s['rpm_learned']:.0f}/min" if s["rpm_learned"] else "limit auto")
    lines.append(
        f"  {s['requests']} requests in {s['elapsed_s']:.1f}s ({rate}, {limit}); "
        f"{s['checks']} checks, {s['retries']} retries, {s['throttled']} throttled (429)"
        + (f", {s['duplicates']} repeated pairs skipped" if s["duplicates"] else "")
    )
    if s["still_in_progress"]:
        lines.append(f"  warning: {s['still_in_progress']} files were still processing when "
                     "--wait-timeout ran out (counted as attached)")
    lines.append(f"  log: {s['log']}")
    lines.append(f"  next: {s['next']}")
    return "\n".join(lines)


def format_status(st: Mapping[str, Any]) -> str:
    if not st["runs"]:
        head = (f"{st['manifest']}: never run (no log at {st['log']}); "
                f"{st['pairs']} pairs pending")
        return head
    rows = [
        ("pairs in the manifest", st["pairs"]),
        ("attached", st["attached"]),
        ("already attached", st["already_attached"]),
        ("failed", st["failed"]),
        ("  of which refused (need --retry-failed)", st["refused"]),
        ("uncertain (checked first next run)", st["uncertain"]),
        ("pending", st["pending"]),
        ("in the log but not in the manifest", st["not_in_manifest"]),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{st['manifest']} ({st['target']}), log {st['log']}, {st['runs']} run(s)"]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    for reason in st["failed_by_reason"][:TOP_REASONS]:
        status = reason["status"] if reason["status"] is not None else "no answer"
        code = f" {reason['code']}" if reason["code"] else ""
        lines.append(f"  failed {reason['count']}: {status}{code}: {reason['message'][:160]}")
    if st["locked_by"]:
        lines.append(f"  a run holds the log now (PID {st['locked_by']})")
    return "\n".join(lines)
