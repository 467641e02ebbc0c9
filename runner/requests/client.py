"""The HTTP layer: one aiohttp session for the run, our headers, and every foreign error mapped
to ours in one place.

    TransportError            the request got no HTTP answer
    ├── sent=False            it never left (connect refused, DNS): safe to send again
    │   └── CertificateError  the server's certificate fails verification: the run stops
    └── sent=True             it may have been applied (reset, timeout): check before resending
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from runner import __version__

if TYPE_CHECKING:
    # aiohttp is imported when the first request is due (ApiClient._open): a fifth of a
    # second, and a converged rerun, a dry run or a bad manifest never sends one.
    import aiohttp
    from yarl import URL
from runner.pacing.durations import parse_go_duration
from runner.requests.multipart import FileChanged, UploadBody


class TransportError(Exception):
    """No HTTP answer. `sent`: the request may have reached the server."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class CertificateError(TransportError):
    """The server's TLS certificate cannot be verified: no request can reach it, now or on a
    retry, until the base URL or the trusted CAs change."""

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


_UNPARSED: Any = object()


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or None. orjson reads a listed file object in 1.2 us against json's
    2.7 (a batch's read-back is 100,000 of them a 100,000-pair run); what it refuses (NaN, a
    lone surrogate, UTF-16) json still reads as before. One difference: an integer past 64
    bits reads as the float it rounds to, as the API itself holds numbers (doubles)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass(slots=True)
class Answer:
    status: int
    raw: bytes  # the body as received
    limit: int | None  # x-ratelimit-limit-requests
    remaining: int | None  # x-ratelimit-remaining-requests
    reset: float | None  # x-ratelimit-reset-requests, seconds
    retry_after: float | None  # retry-after-ms, else retry-after, seconds
    _body: Any = _UNPARSED
    date: str | None = None  # the Date header (the server's clock), kept by uploads

    @property
    def body(self) -> Any:
        """The body as JSON, or None when it is not JSON; parsed when first asked (a caller
        that goes by the status alone never pays for it)."""
        if self._body is _UNPARSED:
            self._body = parse_json(self.raw)
        return self._body

    @property
    def text(self) -> str:
        """The raw body (its first 2,000 bytes) when it is not JSON, for messages; else ""."""
        if self.body is None and self.raw.strip() != b"null":
            return self.raw[:2000].decode("utf-8", "replace")
        return ""


