"""One vector store's two sides, as sync matches them (SPEC "sync"): the manifest's pairs for it
(`StorePairs`) and what its listing showed of them (`StoreListing`, fed page by page by
runner/operations/listing.py). runner/sync/plan.py makes the store's sets from the two.

Memory: a manifest pair costs its file id (a key of `StorePairs.index_of`) and a few bytes in
arrays (its attributes' digest, its chunking, and once listed what the listing said of it); its
Item, with the attributes the manifest gives, is kept only if this run writes it (a second read
of the manifest: runner/sync/plan.py, `read_writes`). A listed file the manifest does not name
keeps only its id (it is to be detached). A listed file costs nothing more, and the listing's
JSON is dropped page by page (runner/operations/listing.py).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Mapping
from typing import Any

from runner.attributes import Options, chunking_matches, digest_value
from runner.items import Item
from runner.requests.targets import ApiError

# What the listing said of a manifest pair (StoreListing.found).
NOT_LISTED, IN_PLACE, STALE = 0, 1, 2
# Examples of a chunking mismatch kept for the warning.
CHUNKING_EXAMPLES = 3


class StorePairs:
    """The manifest's pairs for one store, in the manifest's order: file id -> place; per
    place, whether the manifest gives attributes and their digest, and which of `chunkings` it
    asks for (0: none given). Strategies are few: each distinct one is kept once."""

    __slots__ = ("index_of", "managed", "digests", "chunking_of", "chunkings",
                 "_chunking_index")

    def __init__(self) -> None:
        self.index_of: dict[str, int] = {}
        self.managed = bytearray()  # 1: attributes given
        self.digests: array[int] = array("Q")
        self.chunking_of: array[int] = array("I")
        self.chunkings: list[Mapping[str, Any] | None] = [None]
        self._chunking_index: dict[str, int] = {}  # a strategy's JSON -> its place

    def __len__(self) -> int:
        return len(self.index_of)

    def want(self, item: Item) -> bool:
        """Add a manifest pair; False if the manifest named it already (a repeat)."""
        if item.file_id in self.index_of:
            return False
        self.index_of[item.file_id] = len(self.managed)
        options = item.options or Options()
        digest = options.digest_value()
        self.managed.append(digest is not None)
        self.digests.append(digest or 0)
        self.chunking_of.append(self._chunking(options.chunking_strategy))
        return True

    def _chunking(self, strategy: Mapping[str, Any] | None) -> int:
        if strategy is None:
            return 0
        spelled = json.dumps(strategy, sort_keys=True)
        at = self._chunking_index.get(spelled)
        if at is None:
            at = self._chunking_index[spelled] = len(self.chunkings)
            self.chunkings.append(strategy)
        return at

    def digest_at(self, at: int) -> int | None:
        """The digest of the attributes the manifest gives the pair, None if it gives none."""
        return self.digests[at] if self.managed[at] else None

    def chunking_at(self, at: int) -> Mapping[str, Any] | None:
        return self.chunkings[self.chunking_of[at]]


class StoreListing:
    """What one store's listing showed (every page, every status): how many files, what it
    said of each manifest pair (`found`), the files the manifest does not name (`extras`),
    files whose processing failed, chunking other than the manifest's; or why the store could
    not be listed (`error`)."""

    __slots__ = ("store", "pairs", "listed", "found", "extras", "failed_files",
                 "chunking_mismatch", "chunking_examples", "error", "refused_run")

    def __init__(self, store: str, pairs: StorePairs) -> None:
        self.store = store
        self.pairs = pairs
        self.listed = 0  # files the listing showed (every status), before this run's writes
        # Per manifest pair, in its place: NOT_LISTED | IN_PLACE | STALE (made when the first
        # of them is listed: the manifest is read whole before any listing).
        self.found = bytearray()
        self.extras: dict[str, None] = {}  # listed, not in the manifest (in listing order)
        self.failed_files: list[tuple[str, str]] = []  # (file id, last_error)
        self.chunking_mismatch = 0
        self.chunking_examples: list[str] = []  # a few, for the warning
        self.error: tuple[int | None, ApiError] | None = None
        # Every store's listing was refused alike: the run was refused (its pairs not failed).
        self.refused_run = False

    def take(self, entry: Mapping[str, Any]) -> None:
        """One listed file."""
        self.listed += 1
        file_id = entry["id"]
        pairs = self.pairs
        at = pairs.index_of.get(file_id)
        if at is None:
            self.extras[file_id] = None
            return
        found = self.found
        if not found:
            self.found = found = bytearray(len(pairs))  # NOT_LISTED each
        if found[at] != NOT_LISTED:
            return  # listed twice (the store changed between pages): seen already
        stale = pairs.managed[at] and pairs.digests[at] != digest_value(_attributes(entry))
        found[at] = STALE if stale else IN_PLACE
        if not chunking_matches(pairs.chunking_at(at), entry.get("chunking_strategy")):
            self.chunking_mismatch += 1
            if len(self.chunking_examples) < CHUNKING_EXAMPLES:
                self.chunking_examples.append(f"{self.store}/{file_id}")
        if entry.get("status") == "failed":
            self.failed_files.append((file_id, _last_error(entry.get("last_error"))))

    def listing_failed(self, status: int | None, error: ApiError) -> None:
        self.error = (status, error)


def _attributes(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = entry.get("attributes")
    return value if isinstance(value, Mapping) else None


def _last_error(value: Any) -> str:
    if isinstance(value, Mapping):
        code, message = value.get("code"), value.get("message")
        return ": ".join(str(x) for x in (code, message) if x) or "failed"
    return "failed"
