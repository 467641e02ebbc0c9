"""`run` reads its manifest once: the check reads every row, settles the blocks the log has done,
and keeps the rest (runner/manifest/kept.py) for the run, which takes them from there. A
manifest rewritten between the two changes nothing in the run (it sends exactly the rows that
were checked); the next run takes the new rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import runner.commands.run as run_command
from tests.cli import main_in, run_cli


def attributed_rows(n: int) -> str:
    return "".join(f'vs_a,file-{i},"{json.dumps({"n": i}).replace(chr(34), chr(34) * 2)}"\n'
                   for i in range(n))


def rewrite_after_the_check(monkeypatch: pytest.MonkeyPatch, manifest: Path, text: str,
                            settled: int) -> None:
    """The nightly job writes the manifest while the run is between its check and its run."""
    checked = run_command.check_source

    def check_then_rewrite(*args: Any, **kwargs: Any) -> Any:
        stats = checked(*args, **kwargs)
        assert stats.settled == settled
        manifest.write_text(text)
        return stats

    monkeypatch.setattr(run_command, "check_source", check_then_rewrite)


@pytest.mark.parametrize("rewritten", ["a new row", "garbage"])
def test_a_fresh_run_sends_the_rows_it_checked_whatever_the_file_holds_after(
        tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch, rewritten: str) -> None:
    """Fails if the run reads the manifest again: the garbage would stop it mid-run (exit 2,
    after sending), the new row would be sent unchecked."""
    sb = sandbox()
    manifest = tmp_path / "m.csv"
    header = "vector_store_id,file_id,attributes\n"
    manifest.write_text(header + attributed_rows(60))
    later = (header + attributed_rows(60) + "vs_a,file-new,\n" if rewritten == "a new row"
             else "vector_store_id,file_id\nvs a,not an id\n")
    rewrite_after_the_check(monkeypatch, manifest, later, settled=0)
    res = main_in(tmp_path, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url, "--json"])
    assert res.code == 0, res.err
    assert json.loads(res.out.splitlines()[-1])["attached"] == 60
    record = sb.record()
    assert sorted(record["pairs"]) == sorted(f"vs_a/file-{i}" for i in range(60))
    assert all(record["vector_store_files"]["vs_a"][f"file-{i}"]["attributes"] == {"n": i}
               for i in range(60))
    monkeypatch.undo()
    again = run_cli("run", "m.csv", "--base-url", sb.base_url, cwd=tmp_path)
    if rewritten == "a new row":
        assert again.code == 0, again.err
        assert sb.record()["pairs"]["vs_a/file-new"]["attached"] == 1
    else:  # the next run checks what the file holds now
        assert again.code == 2
        assert "m.csv:2:" in again.err
        assert sb.record()["requests"] == record["requests"]


def test_a_converged_rerun_rewritten_after_its_check_sends_nothing_and_the_next_takes_it(
        tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = sandbox()
    manifest = tmp_path / "m.csv"
    header = "vector_store_id,file_id,attributes\n"
    manifest.write_text(header + attributed_rows(60))
    first = run_cli("run", "m.csv", "--base-url", sb.base_url, cwd=tmp_path)
    assert first.code == 0, first.err
    sent = sb.record()["requests"]
    # Every block settled by the check: nothing kept, nothing to read again.
    rewrite_after_the_check(monkeypatch, manifest,
                            header + attributed_rows(60) + "vs_a,file-new,\n", settled=60)
    res = main_in(tmp_path, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url])
    assert res.code == 0, res.err
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


def test_a_run_that_kept_nothing_reads_again_and_stops_on_a_rewritten_manifest(
        tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the check could keep nothing (no room beside the log), the run reads the manifest
    again: one rewritten in between stops it before anything is sent (exit 2), a fresh run
    too; the next run takes the new rows."""
    sb = sandbox()
    manifest = tmp_path / "m.csv"
    header = "vector_store_id,file_id,attributes\n"
    manifest.write_text(header + attributed_rows(60))
    monkeypatch.setattr(run_command.KeptParts, "beside",
                        classmethod(lambda cls, directory: cls(None)))
    rewrite_after_the_check(monkeypatch, manifest,
                            header + attributed_rows(60) + "vs_a,file-new,\n", settled=0)
    res = main_in(tmp_path, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url])
    assert res.code == 2
    assert res.err.splitlines() == [
        "attach-runner: error: m.csv: changed while the run was reading it; run the same "
        "command again once it is written"]
    assert sb.record()["requests"] == 0
    monkeypatch.undo()
    again = run_cli("run", "m.csv", "--base-url", sb.base_url, cwd=tmp_path)
    assert again.code == 0, again.err
    assert len(sb.record()["pairs"]) == 61
