"""Reading what a request asks: its JSON body and its list query, checked as the API checks
them (400s with OpenAI's messages and codes, 404 for a `missing` file id)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from aiohttp import web

from runner.sandbox import errors
from runner.sandbox.errors import ApiError
from runner.sandbox.jsonio import loads
from runner.sandbox.state import DEFAULT_CHUNKING, CursorNotFound, Page, paginate

MISSING = "missing"  # an id holding this names nothing (see docs/sandbox.md)
MAX_BATCH_FILES = 2000
MAX_LIST_LIMIT = 100
ORDERS = ("asc", "desc")
FILE_ENTRY_KEYS = frozenset({"file_id", "attributes", "chunking_strategy"})
MAX_ATTRIBUTES = 16  # keys
MAX_ATTRIBUTE_KEY = 64  # characters
MAX_ATTRIBUTE_VALUE = 512  # characters of a string value
MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096


async def read_json_object(request: web.Request, allowed: frozenset[str] | None) -> dict[str, Any]:
    """The body as a JSON object; `allowed` (None: anything) names the keys it may hold."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, "The request body is too large.") from exc
    try:
        body = loads(raw)
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
    return BatchEntry(
        file_id,
        attributes_of(value, f"{param}.attributes"),
        chunking_of(value, f"{param}.chunking_strategy"),
    )


def attributes_of(body: Mapping[str, Any], param: str = "attributes") -> dict[str, Any]:
    """The attributes a body sets, checked as the API checks them: at most 16 keys of at most
    64 characters, each value a string (at most 512 characters), a number or a boolean.
    Absent or null: none. `param` is the field's path, as the error names it."""
    attributes = body.get("attributes")
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise errors.invalid_type(param, "an object", attributes)
    if len(attributes) > MAX_ATTRIBUTES:
        raise ApiError(
            400,
            f"Invalid '{param}': too many properties. Expected an object with at most "
            f"{MAX_ATTRIBUTES} properties, but got an object with {len(attributes)} properties "
            "instead.",
            param=param,
            code="object_above_max_properties",
        )
    for key, value in attributes.items():
        _check_attribute(param, key, value)
    return dict(attributes)


def _check_attribute(param: str, key: str, value: object) -> None:
    if len(key) > MAX_ATTRIBUTE_KEY:
        raise ApiError(
            400,
            f"Invalid '{param}': key '{key[:20]}...' is too long. Expected keys with maximum "
            f"length {MAX_ATTRIBUTE_KEY}, but got a key with length {len(key)} instead.",
            param=param,
            code="string_above_max_length",
        )
    field = f"{param}.{key}"
    # bool is an int: both are numbers or booleans, which the API takes alike.
    if not isinstance(value, (str, int, float)):
        raise errors.invalid_type(field, "a string, a number or a boolean", value)
    if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_VALUE:
        raise ApiError(
            400,
            f"Invalid '{field}': string too long. Expected a string with maximum length "
            f"{MAX_ATTRIBUTE_VALUE}, but got a string with length {len(value)} instead.",
            param=field,
            code="string_above_max_length",
        )


def chunking_of(body: Mapping[str, Any], param: str = "chunking_strategy") -> dict[str, Any]:
    """The chunking strategy as a file reports it: `auto` (or none) is the API's static
    800/400; a static one must have 100 <= max_chunk_size_tokens <= 4096 and
    0 <= chunk_overlap_tokens <= max_chunk_size_tokens / 2."""
    strategy = body.get("chunking_strategy")
    if strategy is None:
        return DEFAULT_CHUNKING
    if not isinstance(strategy, dict):
        raise errors.invalid_type(param, "an object", strategy)
    kind = strategy.get("type")
    if kind == "auto":
        _only_keys(strategy, param, frozenset({"type"}))
        return DEFAULT_CHUNKING
    if kind != "static":
        raise errors.invalid_value(f"{param}.type", kind, ("auto", "static"))
    _only_keys(strategy, param, frozenset({"type", "static"}))
    if "static" not in strategy:
        raise errors.missing_parameter(f"{param}.static")
    static = strategy["static"]
    if not isinstance(static, dict):
        raise errors.invalid_type(f"{param}.static", "an object", static)
    return {"type": "static", "static": _static_sizes(f"{param}.static", static)}


def _static_sizes(param: str, static: Mapping[str, Any]) -> dict[str, int]:
    _only_keys(static, param, frozenset({"max_chunk_size_tokens", "chunk_overlap_tokens"}))
    size = _integer(static, f"{param}.max_chunk_size_tokens", MIN_CHUNK_TOKENS, MAX_CHUNK_TOKENS)
    overlap = _integer(static, f"{param}.chunk_overlap_tokens", 0, None)
    if overlap > size / 2:
        raise ApiError(
            400,
            f"Invalid '{param}.chunk_overlap_tokens': chunk_overlap_tokens must not exceed half "
            f"of max_chunk_size_tokens ({size // 2}), but got {overlap} instead.",
            param=f"{param}.chunk_overlap_tokens",
            code="invalid_value",
        )
    return {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}


def _integer(body: Mapping[str, Any], param: str, minimum: int, maximum: int | None) -> int:
    name = param.rpartition(".")[2]
    if name not in body:
        raise errors.missing_parameter(param)
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid_type(param, "an integer", value)
    if value < minimum:
        raise ApiError(
            400,
            f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param=param,
            code="integer_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise ApiError(
            400,
            f"Invalid '{param}': integer above maximum value. Expected a value <= {maximum}, "
            f"but got {value} instead.",
            param=param,
            code="integer_above_max_value",
        )
    return value


def _only_keys(body: Mapping[str, Any], param: str, allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise errors.unknown_parameter(f"{param}.{key}")


def page_of(
    query: Mapping[str, str], *, default_limit: int = 20, max_limit: int = MAX_LIST_LIMIT
) -> Page:
    """The paging a list query asks: `limit` 1..`max_limit` (default `default_limit`),
    `order` asc|desc (default desc), `after` and `before` cursors."""
    raw_limit = query.get("limit")
    limit = default_limit
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
        if limit > max_limit:
            raise ApiError(
                400,
                f"Invalid 'limit': integer above maximum value. Expected a value <= "
                f"{max_limit}, but got {limit} instead.",
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
