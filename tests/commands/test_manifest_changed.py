"""A converged `run` reads its manifest once: the check settles the blocks the log has done and
the run passes over them by byte offset. A manifest rewritten between the two is refused, one
line, exit 2, nothing sent; the next run takes the new rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import runner.commands.run as run_command
from tests.cli import main_in, run_cli


def test_a_manifest_rewritten_after_its_check_is_refused_and_nothing_sent(
        tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = sandbox()
    manifest = tmp_path / "m.csv"
    rows = "".join(f'vs_a,file-{i},"{json.dumps({"n": i}).replace(chr(34), chr(34) * 2)}"\n'
                   for i in range(60))
    manifest.write_text("vector_store_id,file_id,attributes\n" + rows)
    first = run_cli("run", "m.csv", "--base-url", sb.base_url, cwd=tmp_path)
    assert first.code == 0, first.err
    sent = sb.record()["requests"]

    checked = run_command.check_source

    def check_then_rewrite(*args: Any, **kwargs: Any) -> Any:
        stats = checked(*args, **kwargs)
        assert stats.settled == 60  # every block settled by the check: none to read again
        with open(manifest, "a") as out:  # the nightly job writes the file meanwhile
            out.write("vs_a,file-new,\n")
        return stats

    monkeypatch.setattr(run_command, "check_source", check_then_rewrite)
    res = main_in(tmp_path, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url])
    assert res.code == 2
    assert res.err.splitlines() == [
        "attach-runner: error: m.csv: changed while the run was reading it; run the same "
        "command again once it is written"]
    assert sb.record()["requests"] == sent
    monkeypatch.undo()
    again = run_cli("run", "m.csv", "--base-url", sb.base_url, cwd=tmp_path)
    assert again.code == 0, again.err
    assert sb.record()["pairs"]["vs_a/file-new"]["attached"] == 1


def test_a_log_written_between_the_check_and_the_lock_is_read_again(
        tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` reads the log before the check and takes the lock after it. A run that wrote to
    the log in between (here a real `detach` of one pair) is not overruled by the check's
    verdicts: the log is read again under the lock and the detached pair attached again."""
    sb = sandbox()
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,file_id\n" + "".join(
        f"vs_a,file-{i}\n" for i in range(40)))
    (tmp_path / "d.csv").write_text("vector_store_id,file_id\nvs_a,file-3\n")
    first = run_cli("run", "m.csv", "--base-url", sb.base_url, cwd=tmp_path)
    assert first.code == 0, first.err

    checked = run_command.check_source

    def check_then_detach(*args: Any, **kwargs: Any) -> Any:
        stats = checked(*args, **kwargs)
        assert stats.settled == 40  # the verdicts of the log as it was read
        detach = run_cli("detach", "d.csv", "--log", "m.csv.results.jsonl", "--base-url",
                         sb.base_url, cwd=tmp_path)
        assert detach.code == 0, detach.err
        return stats

    monkeypatch.setattr(run_command, "check_source", check_then_detach)
    res = main_in(tmp_path, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url, "--json"])
    assert res.code == 0, res.err
    summary = json.loads(res.out.splitlines()[-1])
    assert (summary["attached"], summary["attached_earlier"]) == (1, 39)
    assert sb.record()["pairs"]["vs_a/file-3"]["attached"] == 2  # added, detached, added
