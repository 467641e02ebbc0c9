"""`attach-runner demo`: the tool against its own in-process sandbox, with a few faults, on the
vector-store manifest shipped in the package (file ids, and a glob of local Markdown files
shipped beside it, uploaded through the sandbox's Files API); its closing confirmation is the
sandbox's own record (each pair in its store once, with the manifest's attributes; each local
file's content uploaded once)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shlex
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from io import StringIO
from typing import Any

from runner.attributes import same_attributes
from runner.commands.common import load_index, manifest_items, prepare
from runner.commands.run import execute
from runner.commands.status import status
from runner.config import Settings, load_api_key
from runner.console import Io
from runner.errors import EXIT_FAILED, EXIT_OK
from runner.items import Item

# The demo's run: file batches of 4 (each store's files in one `file_batches` call, with each
# file's options), a short settle wait so an uncertain write is checked within the second.
DEMO_FLAGS = ("--batch-size", "4", "--backoff-initial", "0.05", "--backoff-max", "0.5",
              "--settle", "1")
# One file the store already holds, with attributes the manifest no longer gives: the run adds
# it again (the store keeps the old ones), sees the difference and sends one update.
# The fault sequence: a 500, a 502, a 503 and dropped connections in a run of about 20
# requests (the same requests in the same order draw the same faults).
DEMO_SEED = 12
DEMO_STALE = ("vs_demo_support", "file-demo05", {"product": "widget", "lang": "fr"})


def demo_manifest() -> str:
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # runner/
    return os.path.join(package, "data", "example.yaml")


def demo(make_settings: Callable[[list[str]], Settings], io: Io) -> int:
    """Run the packaged vector-store example against an in-process sandbox with a few faults,
    with a fresh temporary log (deleted at the end: the output says so, and sends no one back
    to it); then confirm from the sandbox's own record that each pair is in its store once,
    with the manifest's attributes, and each local file's content was uploaded once."""
    from runner.sandbox import Sandbox, SandboxConfig

    async def main() -> int:
        sandbox = Sandbox(SandboxConfig(rps=20, burst=5, fail_rate=0.15, reset_after_rate=0.1,
                                        latency_ms=30, seed=DEMO_SEED))
        base_url = await sandbox.start()
        try:
            with tempfile.TemporaryDirectory(prefix="attach-runner-demo-") as tmp:
                log = os.path.join(tmp, "demo.results.jsonl")
                settings = make_settings(["run", demo_manifest(), "--log", log, "--base-url",
                                          base_url, "--api-key-env", "ATTACH_RUNNER_DEMO_KEY",
                                          *DEMO_FLAGS])
                target, source, stats = prepare(settings, io)
                items = list(manifest_items(source, target)())
                os.environ["ATTACH_RUNNER_DEMO_KEY"] = "sk-sandbox"
                key = load_api_key(settings, os.environ)
                index = load_index(settings, target, io)
                store, file_id, stale = DEMO_STALE
                sandbox.preload("vector_store", store, [{"file_id": file_id,
                                                         "attributes": stale}])
                local = sum(item.local is not None for item in items)
                io.out.write(
                    f"demo: sandbox at {base_url} (a few 500s/502s and dropped connections "
                    f"injected; {store}/{file_id} already there, with stale attributes)\n"
                    f"demo: running {stats.pairs} pairs ({local} of them local files to "
                    f"upload), {stats.owners} vector stores, --batch-size 4, from "
                    f"{source.display}\n\n")
                io.out.flush()
                # The summary and the status name the log: held back, to be marked temporary.
                buffer = StringIO()
                held = Io(out=buffer, err=io.err)
                code = await execute(settings, held, ["demo"], target, source, stats, index,
                                     key)
                record = sandbox.record()
                buffer.write("\nattach-runner status (what the log now says):\n")
                status(settings, held, as_json=False)
                io.out.write(_mark_temporary(buffer.getvalue(), log))
        finally:
            await sandbox.stop()
        return _confirm(record, items, code, io)

    return asyncio.run(main())


# The summary's "next" row, unless it says there is nothing to do.
_NEXT_ROW = re.compile(r"^(  next +)(?=\S)(?!nothing\b).*$", re.MULTILINE)


def _mark_temporary(text: str, log: str) -> str:
    """The demo's summary and status, with its log marked temporary, and a "next" command
    that does not send the user back to that log or to the sandbox, both gone by then."""
    text = text.replace(log, f"{log} (temporary)")
    return _NEXT_ROW.sub(r"\1attach-runner demo   (it starts afresh: a new sandbox, a new log)",
                         text)


@dataclass
class DemoCheck:
    """What the sandbox's record says of the demo's pairs."""

    pairs: int = 0
    once: int = 0  # in place exactly once: attached by one POST, or preloaded and not added
    more: int = 0  # attached more than once
    managed: int = 0  # pairs whose manifest gives attributes
    same: int = 0  # of those, holding exactly the manifest's attributes in the store
    updates: int = 0  # attribute updates the sandbox applied
    local: int = 0  # pairs naming a local file
    uploaded_once: int = 0  # of those, whose content is in exactly one file object

    @property
    def ok(self) -> bool:
        return (self.once == self.pairs and self.more == 0 and self.same == self.managed
                and self.uploaded_once == self.local)


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's content (hex), read here, not by the run."""
    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read()).hexdigest()


