"""`run --dry-run` and `detach --dry-run`: what a run would send, from the manifest and the log;
no key, no lock, no write, no request."""

from __future__ import annotations

import json
from collections.abc import Callable

from runner.commands.common import load_index, manifest_parts, prepare, remembers_every_pair
from runner.config import Settings
from runner.console import Io
from runner.errors import EXIT_OK
from runner.items import Item, pair_key
from runner.log.resume import ResumeIndex
from runner.log.states import Plan
from runner.log.uploads import UploadIndex
from runner.operations.base import Operation
from runner.operations.detach import Detach
from runner.operations.hashing import hash_file
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
    index.expect_repeats = remembers_every_pair(stats, index)  # as the run sets it
    tally = Tally(pairs=stats.pairs)
    detach = operation is Detach
    batch_size = settings.batch_size if target.supports_batches and operation.batches else 0
    show = None if settings.json else io.out.write
    counts = dict.fromkeys(("attach_requests", "batch_requests", "checks", "updates",
                            "detaches", "batches_to_follow", "pairs_to_attach",
                            "pairs_in_batches_to_follow", "uploads", "upload_bytes",
                            "uploads_to_check", "replaces", "file_deletes"), 0)
    contents = _Contents(index.uploads)
    grouped: dict[str, int] = {}  # store -> uploaded files its batches attach (run/local.py)
    for unit in iter_work(manifest_parts(source, target)(), index, tally,
                          retry_failed=settings.retry_failed, batch_size=batch_size,
                          operation=operation):
        if isinstance(unit, Single):
            item = unit.item
            if unit.plan is Plan.UPLOAD:
                item = contents.resolve(item, counts, show)
                _replacing(index, item)
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
    if not detach:
        _leftovers(settings, index, counts, show)
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
    if counts["replaces"] or counts["file_deletes"]:
        io.out.write(f"dry run: then {counts['replaces']} old version(s) taken out of their "
                     f"stores and {counts['file_deletes']} file object(s) of ours deleted\n")
    return EXIT_OK


def _replacing(index: ResumeIndex, item: Item) -> None:
    """A path pair whose content the run would upload or reuse: once attached, it is its
    path's version in the store (the one before it is then superseded: see _leftovers)."""
    local = item.local
    if local is None or not local.sha256:
        return
    new = item.file_id or f"upload-of-{local.sha256[:16]}"  # in memory only
    index.versions.note_end(pair_key(item.owner, new), item.owner, new, "attached",
                            local.path)


def _leftovers(settings: Settings, index: ResumeIndex, counts: dict[str, int],
               show: Callable[[str], object] | None) -> None:
    """The run's end (run/leftovers.py), as far as the log and the manifest tell: the old
    versions of changed paths (and of replaces an earlier run left unfinished) taken out
    of their stores, then the file objects of ours no store holds deleted."""
    for old in index.stale_versions():
        counts["replaces"] += 1
        if show:
            show(f"DELETE /vector_stores/{old.store}/files/{old.file_id}   (detach-version: "
                 f"an old version of {old.path})\n")
        # As the run's end will see it once that detach is done.
        index.note_done(old.store, old.file_id, "detached", retryable=False, uncertain=False,
                        op="detach-version")
    if settings.keep_files:
        return
    for file_id in index.unused_uploads():
        counts["file_deletes"] += 1
        if show:
            show(f"DELETE /files/{file_id}   (ours, in no store now)\n")


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
