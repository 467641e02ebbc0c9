"""SandboxConfig: every knob of the sandbox, with its defaults and its checks.

All times are in milliseconds (`*_ms`), all rates are fractions in [0, 1] (`*_rate`), `rps`
is requests per second, `store_rpm` writes (adds, batches, updates, deletes) per minute per
vector store and `upload_rpm` uploads (`POST /files`) per minute, a limit of their own.
`store_max_files` caps how many files a vector store holds (None: no cap), `file_max_bytes`
the size of an upload (the live API's 512 MiB by default), and `terse_404` makes a pair's 404
say only "Not found." (see docs/sandbox.md for these).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

FILE_MAX_BYTES = 512 * 1024**2  # the Files API's limit on one file: "512 MB"
FAULT_RATE_FIELDS = (
    "fail_rate",
    "reset_before_rate",
    "reset_after_rate",
    "slow_rate",
    "late_apply_rate",
    "error_after_rate",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """How the sandbox behaves. Frozen: change it live with `Sandbox.update(**changes)`.

    `burst` (tokens of the global bucket) defaults to `max(1, rps)`: one second's worth, as the
    real API quantizes a per-minute limit into per-second ones ("60,000 RPM may be enforced as
    1,000 RPS"). `fault_methods` None means faults hit every method; `("POST",)` only POSTs.
    """

    api_key: str = "sk-sandbox"
    rps: float | None = None
    burst: float | None = None
    store_rpm: float | None = None
    upload_rpm: float | None = None
    upload_bytes_per_s: float | None = None  # a slow link: an upload's file part read this fast
    latency_ms: float = 0
    seed: int = 0
    fail_rate: float = 0
    reset_before_rate: float = 0
    reset_after_rate: float = 0
    slow_rate: float = 0
    slow_ms: float = 2000
    late_apply_rate: float = 0
    late_apply_ms: float = 3000
    error_after_rate: float = 0
    processing_ms: float = 200
    vs_fail_rate: float = 0
    retire_v1: bool = False
    quota_exhausted: bool = False
    max_assistant_files: int = 20
    store_max_files: int | None = None
    file_max_bytes: int = FILE_MAX_BYTES
    terse_404: bool = False
    fault_methods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key:
            raise ValueError("api_key must be a non-empty string")
        _check_number("rps", self.rps, minimum=0, optional=True, exclusive=True)
        _check_number("burst", self.burst, minimum=1, optional=True)
        _check_number("store_rpm", self.store_rpm, minimum=0, optional=True, exclusive=True)
        _check_number("upload_rpm", self.upload_rpm, minimum=0, optional=True, exclusive=True)
        _check_number("upload_bytes_per_s", self.upload_bytes_per_s, minimum=0, optional=True,
                      exclusive=True)
        for name in ("latency_ms", "slow_ms", "late_apply_ms", "processing_ms"):
            _check_number(name, getattr(self, name), minimum=0)
        for name in (*FAULT_RATE_FIELDS, "vs_fail_rate"):
            _check_number(name, getattr(self, name), minimum=0, maximum=1)
        if sum(getattr(self, name) for name in FAULT_RATE_FIELDS) > 1:
            raise ValueError(f"{' + '.join(FAULT_RATE_FIELDS)} must not exceed 1")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, not {self.seed!r}")
        if not isinstance(self.max_assistant_files, int) or self.max_assistant_files < 1:
            raise ValueError("max_assistant_files must be an integer >= 1")
        if self.store_max_files is not None and (
            not isinstance(self.store_max_files, int)
            or isinstance(self.store_max_files, bool)
            or self.store_max_files < 1
        ):
            raise ValueError(
                f"store_max_files must be an integer >= 1 or null, not {self.store_max_files!r}"
            )
        if (
            not isinstance(self.file_max_bytes, int)
            or isinstance(self.file_max_bytes, bool)
            or self.file_max_bytes < 1
        ):
            raise ValueError(f"file_max_bytes must be an integer >= 1, not {self.file_max_bytes!r}")
        for name in ("retire_v1", "quota_exhausted", "terse_404"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if self.fault_methods is not None:
            # Accept any iterable of names (a JSON list, say) and store it normalized.
            methods = _normalize_methods(self.fault_methods)
            object.__setattr__(self, "fault_methods", methods)

    @property
    def effective_burst(self) -> float:
        """Capacity of the global bucket: `burst`, else one second's worth of `rps`."""
        if self.burst is not None:
            return self.burst
        return max(1.0, self.rps or 1.0)

    def replace(self, changes: Mapping[str, Any]) -> SandboxConfig:
        """A copy with `changes` applied; an unknown field is a ValueError naming the closest."""
        known = {field.name for field in dataclasses.fields(self)}
        for name in changes:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown sandbox setting {name!r}{hint}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view, the API key masked."""
        data = dataclasses.asdict(self)
        data["api_key"] = "***"
        if self.fault_methods is not None:
            data["fault_methods"] = list(self.fault_methods)
        return data


def _check_number(
    name: str,
    value: object,
    *,
    minimum: float,
    maximum: float | None = None,
    optional: bool = False,
    exclusive: bool = False,
) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, not {value!r}")
    too_low = value <= minimum if exclusive else value < minimum
    if too_low or (maximum is not None and value > maximum):
        low = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else low
        raise ValueError(f"{name} must be {bounds}, not {value!r}")


def _normalize_methods(methods: Iterable[object]) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = methods.split(",")
    normalized: list[str] = []
    for method in methods:
        if not isinstance(method, str) or not method.strip():
            raise ValueError(f"fault_methods must hold HTTP method names, not {method!r}")
        normalized.append(method.strip().upper())
    return tuple(normalized)
