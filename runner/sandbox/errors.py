"""OpenAI's error envelope, and the errors the sandbox answers with.

Every error body is `{"error": {"message", "type", "param", "code"}}`, as the API sends; only
the proxy's 502 is HTML (see faults.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from runner.sandbox.jsonio import json_response

INVALID_REQUEST = "invalid_request_error"

BAD_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key "
    "from https://platform.openai.com/account/api-keys."
)
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
SERVER_ERROR_MESSAGES = {
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The server is overloaded or not ready yet.",
}


class ApiError(Exception):
    """An answer other than 2xx, with OpenAI's envelope; raised by handlers, sent by the
    middleware."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,  # OpenAI's own field name
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> web.Response:
        return json_response(self.body(), status=self.status, headers=self.headers)


def mask_key(key: str) -> str:
    """All but the last 4 characters starred, as the API echoes a wrong key (a short key is
    starred whole: its last 4 would be most of it)."""
    if len(key) <= 8:
        return "*" * len(key)
    return "*" * (len(key) - 4) + key[-4:]


def incorrect_key(key: str) -> ApiError:
    return ApiError(
        401,
        f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def missing_key() -> ApiError:
    return ApiError(401, NO_KEY_MESSAGE, code="invalid_api_key")


def quota_exhausted() -> ApiError:
    return ApiError(429, QUOTA_MESSAGE, type="insufficient_quota", code="insufficient_quota")


def invalid_beta(message: str) -> ApiError:
    return ApiError(400, message, code="invalid_beta")


def invalid_url(method: str, path: str) -> ApiError:
    return ApiError(404, f"Invalid URL ({method} {path})")


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def bad_json() -> ApiError:
    return ApiError(400, BAD_JSON_MESSAGE)


def missing_parameter(param: str) -> ApiError:
    return ApiError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def invalid_type(param: str, expected: str, value: object) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, value: object, supported: tuple[str, ...]) -> ApiError:
    choices = " and ".join(", ".join(f"'{s}'" for s in supported).rsplit(", ", 1))
    return ApiError(
        400,
        f"Invalid value: '{value}'. Supported values are: {choices}.",
        param=param,
        code="invalid_value",
    )


def unknown_parameter(param: str) -> ApiError:
    return ApiError(
        400,
        f"Unrecognized request argument supplied: {param}",
        param=param,
        code="unknown_parameter",
    )


def rate_limited(message: str, headers: Mapping[str, str]) -> ApiError:
    return ApiError(429, message, type="requests", code="rate_limit_exceeded", headers=headers)


def server_error(status: int) -> ApiError:
    return ApiError(status, SERVER_ERROR_MESSAGES[status], type="server_error")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
