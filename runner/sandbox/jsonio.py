"""The sandbox's JSON, read and written: by orjson (2-3x json's speed: a batch of 500
attribute sets, and pages of up to 10,000 file objects, are its largest bodies), with json
deciding wherever orjson would differ from it, so what is accepted and answered is json's."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

# 19 digits or more: an integer orjson might read as a float (past 64 bits), where json
# reads the int; the sandbox's checks must see what json sees.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def loads(raw: bytes) -> Any:
    """`json.loads(raw)` (ValueError for what is not JSON)."""
    if _LONG_DIGITS.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def json_response(data: Any, *, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    """`web.json_response(data, ...)`; json encodes what orjson refuses (a key that is not a
    string, an integer past 64 bits)."""
    try:
        body = orjson.dumps(data)
    except (orjson.JSONEncodeError, TypeError):
        return web.json_response(data, status=status, headers=headers)
    return web.Response(body=body, status=status, headers=headers,
                        content_type="application/json", charset="utf-8")
