"""The manifest's JSON reader and the attributes' canonical spelling use one decoder and one
encoder made at import; they must read and write exactly what `json.loads` / `json.dumps` with
the same options do, for any value, and refuse what they refuse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.attributes import canonical
from runner.manifest.common import DuplicateKey, NotFinite, load_json, refuse_duplicates

SCALARS = st.one_of(st.text(), st.booleans(), st.integers(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _loads(text: str) -> Any:
    def not_finite(name: str) -> Any:
        raise NotFinite(name)
    return json.loads(text, object_pairs_hook=refuse_duplicates, parse_constant=not_finite)


@settings(deadline=None, max_examples=300)
@given(value=VALUES, ascii_only=st.booleans())
def test_load_json_reads_what_json_loads_reads(value: Any, ascii_only: bool) -> None:
    """Any JSON text reads to the same value."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert load_json(text) == _loads(text)


@pytest.mark.parametrize(("text", "error"), [
    ('{"a": 1, "a": 2}', DuplicateKey), ('{"a": NaN}', NotFinite), ("[Infinity]", NotFinite),
    ('\ufeff{"a": 1}', json.JSONDecodeError), ('{"a": 1} x', json.JSONDecodeError)])
def test_load_json_refuses_what_json_loads_refuses(text: str, error: type[Exception]) -> None:
    """Repeated keys, NaN/Infinity, a BOM and trailing text are refused alike, with the same
    message."""
    with pytest.raises(error) as ours:
        load_json(text)
    with pytest.raises(error) as theirs:
        _loads(text)
    assert str(ours.value) == str(theirs.value)


@settings(deadline=None, max_examples=300)
@given(attributes=st.dictionaries(st.text(max_size=64), SCALARS, max_size=16))
def test_canonical_is_json_dumps_sorted_and_compact(attributes: dict[str, Any]) -> None:
    """The canonical spelling is json.dumps's with sorted keys, no spaces, UTF-8 kept, and
    integral floats as integers."""
    normal = {k: int(v) if isinstance(v, float) and v.is_integer() and abs(v) <= 2**53 else v
              for k, v in attributes.items()}
    expected = (json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False) if attributes else "{}")
    assert canonical(attributes) == expected
