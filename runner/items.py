"""Items: one (owner, file_id) pair of a manifest (or (owner, local file): a `path` row), the ID
rule they obey, and the compact key that stands for a pair in de-duplication and resume."""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from collections.abc import Sequence
from itertools import repeat
from operator import and_, lshift, xor
from typing import NamedTuple

from runner.attributes import Options

# IDs go into a URL path: nothing that could change the path or need escaping.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
ID_RULE = "IDs may hold only A-Z a-z 0-9 _ - (1 to 128 characters)"


class LocalFile(NamedTuple):
    """A local file a `path` row names: its absolute path, its size and mtime_ns as last seen,
    and once known the SHA-256 of its content (hex) and when that was read (`hashed_ns`, epoch
    ns: a file hashed within 2 s of its mtime is read again next run, git's racy-file rule)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str = ""
    hashed_ns: int = 0


class Item(NamedTuple):
    """One pair to attach. `owner` is the assistant or vector store id; `line` is where the
    pair stands in the manifest (for messages), 0 when unknown; `options` the pair's per-file
    options (vector stores), None for a plain pair (nearly all: it costs nothing then).
    `local`: the file of a `path` row; its `file_id` is "" until its content is known to be
    uploaded (this run, or an earlier one the log recorded)."""

    owner: str
    file_id: str
    line: int = 0
    options: Options | None = None
    local: LocalFile | None = None

    @property
    def identity(self) -> str:
        """What names the file of the pair within the manifest: its file_id, or for a path
        row "\0" and its absolute path (never a valid ID, so never confused with one)."""
        return self.file_id if self.local is None else _SEP + self.local.path


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


_SEP = "\0"  # cannot occur in an ID
_LOW = (1 << 26) - 1  # 64 + 26 bits: an int of 3 digits (40 bytes); one more bit makes 48


def pair_key(owner: str, file_id: str) -> int:
    """The int that stands for a pair in a set or dict: two independent SipHashes, 64 bits of
    the pair as a tuple and 26 of "owner\\0file_id", so two pairs share a key only if both
    collide: about 1 in 10**15 at a million pairs. 90 bits make an int of 40 bytes, smaller
    than a 12-byte digest in a bytes object (48), and cost no hashlib call.

    Keyed by the interpreter's random hash seed: compare keys within one process only."""
    pair = (owner, file_id)
    return hash(pair) << 26 ^ hash(_SEP.join(pair)) & _LOW


def pair_keys(pairs: Sequence[tuple[str, str]]) -> list[int]:
    """`pair_key` of each (owner, file_id), computed in C (map), for blocks of pairs."""
    highs = map(lshift, map(hash, pairs), repeat(26))
    return list(map(xor, highs, map(and_, map(hash, map(_SEP.join, pairs)), repeat(_LOW))))


_BSEP = _SEP.encode()
# CPython hashes an ASCII str and its bytes alike (the same SipHash of the same bytes), so an
# ASCII pair's key can be made from the bytes a log was read as; elsewhere, decode first.
_BYTES_HASH_LIKE_STR = hash(b"asst_1\0file-1") == hash("asst_1\0file-1") and hash(
    (b"asst_1", b"file-1")) == hash(("asst_1", "file-1"))


def ascii_pair_keys(pairs: Sequence[tuple[bytes, bytes]]) -> list[int]:
    """`pair_keys` of pairs of ASCII bytes: the keys of the same pairs as str, undecoded."""
    if not _BYTES_HASH_LIKE_STR:
        return pair_keys([(owner.decode(), file_id.decode()) for owner, file_id in pairs])
    highs = map(lshift, map(hash, pairs), repeat(26))
    return list(map(xor, highs, map(and_, map(hash, map(_BSEP.join, pairs)), repeat(_LOW))))


@functools.cache
def pin_mmap_threshold() -> None:
    """Keep glibc from holding on to the old tables of a big set or dict.

    glibc serves large blocks with mmap (returned to the system when freed), but each time it
    frees one it raises its threshold to that block's size, up to 32 MiB: after that, the
    tables a set or dict of a million keys leaves behind as it doubles stay in the heap,
    unreturned (30 MB at a million pairs, measured). Pinning the threshold at 1 MiB turns
    that off. (Not lower: at glibc's default of 128 KiB, a block of about that size taken
    and freed for every request, below our code, cost an mmap, an mremap and a munmap each:
    +20% CPU in the overhead benchmark.)
    Once a process; a no-op off glibc."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        m_mmap_threshold = -3  # <malloc.h>
        ctypes.CDLL(None).mallopt(m_mmap_threshold, 1 << 20)
