"""Reading what a request asks: its JSON body and its list query, checked as the API checks
them (400s with OpenAI's messages and codes, 404 for a `missing` file id)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from aiohttp import web

from runner.sandbox import errors
from runner.sandbox.errors import ApiError
from runner.sandbox.state import DEFAULT_CHUNKING, CursorNotFound, Page, paginate

MISSING = "missing"  # an id holding this names nothing (see handlers.py)
MAX_BATCH_FILES = 2000
MAX_LIST_LIMIT = 100
ORDERS = ("asc", "desc")
FILE_ENTRY_KEYS = frozenset({"file_id", "attributes", "chunking_strategy"})


async def read_json_object(request: web.Request, allowed: frozenset[str] | None) -> dict[str, Any]:
    """The body as a JSON object; `allowed` (None: anything) names the keys it may hold."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, "The request body is too large.") from exc
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise errors.bad_json() from exc
    if not isinstance(body, dict):
        raise errors.invalid_type("body", "an object", body)
    if allowed is not None:
        for key in body:
            if key not in allowed:
                raise errors.unknown_parameter(key)
    return body


def check_file_id(param: str, value: object) -> str:
    if not isinstance(value, str):
        raise errors.invalid_type(param, "a string", value)
    if not value:
        raise ApiError(
            400,
            f"Invalid '{param}': empty string. Expected a string with minimum length 1, but "
            "got an empty string instead.",
            param=param,
            code="empty_string",
        )
    if MISSING in value:
        raise errors.not_found(f"No file found with id '{value}'.")
    return value


def file_id_of(body: Mapping[str, Any]) -> str:
    if "file_id" not in body:
        raise errors.missing_parameter("file_id")
    return check_file_id("file_id", body["file_id"])


class BatchEntry(NamedTuple):
    """One file of a batch request, with the attributes and chunking it gets."""

    file_id: str
    attributes: dict[str, Any]
    chunking_strategy: dict[str, Any]


def batch_entries_of(body: Mapping[str, Any]) -> list[BatchEntry]:
    """The files of a `file_batches` body: `file_ids` (the body's `attributes` and
    `chunking_strategy` apply to all) or `files` (objects with their own; the body's are
    ignored), one or the other, 1 to 2,000 of them."""
    has_ids, has_files = body.get("file_ids") is not None, body.get("files") is not None
    if has_ids and has_files:
        raise ApiError(
            400,
            "Invalid request: 'file_ids' and 'files' are mutually exclusive; provide only one.",
            param="files",
        )
    if has_files:
        files = _sized_array(body, "files")
        return [_file_entry(i, value) for i, value in enumerate(files)]
    if not has_ids:
        raise errors.missing_parameter("file_ids")
    attributes, chunking = attributes_of(body), chunking_of(body)
    file_ids = _sized_array(body, "file_ids")
    return [
        BatchEntry(check_file_id(f"file_ids[{i}]", value), attributes, chunking)
        for i, value in enumerate(file_ids)
    ]


def _sized_array(body: Mapping[str, Any], param: str) -> list[Any]:
    values = body[param]
    if not isinstance(values, list):
        raise errors.invalid_type(param, "an array", values)
    if not values:
        raise ApiError(
            400,
            f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param=param,
            code="empty_array",
        )
    if len(values) > MAX_BATCH_FILES:
        raise ApiError(
            400,
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{MAX_BATCH_FILES}, but got an array with length {len(values)} instead.",
            param=param,
            code="array_above_max_length",
        )
    return values


def _file_entry(index: int, value: object) -> BatchEntry:
    param = f"files[{index}]"
    if not isinstance(value, dict):
        raise errors.invalid_type(param, "an object", value)
    for key in value:
        if key not in FILE_ENTRY_KEYS:
            raise errors.unknown_parameter(f"{param}.{key}")
    if "file_id" not in value:
        raise errors.missing_parameter(f"{param}.file_id")
    file_id = check_file_id(f"{param}.file_id", value["file_id"])
    return BatchEntry(file_id, attributes_of(value), chunking_of(value))


def attributes_of(body: Mapping[str, Any]) -> dict[str, Any]:
    attributes = body.get("attributes")
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise errors.invalid_type("attributes", "an object", attributes)
    return attributes


def chunking_of(body: Mapping[str, Any]) -> dict[str, Any]:
    strategy = body.get("chunking_strategy")
    if strategy is None:
        return DEFAULT_CHUNKING
    if not isinstance(strategy, dict):
        raise errors.invalid_type("chunking_strategy", "an object", strategy)
    kind = strategy.get("type")
    if kind == "auto":
        return DEFAULT_CHUNKING
    if kind == "static" and isinstance(strategy.get("static"), dict):
        return {"type": "static", "static": strategy["static"]}
    raise errors.invalid_value("chunking_strategy.type", kind, ("auto", "static"))


def page_of(query: Mapping[str, str]) -> Page:
    raw_limit = query.get("limit")
    limit = 20
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError as exc:
            raise ApiError(
                400,
                f"Invalid 'limit': expected an integer, but got '{raw_limit}' instead.",
                param="limit",
                code="invalid_type",
            ) from exc
        if limit < 1:
            raise ApiError(
                400,
                "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got "
                f"{limit} instead.",
                param="limit",
                code="integer_below_min_value",
            )
        if limit > MAX_LIST_LIMIT:
            raise ApiError(
                400,
                f"Invalid 'limit': integer above maximum value. Expected a value <= "
                f"{MAX_LIST_LIMIT}, but got {limit} instead.",
                param="limit",
                code="integer_above_max_value",
            )
    order = query.get("order", "desc")
    if order not in ORDERS:
        raise errors.invalid_value("order", order, ORDERS)
    return Page(limit, order, query.get("after") or None, query.get("before") or None)


def paginate_or_400(
    items: Iterable[Any], page: Page, collection: Mapping[str, Any]
) -> tuple[list[Any], bool]:
    try:
        return paginate(items, page, collection)
    except CursorNotFound as exc:
        raise ApiError(
            400,
            f"Invalid '{exc.param}': no object with id '{exc.cursor}' in this list.",
            param=exc.param,
        ) from exc
