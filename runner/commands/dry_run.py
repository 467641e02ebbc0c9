"""`run --dry-run` and `detach --dry-run`: what a run would send, from the manifest and the log;
no key, no lock, no write, no request."""

from __future__ import annotations

import json
from collections.abc import Callable

from runner.commands.common import load_index, manifest_parts, prepare
from runner.config import Settings
from runner.console import Io
from runner.errors import EXIT_OK
from runner.items import Item
from runner.log.states import Plan
from runner.log.uploads import UploadIndex
from runner.operations.base import Operation
from runner.operations.detach import Detach
from runner.operations.upload import hash_file
from runner.requests.multipart import FileChanged, upload_filename
from runner.requests.targets import VectorStoreFiles
from runner.run.local import UPLOAD_BATCH_SIZE
from runner.run.tally import Tally
from runner.run.work import NewBatch, Single, iter_work


def show_run_plan(settings: Settings, io: Io, operation: type[Operation]) -> int:
    """What a run would send, from the manifest and the log: one line a request (or, with
    --json, only the counts, as one object); no key, no lock, no write, no request."""
    target, source, stats = prepare(settings, io)
    index = load_index(settings, target, io)
    tally = Tally(pairs=stats.pairs)
    detach = operation is Detach
    batch_size = settings.batch_size if target.supports_batches and operation.batches else 0
    show = None if settings.json else io.out.write
    counts = dict.fromkeys(("attach_requests", "batch_requests", "checks", "updates",
                            "detaches", "batches_to_follow", "pairs_to_attach",
                            "pairs_in_batches_to_follow", "uploads", "upload_bytes",
                            "uploads_to_check"), 0)
    contents = _Contents(index.uploads)
    grouped: dict[str, int] = {}  # store -> uploaded files its batches attach (run/local.py)
    for unit in iter_work(manifest_parts(source, target)(), index, tally,
                          retry_failed=settings.retry_failed, batch_size=batch_size,
                          operation=operation):
        if isinstance(unit, Single):
            item = unit.item
            if unit.plan is Plan.UPLOAD:
                item = contents.resolve(item, counts, show)
                if item.file_id and index.plan(item, retry_failed=settings.retry_failed)[0] in (
                        Plan.DONE, Plan.DUPLICATE):
                    tally.done_earlier += 1
                    continue
                counts["pairs_to_attach"] += 1
                if contents.first_in_store(item):  # else it shares that path's attach
                    grouped[item.owner] = grouped.get(item.owner, 0) + 1
            elif detach and unit.plan is Plan.CHECK:
                counts["checks"] += 1
                if show:
                    show(f"GET {target.check_path(item.owner, item.file_id)}   "
                         "(uncertain: check first, DELETE only if still there)\n")
            elif detach:
                counts["detaches"] += 1
                if show:
                    show(f"DELETE {target.detach_path(item.owner, item.file_id)}\n")
            elif unit.plan is Plan.CHECK:
                counts["checks"] += 1
                if show:
                    show(f"GET {target.check_path(item.owner, item.file_id)}   "
                         "(uncertain: check first, send only if absent)\n")
            elif unit.plan is Plan.UPDATE and isinstance(target, VectorStoreFiles):
                counts["updates"] += 1
                if show:
                    show(f"POST {target.update_path(item.owner, item.file_id)} "
                         f"{target.update_body(item).decode()}   (attributes changed)\n")
            else:
                counts["attach_requests"] += 1
                counts["pairs_to_attach"] += 1
                if show:
                    show(f"POST {target.attach_path(item.owner)} "
                         f"{target.attach_body(item).decode()}\n")
        elif isinstance(unit, NewBatch):
            counts["attach_requests"] += 1
            counts["batch_requests"] += 1
            counts["pairs_to_attach"] += len(unit.items)
            if show:
                show(f"POST {target.attach_path(unit.store).rsplit('/', 1)[0]}"
                     f"/file_batches ({len(unit.items)} files)\n")
        else:
            counts["batches_to_follow"] += 1
            counts["pairs_in_batches_to_follow"] += len(unit.items)
            if show:
                show(f"follow batch {unit.batch_id} ({len(unit.items)} files)\n")
    group_size = settings.batch_size or UPLOAD_BATCH_SIZE
    for store, files in grouped.items():
        batches = -(-files // group_size)
        counts["attach_requests"] += batches
        counts["batch_requests"] += batches
        if show:
            show(f"POST {target.attach_path(store).rsplit('/', 1)[0]}/file_batches "
                 f"({files} uploaded files, {batches} batch(es))\n")
    if settings.json:
        report = {"dry_run": True, "exit": EXIT_OK, "target": target.name,
                  "manifest": source.display, "log": settings.log, "pairs": stats.pairs,
                  **counts, "attached_earlier": 0 if detach else tally.done_earlier,
                  "detached_earlier": tally.done_earlier if detach else 0,
                  "refused_earlier": tally.refused_earlier, "duplicates": stats.duplicates}
        # Each pair is in exactly one of pairs_to_attach, checks, updates,
        # pairs_in_batches_to_follow, attached_earlier and refused_earlier.
        io.out.write(json.dumps(report) + "\n")
        return EXIT_OK
    if detach:
        io.out.write(
            f"dry run: {counts['detaches']} DELETE(s) and {counts['checks']} check(s) would "
            f"be sent; {tally.done_earlier} detached earlier, {tally.refused_earlier} refused "
            "earlier (skipped without --retry-failed); nothing was sent\n")
        return EXIT_OK
    if counts["uploads"] or counts["uploads_to_check"]:
        io.out.write(f"dry run: {counts['uploads']} upload(s) of {counts['upload_bytes']:,} "
                     f"bytes would be sent, {counts['uploads_to_check']} uncertain upload(s) "
                     "checked first\n")
    io.out.write(
        f"dry run: {counts['attach_requests']} attach request(s), {counts['updates']} "
        f"update(s) and {counts['checks']} check(s) would be sent; "
        f"{tally.done_earlier} attached earlier, "
        f"{tally.refused_earlier} refused earlier (skipped without --retry-failed); "
        "nothing was sent\n")
    return EXIT_OK


class _Contents:
    """What a run would do for local files' contents: each file hashed (the dry run reads
    the files whose quick check fails, as the run would), each distinct content uploaded
    once, unless the log has it uploaded (reused) or an upload of it is uncertain (to
    check first)."""

    def __init__(self, uploads: UploadIndex) -> None:
        self.uploads = uploads
        self.listed: set[str] = set()  # contents whose upload is shown already
        self.attached: set[tuple[str, str]] = set()  # (store, content) attached by the run

    def first_in_store(self, item: Item) -> bool:
        """Whether the item is the first path of its content in its store (the others share
        its attach: already attached, no request)."""
        content = (item.owner, item.local.sha256 if item.local else item.file_id)
        if content in self.attached:
            return False
        self.attached.add(content)
        return True

    def resolve(self, item: Item, counts: dict[str, int],
                show: Callable[[str], object] | None) -> Item:
        local = item.local
        assert local is not None
        if not local.sha256:
            try:
                local = hash_file(local)
            except (OSError, FileChanged) as exc:
                if show:
                    show(f"read {local.path}: {exc}; the run reads it again\n")
                return item
            item = item._replace(local=local)
        sha = local.sha256
        file_id = self.uploads.uploaded(sha)
        if file_id is not None:
            return item._replace(file_id=file_id)
        if sha in self.listed:
            return item
        self.listed.add(sha)
        if sha in self.uploads.unsettled:
            counts["uploads_to_check"] += 1
            if show:
                show(f"GET /files?purpose=assistants   (to check: the upload of {local.path} "
                     "is uncertain; uploaded again only if not found)\n")
            return item
        counts["uploads"] += 1
        counts["upload_bytes"] += local.size
        if show:
            show(f"POST /files {upload_filename(local.path)} ({local.size:,} bytes, "
                 f"{local.path})\n")
        return item