def _int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def retry_after_seconds(headers: Any) -> float | None:
    """`retry-after-ms` first (finer), then `retry-after` in seconds; None when neither parses."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


class ApiClient:
    """Sends requests under our headers; never raises aiohttp's errors, only TransportError."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        beta_header: str,
        org: str | None,
        project: str | None,
        concurrency: int,
        timeout: float,
    ) -> None:
        self._base = base_url.rstrip("/")
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "OpenAI-Beta": beta_header,
            "User-Agent": f"attach-runner/{__version__}",
        }
        if org:
            headers["OpenAI-Organization"] = org
        if project:
            headers["OpenAI-Project"] = project
        self._headers = headers
        self._timeout_seconds = timeout
        self._concurrency = concurrency
        self._entered = False
        self._session: aiohttp.ClientSession | None = None
        self._proxy: URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None

    def __repr__(self) -> str:
        return f"ApiClient({self._base!r})"  # never the headers: they hold the key

    async def __aenter__(self) -> ApiClient:
        self._entered = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._entered = False
        if self._session is not None:
            await self._session.close()
            self._session = None

    def open(self) -> None:
        """Make the session now, if not yet: the sender calls this before it waits for a
        request's turn, so that importing aiohttp (a fifth of a second, the loop blocked)
        never holds back requests whose turns have come, to leave together after it."""
        if self._session is None:
            self._open()

    def _open(self) -> aiohttp.ClientSession:
        """The run's session, made for its first request (inside the event loop)."""
        assert self._entered, "use ApiClient as an async context manager"
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=self._concurrency)
        # HTTPS_PROXY / NO_PROXY are honoured, read once: every request goes to one base URL.
        # (trust_env=True would read the environment and ~/.netrc again in a thread for every
        # request: half the CPU of a fast run.) TLS verification stays on (the default).
        self._proxy, self._proxy_auth = _env_proxy(self._base)
        session = self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout_seconds))
        # aiohttp silently resends a GET once when a kept-alive connection drops. Every
        # request must pass the limiter and be counted (--rpm counts all), so we retry ourselves.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return session

    async def request(self, method: str, path: str, body: bytes | None = None) -> Answer:
        session = self._session or self._open()
        try:
            async with session.request(method, self._base + path, data=body,
                                       proxy=self._proxy, proxy_auth=self._proxy_auth) as resp:
                raw = await resp.read()
                headers = resp.headers
                status = resp.status
        except Exception as exc:  # aiohttp's errors, a timeout, an OSError: see _transport_error
            error = _transport_error(exc)
            if error is None:
                raise
            raise error from exc
        return _answer(status, raw, headers)

    async def upload(self, path: str, body: UploadBody, stall: float) -> Answer:
        """`POST path` with a file's multipart body, streamed. `stall` bounds each wait (for
        the connection to take the next chunk, and for the answer after the last byte), not
        the whole transfer: aiohttp has no write timeout, so a watchdog cancels a request
        whose body has not moved for that long. TransportError's `sent` is True only when the
        body went out whole: a cut-off body cannot have made a file object."""
        session = self._session or self._open()
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=stall)
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.length)}

        async def post() -> Answer:
            async with session.post(self._base + path, data=body.chunks(), headers=headers,
                                    timeout=timeout, proxy=self._proxy,
                                    proxy_auth=self._proxy_auth) as resp:
                raw = await resp.read()
                return _answer(resp.status, raw, resp.headers)

        # The watchdog: a timer, re-armed from the body's last progress, that cancels this
        # task once nothing moved for `stall` (not a task of its own and an asyncio.wait a
        # request: those cost ~40 us an upload, a tenth of a small file's).
        loop = asyncio.get_running_loop()
        begun = loop.time()
        task = asyncio.current_task()
        assert task is not None
        stalled = False
        timer: asyncio.TimerHandle | None = None

        def watch() -> None:
            nonlocal timer, stalled
            idle = loop.time() - max(body.progressed_at, begun)
            if idle >= stall:
                stalled = True
                task.cancel()
            else:
                timer = loop.call_later(stall - idle, watch)

        timer = loop.call_later(stall, watch)
        try:
            return await post()
        except asyncio.CancelledError:
            if stalled and not uncancel(task):  # ours alone: no other cancel is pending
                what = "no answer" if body.complete else "the upload stalled"
                raise TransportError(f"{what} for {stall:g} s", sent=body.complete) from None
            raise
        except (TransportError, FileChanged):
            raise
        except Exception as exc:
            if body.failure is not None:
                raise body.failure  # noqa: B904 - the library's wrapper of it is the context
            if body.changed:
                raise FileChanged(str(exc)) from exc
            error = _transport_error(exc)
            if error is None:
                raise
            error.sent = body.complete  # a cut-off body cannot have made a file object
            raise error from exc
        finally:
            if timer is not None:
                timer.cancel()


def uncancel(task: asyncio.Task[Any]) -> int:
    """Withdraw one cancel request; how many others are still pending (Python 3.11+; 0 on
    3.10, which does not count them)."""
    withdraw = getattr(task, "uncancel", None)
    return int(withdraw()) if withdraw is not None else 0


def _answer(status: int, raw: bytes, headers: Any) -> Answer:
    return Answer(
        status=status,
        raw=raw,
        limit=_int_header(headers, "x-ratelimit-limit-requests"),
        remaining=_int_header(headers, "x-ratelimit-remaining-requests"),
        reset=_reset_header(headers),
        retry_after=retry_after_seconds(headers),
        date=headers.get("Date"),
    )


def _transport_error(exc: BaseException) -> TransportError | None:
    """aiohttp's errors (and a timeout, an OSError) as ours; None for any other exception.
    aiohttp is imported here, not at the top: see ApiClient._open."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        reason = getattr(cause, "verify_message", None) or cause
        return CertificateError(f"cannot verify the TLS certificate of {exc.host}: {reason}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError(f"cannot connect: {exc.os_error}", sent=False)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return TransportError("timed out waiting for the answer", sent=True)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError("the server closed the connection", sent=True)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError("the answer was cut off", sent=True)
    if isinstance(exc, aiohttp.ClientError):
        return TransportError(f"connection error: {type(exc).__name__}", sent=True)
    if isinstance(exc, OSError):
        return TransportError(f"connection error: {exc.strerror or exc}", sent=True)
    return None


def _env_proxy(base_url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for `base_url` (HTTP(S)_PROXY minus NO_PROXY), if any."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(base_url))
    except LookupError:
        return None, None


def _reset_header(headers: Any) -> float | None:
    value = headers.get("x-ratelimit-reset-requests")
    return parse_go_duration(value) if value is not None else None
