"""`run` looks for an `op` key in a JSONL manifest with one search before reading it line by
line (operations.detach.refuse_detach_rows): the search reads a chunk at a time and must find
the key wherever the chunks cut it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.operations import detach


@pytest.mark.parametrize(("text", "found"), [
    (b'{"a": 1, "op": "detach"}', True),
    (b'1234567"op', False),  # no closing quote
    (b'1234567"o', False),
    (b"", False),
    (b'123456"o' + b'p"', True),  # cut inside the key
    (b'1234567"' + b'op"', True),
    (b'12345678"op"', True),  # at the start of the second chunk
])
def test_the_search_finds_the_key_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: bytes, found: bool,
) -> None:
    monkeypatch.setattr(detach, "_SEARCH_CHUNK", 8)
    path = tmp_path / "m.jsonl"
    path.write_bytes(text)
    assert detach._mentions(str(path), b'"op"') is found
