"""Manifests: CSV, YAML or JSONL in, a stream of Items out, every bad row named by file and line.

One thing in three spellings, a list of (owner, file_id) pairs:

    CSV    a header naming the owner column and file_id (other columns ignored), a row a pair
    YAML   items: [{assistant_id: ..., file_id: ...}]  or  assistants: {asst_abc: [file-1, ...]}
    JSONL  one object a line: {"assistant_id": ..., "file_id": ...}

A vector-store row may name a local file instead, `path` (a file or a glob, relative to the
manifest's folder) in place of `file_id`: one Item a file, its file_id "" until uploaded.

Each format's reader yields `Item | ManifestProblem` in file order and never raises on bad
input, so `check_manifest` can name every bad row in one pass and `iter_items` can stop at the
first. CSV and JSONL are read as bytes, a line at a time: a line that is not UTF-8, holds a NUL
or runs past 1 MiB is one problem on its line, and memory stays flat however long the file is.

    source.py       open_manifest: the format, stdin and pipes spooled to a file
    common.py       names, ManifestSource, the last check of a pair, lines, messages
    block.py        Block: pairs and their per-pair data (options, lines) in columns, checked
                    and compared in bulk (a rerun settles a block by its digests)
    fastpath.py     CSV/JSONL lines taken a chunk at a time, as Blocks
    yaml_fast.py    grouped YAML as tools write it, a chunk at a time, as Blocks
    csv_format.py   jsonl_format.py   yaml_format.py   one reader a format
    rows.py         checked_rows: a row's pair, or (a `path` row) one pair a local file
    paths.py        expand: a row's path or glob, relative to the manifest, checked
    reader.py       iter_items, iter_blocks: any format, stopping at the first bad row
    options.py      per-file options (attributes, chunking_strategy), value by value
    yaml_values.py  YAML nodes as the plain values options are checked as

May import: the core modules only (items, attributes, errors); never config or the log.
    target.py       detect_target: which target the manifest names, from its first rows
    check.py        check_manifest: every bad row named, else the counts (and, given the
                    log's verdict, the runs of blocks a run may pass over unread)
    kept.py         KeptParts: the parts the check read, kept in columns for the run, which
                    then does not read the manifest again
"""

from runner.manifest.block import Block
from runner.manifest.check import ManifestStats, check_manifest, options_key
from runner.manifest.common import FORMATS, STDIN_DISPLAY, ManifestSource
from runner.manifest.kept import KeptParts
from runner.manifest.reader import iter_blocks, iter_items
from runner.manifest.source import open_manifest
from runner.manifest.target import Detected, detect_target

__all__ = [
    "FORMATS",
    "STDIN_DISPLAY",
    "Block",
    "Detected",
    "KeptParts",
    "ManifestSource",
    "ManifestStats",
    "check_manifest",
    "detect_target",
    "iter_blocks",
    "iter_items",
    "open_manifest",
    "options_key",
]
