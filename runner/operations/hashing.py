"""A local file's content identity (SPEC "Local files", Identity): its SHA-256, read in one
streaming pass with a stat before and after that must agree; and a path pair named as far as
the log and the file can tell before a run (the quick check, else the file read now).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

from runner.items import Item, LocalFile
from runner.log.uploads import UploadIndex
from runner.requests.multipart import FileChanged

HASH_CHUNK_BYTES = 1 << 20  # hashlib.file_digest's way (3.11+), by hand for 3.10
INLINE_HASH_BYTES = 256 * 1024  # hashed on the event loop: a quarter of a millisecond


class Hasher:
    """hash_file for a run: a small file at once, on the loop (a thread's hand-off costs more
    than hashing it); a large one in a thread (hashlib lets go of the GIL), at most one a core
    at a time, so the first large file is hashed, and uploading, soonest."""

    def __init__(self) -> None:
        self._threads = asyncio.Semaphore(len(os.sched_getaffinity(0))
                                          if hasattr(os, "sched_getaffinity")
                                          else os.cpu_count() or 1)

    async def hash(self, local: LocalFile) -> LocalFile:
        if local.size <= INLINE_HASH_BYTES:
            return hash_file(local)
        async with self._threads:
            return await asyncio.to_thread(hash_file, local)


def hash_file(local: LocalFile) -> LocalFile:
    """The file's SHA-256 in one streaming pass, with the stat before and after, which must
    agree (else FileChanged: it is read again next run)."""
    hashed_ns = time.time_ns()
    # Unbuffered (the reads are ours: no buffer of its own to fill and copy out of), and the
    # after-stat on the open file: half the cost of a small file's hash. A file replaced
    # meanwhile (a new file renamed over the path) was read whole as it was; its upload, and
    # the next run's quick check, stat the path and see the new one.
    with open(local.path, "rb", buffering=0) as stream:
        fd = stream.fileno()
        before = os.fstat(fd)
        digest = hashlib.sha256()
        if before.st_size < HASH_CHUNK_BYTES:
            # Whole, and a byte more (a file that grew shows in the after-stat), until EOF.
            while chunk := stream.read(before.st_size + 1):
                digest.update(chunk)
        else:
            buffer = bytearray(HASH_CHUNK_BYTES)
            view = memoryview(buffer)
            while size := stream.readinto(buffer):
                digest.update(view[:size])
        after = os.fstat(fd)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise FileChanged(f"{local.path} changed while it was read")
    return LocalFile(local.path, before.st_size, before.st_mtime_ns, digest.hexdigest(),
                     hashed_ns)


def resolve_path(item: Item, index: UploadIndex) -> Item:
    """A path pair named as far as can be known before a run (sync plans from it): its
    content by the quick check, else read now; its file object when the log uploaded that
    content (file_id "" otherwise: to upload). A file that cannot be read, or changes while it
    is read, is left to the upload, which reports it."""
    item = index.resolve(item)
    local = item.local
    if item.file_id or local is None or local.sha256:
        return item
    try:
        local = hash_file(local)
    except (OSError, FileChanged):
        return item
    return item._replace(local=local, file_id=index.uploaded(local.sha256) or "")

