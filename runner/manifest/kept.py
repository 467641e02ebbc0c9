"""The parts a manifest's check read, kept for the run, so that the run reads its manifest once.

`run` checks the whole manifest before it sends anything, and the check reads every row: the
fast path's regular expression, each block's attributes parsed and spelled canonically. The run
then needed the same rows again and read the file a second time, which for a manifest with
attributes on every pair cost as much as the check (bench/attributes_bench.py). Now the check
writes each part it did not settle to an unlinked temporary file beside the log, in columns
(`marshal`: a block of 500 pairs is one record, its attributes as the canonical texts and
fingerprints the run needs), and the run takes the parts from there in order: no regular
expression, no parse, no canonical spelling a second time, and memory stays flat.

The run so sends exactly the rows that were checked: a manifest rewritten meanwhile (a nightly
job writing it) changes nothing until the next run. The file has no name (O_TMPFILE where the
system has it): a killed run leaves nothing behind.
"""

from __future__ import annotations

import marshal
import struct
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from runner.attributes import Options
from runner.items import Item, LocalFile
from runner.manifest.block import Block

_HEAD = struct.Struct("<cI")  # a record's kind (b"B" block, b"I" item) and its length
_BLOCK, _ITEM = b"B", b"I"
_READ_BUFFER = 1 << 20


class KeptParts:
    """Blocks and Items in manifest order, written once (`add`) and read back once (`parts`).
    A check that fails, or a run that reads its manifest after all, `close`s it unread."""

    def __init__(self, stream: IO[bytes] | None) -> None:
        self._stream = stream  # None: nothing is kept (no file could be made)
        # The manifest's chunking texts -> their strategies (one dict the check fills).
        self._strategies: dict[str, dict[str, Any]] = {}
        self.pairs = 0  # pairs kept

    @classmethod
    def beside(cls, directory: str) -> KeptParts:
        """A new store for the parts in `directory` (the log's: a real disk, and writable).
        Where no file can be made there, it keeps nothing (`keeping` is False) and the run
        reads its manifest again."""
        try:
            return cls(tempfile.TemporaryFile(dir=directory, prefix=".attach-runner-parts-"))
        except OSError:
            return cls(None)

    def __enter__(self) -> KeptParts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def keeping(self) -> bool:
        """Whether the parts added are kept (the file was made, and took every write)."""
        return self._stream is not None and not self._stream.closed

    def add(self, part: Block | Item) -> None:
        """Keep a checked part. A block is kept as its columns: its pairs, lines and the
        canonical texts and fingerprints of its attributes (made here, once), never its text."""
        if isinstance(part, Block):
            canonicals, written = part.kept_columns()
            if part.chunking is not None:
                self._strategies = part.chunking_of
            record = (part.line, part.pairs, part.lines, canonicals, written, part.chunking)
            self._write(_BLOCK, record)
            self.pairs += len(part.pairs)
        else:
            self._write(_ITEM, _item_record(part))
            self.pairs += 1

    def _write(self, kind: bytes, record: tuple[Any, ...]) -> None:
        stream = self._stream
        if stream is None:
            return
        payload = marshal.dumps(record)
        try:
            stream.write(_HEAD.pack(kind, len(payload)))
            stream.write(payload)
        except OSError:  # the disk is full, say: keep nothing, the run reads the manifest
            self.close()
            self._stream = None

    def parts(self) -> Iterator[Block | Item]:
        """The parts kept, in manifest order; the file closes (and is gone) at the end."""
        stream = self._stream
        if stream is None:
            raise RuntimeError("no parts were kept to read")
        try:
            stream.flush()
            stream.seek(0)
            with open(stream.fileno(), "rb", buffering=_READ_BUFFER, closefd=False) as reader:
                while head := reader.read(_HEAD.size):
                    kind, size = _HEAD.unpack(head)
                    record = marshal.loads(reader.read(size))
                    if kind == _BLOCK:
                        line, pairs, lines, canonicals, written, chunking = record
                        yield Block.restored(line, pairs, lines, canonicals, written, chunking,
                                             self._strategies)
                    else:
                        yield _item_of(record)
        finally:
            self.close()

    def close(self) -> None:
        """Gone, read or not (the file has no name: closing it frees it)."""
        if self._stream is not None:
            self._stream.close()


def _item_record(item: Item) -> tuple[Any, ...]:
    """An Item as marshal can write it (its options as plain dicts, its file as a tuple)."""
    options = item.options
    given = None if options is None else (
        None if options.attributes is None else dict(options.attributes),
        None if options.chunking_strategy is None else dict(options.chunking_strategy),
        options.written)
    local = None if item.local is None else tuple(item.local)
    return item.owner, item.file_id, item.line, given, local


def _item_of(record: tuple[Any, ...]) -> Item:
    owner, file_id, line, given, local = record
    options = None
    if given is not None:
        attributes, chunking, written = given
        options = Options(attributes, chunking)
        options.written = written
    return Item(owner, file_id, line, options, None if local is None else LocalFile(*local))
