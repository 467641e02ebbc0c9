"""What the log says of local files and their uploads (SPEC "Local files"): each path's content
as last read (for the quick check), which file object holds each content this log uploaded
(or adopted), and the uploads whose outcome is not known yet.

Fed by the resume index (resume.py) with every line that names a path or an upload:

    upload-sent   {path, sha256, bytes, filename}      before a `POST /files`
    uploaded      {path, sha256, bytes, mtime_ns, hashed_ns, file_id[, adopted]}
    upload-failed {path, sha256, bytes}                 the upload surely made no object
    possible-duplicates {path, sha256, file_ids}       objects that may be an uncertain
                                                       upload's: never adopted, never deleted
    sent / done   a path pair's lines carry path, sha256, bytes, mtime_ns, hashed_ns
    file-deleted  {file_id, status, uncertain}          a file object of ours is gone

An `upload-sent` with no `uploaded` or `upload-failed` after it is uncertain: the server may
have made the object. The run settles it by listing the files (operations/upload.py), never
by uploading again blind.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from runner.items import Item, LocalFile

# git's racy-file rule: a file read within this long of its mtime may have been written again
# in the same clock tick after it was read; a later run reads it again.
RACY_NS = 2_000_000_000
# A content this large may be hashed as it uploads (operations/upload.py), which only a
# content of another size can safely be: the sizes of such contents the log knows are kept.
LARGE_CONTENT_BYTES = 4 << 20
UPLOAD_EVENTS = frozenset({"upload-sent", "uploaded", "upload-failed", "possible-duplicates",
                           "file-delete-sent", "file-deleted"})


class PathRecord(NamedTuple):
    """A path's content as a line recorded it."""

    size: int
    mtime_ns: int
    sha256: str
    hashed_ns: int


class SentUpload(NamedTuple):
    """An upload whose outcome the log does not know: when it was sent (the line's `ts`),
    under which filename, and how many bytes."""

    path: str
    filename: str
    size: int
    ts: object

    @property
    def sent_at(self) -> float:
        """Epoch seconds (read only when asked: nearly every upload-sent is settled by the
        line after it, and a rerun reads 100,000 of them)."""
        return epoch(self.ts)


@dataclass
class UploadIndex:
    paths: dict[str, PathRecord] = field(default_factory=dict)
    file_of: dict[str, str] = field(default_factory=dict)  # sha256 -> our file object
    claimed: set[str] = field(default_factory=set)  # every file object a line says is ours
    deleted: set[str] = field(default_factory=set)
    unsettled: dict[str, SentUpload] = field(default_factory=dict)  # sha256 -> the send
    unadoptable: set[str] = field(default_factory=set)  # reported as possible duplicates
    # The sizes of the large contents (LARGE_CONTENT_BYTES) uploaded or sent by this log.
    large_sizes: set[int] = field(default_factory=set)

    def load(self, ev: Mapping[str, Any]) -> None:
        """One line of UPLOAD_EVENTS."""
        kind = ev.get("event")
        sha = ev.get("sha256")
        if kind == "possible-duplicates":
            ids = ev.get("file_ids")
            if isinstance(ids, list):
                self.unadoptable.update(i for i in ids if isinstance(i, str))
            return
        if kind == "file-deleted":
            file_id = ev.get("file_id")
            if isinstance(file_id, str) and not ev.get("uncertain"):
                self.deleted.add(file_id)
                for content in [s for s, f in self.file_of.items() if f == file_id]:
                    del self.file_of[content]
            return
        if not isinstance(sha, str) or not sha:
            return
        if kind == "upload-sent":
            path, size, name = ev.get("path"), ev.get("bytes"), ev.get("filename")
            if isinstance(path, str) and isinstance(size, int) and isinstance(name, str):
                self.unsettled[sha] = SentUpload(path, name, size, ev.get("ts"))
                self.note_size(size)
        elif kind == "upload-failed":
            self.unsettled.pop(sha, None)
        elif kind == "uploaded":
            self.unsettled.pop(sha, None)
            file_id = ev.get("file_id")
            if isinstance(file_id, str) and file_id:
                self.holds(sha, file_id, ev.get("bytes"))
            self.note_path(ev)

    def holds(self, sha: str, file_id: str, size: object) -> None:
        """A file object of ours holds this content (an `uploaded` line, read or written)."""
        self.claimed.add(file_id)
        self.deleted.discard(file_id)
        self.file_of[sha] = file_id
        self.note_size(size)

    def note_size(self, size: object) -> None:
        """A content of this size is uploaded, or may be."""
        if isinstance(size, int) and size >= LARGE_CONTENT_BYTES:
            self.large_sizes.add(size)

    def note_path(self, ev: Mapping[str, Any]) -> None:
        """A line that recorded a path's content (an `uploaded`, a path pair's sent/done)."""
        path, sha = ev.get("path"), ev.get("sha256")
        size, mtime, hashed = ev.get("bytes"), ev.get("mtime_ns"), ev.get("hashed_ns")
        if (isinstance(path, str) and isinstance(sha, str) and len(sha) == 64
                and isinstance(size, int) and isinstance(mtime, int)
                and isinstance(hashed, int)):
            self.paths[path] = PathRecord(size, mtime, sha, hashed)
        file_id = ev.get("file_id")
        if (ev.get("event") == "done" and isinstance(sha, str) and isinstance(file_id, str)
                and file_id and file_id in self.claimed and file_id not in self.deleted):
            self.file_of.setdefault(sha, file_id)
            self.note_size(size)

    def changed_from(self, local: LocalFile) -> str | None:
        """The file object of ours holding the content the log last read at this path, when
        the file (hashed now) holds other content: the version its new one replaces."""
        before = self.paths.get(local.path)
        if before is None or not local.sha256 or before.sha256 == local.sha256:
            return None
        return self.file_of.get(before.sha256)

    def uploaded(self, sha256: str) -> str | None:
        """The file object of ours that holds this content, if any (not deleted)."""
        return self.file_of.get(sha256)

    def resolve(self, item: Item, *, racy: bool = False) -> Item:
        """The quick check (rsync's): a path whose size and mtime are those the log recorded,
        read at least RACY_NS after that mtime, has the recorded content, and is not read
        again; when that content is uploaded, the item names its file object. Any other item
        comes back as it was (its file is read). `racy`: trust a file read soon after its
        mtime too (status and failed report what the log says and read no file)."""
        local = item.local
        if local is None or item.file_id:
            return item
        record = self.paths.get(local.path)
        if (record is None or record.size != local.size or record.mtime_ns != local.mtime_ns
                or (record.hashed_ns - record.mtime_ns < RACY_NS and not racy)):
            return item
        local = local._replace(sha256=record.sha256, hashed_ns=record.hashed_ns)
        return item._replace(file_id=self.file_of.get(record.sha256, ""), local=local)


def epoch(ts: object) -> float:
    """A line's `ts` as epoch seconds (0.0, long past, when it does not read as one)."""
    if not isinstance(ts, str):
        return 0.0
    try:
        return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
