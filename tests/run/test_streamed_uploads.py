"""Large files hashed as they upload (SPEC "Local files", Exactly once; operations/upload.py):
a file of LARGE_CONTENT_BYTES or more whose size no known content shares is read once, its
`upload-sent` written once its file part is sent and before the body's closing boundary.
Judged by the sandbox's record of file objects and stores, under a slow link (the sandbox
reads upload bodies at a set pace, so an upload is seen under way), faults and kill -9."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.log.uploads import LARGE_CONTENT_BYTES
from runner.sandbox import SandboxThread
from tests.cli import (
    kill_9_at_random_moments,
    read_events,
    rerun_until_exit_0,
    run_main,
    spawn,
    wait_for_held_writes,
    wait_until,
    written_events,
)
from tests.local_files import (  # noqa: F401 - sandbox_key: a fixture
    UNCERTAIN_UPLOAD_FAULTS,
    UNDER_FAULTS,
    args_for,
    assert_exactly_once,
    contents_in,
    sandbox_key,
    settled_under_faults,
    write,
)

pytestmark = pytest.mark.usefixtures("sandbox_key")

MB = 1 << 20
SLOW_LINK = 8 * MB  # bytes a second the sandbox reads an upload's file at
LONG_FILE = 24 * MB  # 3 s over the slow link: more than the sockets' buffers hold


def big(path: Path, size: int, seed: int) -> bytes:
    """A file of `size` bytes whose content `seed` tells apart, with an mtime long past."""
    line = f"document {seed} ".encode()
    content = (line * (size // len(line) + 1))[:size]
    write(path, content)
    return content


def sha_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def uploads_in(log: Path) -> list[dict[str, Any]]:
    return [e for e in read_events(log) if e["event"] in ("upload-sent", "uploaded")]


def test_a_large_file_is_sent_as_it_is_hashed_and_its_line_written_at_its_end(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # While the sandbox reads the body (slowly), the log has no upload-sent yet: the file is
    # hashed as it goes (a file hashed first has its line written before the request). The
    # line then names the content, the upload is attached, and the rerun reads nothing.
    sb = sandbox(upload_bytes_per_s=SLOW_LINK)
    content = big(tmp_path / "docs" / "manual.pdf", LONG_FILE, 1)
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,docs/manual.pdf\n")
    log = tmp_path / "log"
    proc = spawn(*args_for(sb, manifest, log))
    wait_until(lambda: sb.record()["receiving_uploads"] > 0, proc)
    assert not [e for e in written_events(log) if e["event"] == "upload-sent"]
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    sent, uploaded = uploads_in(log)
    assert (sent["event"], sent["sha256"], sent["bytes"]) == ("upload-sent", sha_of(content),
                                                               LONG_FILE)
    assert (uploaded["event"], uploaded["sha256"]) == ("uploaded", sha_of(content))
    record = sb.record()
    assert contents_in(record, "vs_1") == [sha_of(content)]
    assert record["uploads"]["applied"] == 1
    again = run_main(args_for(sb, manifest, log))
    assert again.code == 0, again.err
    assert again.json()["requests"] == 0
    assert sb.record()["uploads"]["applied"] == 1


def test_a_large_file_rewritten_while_it_streams_makes_no_object(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # The body stops before its closing boundary once the file is seen changed: the server
    # makes no object at all (a file hashed first would have made one, and deleted it). The
    # pair fails, retryable; the rerun uploads the new content.
    sb = sandbox(upload_bytes_per_s=SLOW_LINK)
    doc = tmp_path / "docs" / "manual.pdf"
    big(doc, LONG_FILE, 1)
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,docs/manual.pdf\n")
    log = tmp_path / "log"
    proc = spawn(*args_for(sb, manifest, log))
    wait_until(lambda: sb.record()["receiving_uploads"] > 0, proc)
    with doc.open("r+b") as stream:  # rewritten in place: same size, a new mtime
        stream.seek(LONG_FILE - 5)
        stream.write(b"edit!")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    summary = json.loads(out)
    assert "changed while it was read or uploaded" in summary["failed_by_reason"][0]["message"]
    record = wait_for_held_writes(sb)
    assert record["files"] == {}
    assert not [e for e in read_events(log) if e["event"] == "upload-sent"]
    now = doc.read_bytes()
    sb.update(upload_bytes_per_s=None)
    again = run_main(args_for(sb, manifest, log))
    assert again.code == 0, again.err
    assert contents_in(sb.record(), "vs_1") == [sha_of(now)]


def test_large_files_of_one_size_are_uploaded_once_a_content(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # a.bin and b.bin hold one content; c.bin another of the same size; d.bin a size of its
    # own. Only one of a size may stream; the others wait for its end before they look for
    # reuse: three uploads, three contents in the store, once each.
    sb = sandbox()
    size = LARGE_CONTENT_BYTES + 1000
    same = big(tmp_path / "a.pdf", size, 1)
    big(tmp_path / "b.pdf", size, 1)
    other = big(tmp_path / "c.pdf", size, 2)
    own = big(tmp_path / "d.pdf", size + 1, 3)
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,*.pdf\n")
    result = run_main(args_for(sb, manifest, tmp_path / "log"))
    assert result.code == 0, result.err
    record = sb.record()
    assert record["uploads"]["applied"] == 3
    assert contents_in(record, "vs_1") == sorted(sha_of(c) for c in (same, other, own))
    assert result.json()["uploaded"] == 3


@pytest.mark.parametrize("fault", UNCERTAIN_UPLOAD_FAULTS)
def test_uncertain_streamed_uploads_are_settled_by_listing(
        tmp_path: Path, sandbox: Callable[..., SandboxThread], fault: dict[str, Any]) -> None:
    sb = sandbox(seed=11, fault_methods=("POST",), **fault)
    contents = [big(tmp_path / "docs" / f"d{i}.pdf", LARGE_CONTENT_BYTES + i, i)
                for i in range(6)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,docs/*.pdf\n")
    record, duplicates = settled_under_faults(
        sb, args_for(sb, manifest, tmp_path / "log", *UNDER_FAULTS))
    assert_exactly_once(record, "vs_1", [], duplicates, shas=[sha_of(c) for c in contents])


def test_kill_9_while_large_files_stream_leaves_nothing_twice(
        tmp_path: Path, sandbox: Callable[..., SandboxThread]) -> None:
    # Killed while bodies stream (no line yet, no object: the closing boundary never went)
    # and while uploads are held after their last byte (their line written, the object made
    # later): the reruns adopt what landed and upload the rest, each content once.
    sb = sandbox(seed=4, fault_methods=("POST",), late_apply_rate=0.4, late_apply_ms=400,
                 upload_bytes_per_s=64 * MB)
    contents = [big(tmp_path / "docs" / f"d{i}.pdf", LARGE_CONTENT_BYTES + i, i)
                for i in range(6)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("vector_store_id,path\nvs_1,docs/*.pdf\n")
    log = tmp_path / "log"
    args = args_for(sb, manifest, log, "--timeout", "1")

    def receiving(_: int) -> bool:
        return sb.record()["receiving_uploads"] > 0

    kill_9_at_random_moments(args, random.Random(9), (0.0, 0.3), kills=3, once=receiving)
    final = rerun_until_exit_0(args, runs=5)
    record = wait_for_held_writes(sb)
    assert_exactly_once(record, "vs_1", [], set(final.json()["possible_duplicates"]),
                        shas=[sha_of(c) for c in contents])
