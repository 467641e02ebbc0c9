"""An answer's body is read by orjson, and by json where orjson refuses
(requests/client.parse_json): what a body reads as is what json.loads made of it before."""

from __future__ import annotations

import json
import math

import pytest

from runner.requests.client import parse_json


@pytest.mark.parametrize("raw", [
    b'{"id": "file-1", "attributes": {"year": 2021.0, "team": "a"}, "n": -0.5}',
    '{"s": "caf\u00e9"}'.encode("utf-16"),  # json detects UTF-16; orjson takes UTF-8 only
    b'{"lone": "\\ud800"}',  # a lone surrogate escape: orjson refuses
    b'{"a": 1, "a": 2}',
    b"[1, 2]",
    b'"text"',
])
def test_a_body_reads_as_json_reads_it(raw: bytes) -> None:
    assert parse_json(raw) == json.loads(raw)


def test_an_integer_past_64_bits_reads_as_the_double_the_api_holds() -> None:
    big = parse_json(b'{"big": 123456789012345678901234567890}')["big"]
    assert big == float(123456789012345678901234567890)


def test_nan_reads_as_json_reads_it_and_what_is_not_json_is_none() -> None:
    assert math.isnan(parse_json(b'{"x": NaN}')["x"])
    assert parse_json(b"<html>502 Bad Gateway</html>") is None
    assert parse_json(b"") is None