def check_demo(record: Mapping[str, Any], items: Sequence[Item],
               digest: Callable[[str], str] = file_sha256) -> DemoCheck:
    """Each pair in its store exactly once, and each managed pair's attributes in the store
    equal to the manifest's, per the sandbox's own record. A local file's pair is the file
    object whose SHA-256 (the record's "files") is the file's: its content uploaded once, the
    one object not deleted that holds it."""
    known: Mapping[str, Mapping[str, Any]] = record.get("pairs", {})
    stores: Mapping[str, Mapping[str, Any]] = record.get("vector_store_files", {})
    by_content: dict[str, list[str]] = {}
    for object_id, obj in record.get("files", {}).items():
        if not obj.get("deleted"):
            by_content.setdefault(obj.get("sha256", ""), []).append(object_id)
    check = DemoCheck()
    for item in items:
        check.pairs += 1
        file_id = item.file_id
        if item.local is not None:
            check.local += 1
            objects = by_content.get(digest(item.local.path), [])
            check.uploaded_once += len(objects) == 1
            file_id = objects[0] if len(objects) == 1 else ""
        entry = known.get(f"{item.owner}/{file_id}") or {}
        times = entry.get("attached", 0) + (1 if entry.get("preloaded") else 0)
        check.once += times == 1
        check.more += times > 1
        check.updates += entry.get("updated", 0)
        wanted = item.options.attributes if item.options is not None else None
        if wanted is not None:
            check.managed += 1
            held = stores.get(item.owner, {}).get(file_id)
            check.same += held is not None and same_attributes(held.get("attributes"), wanted)
    return check


def _confirm(record: dict[str, Any], items: Sequence[Item], code: int, io: Io) -> int:
    check = check_demo(record, items)
    io.out.write(f"\nsandbox record: {check.once} of {check.pairs} pairs in their store exactly "
                 f"once, {check.more} attached more than once, {record.get('requests', '?')} "
                 f"requests seen\n")
    io.out.write(f"sandbox record: {check.same} of {check.managed} pairs with attributes hold "
                 f"the manifest's ({check.updates} updated in place); "
                 f"{check.pairs - check.managed} plain pairs: attributes not managed\n")
    io.out.write(f"sandbox record: {check.uploaded_once} of {check.local} local files uploaded "
                 "once (one file object each, its SHA-256 the file's), "
                 f"{record.get('uploads', {}).get('applied', '?')} uploads applied\n")
    ok = code == EXIT_OK and check.ok
    io.out.write("demo: OK: every pair attached exactly once, with the manifest's attributes; "
                 "each local file uploaded once\n" if ok else "demo: NOT OK: see above\n")
    io.out.write("demo: the sandbox and the temporary log are gone now; each demo starts "
                 "afresh\n")
    io.out.write(f"next: try `attach-runner validate {shlex.quote(demo_manifest())}`, or start "
                 "`attach-runner sandbox --port 8089` and point a run at it with "
                 "--base-url http://127.0.0.1:8089/v1\n")
    return EXIT_OK if ok else EXIT_FAILED
