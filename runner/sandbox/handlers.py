"""The sandbox's application: every /v1 request's pipeline (latency, key, quota, rate limits,
faults, OpenAI-Beta, late apply), the route table, and steering (live config, reset); the
API's calls are mixins (assistants.py, vector_stores.py, files.py), and so are the admin routes
(admin.py). The rules a client under test can rely on are in
docs/sandbox.md ("Rules it follows", "Order of checks"): keep the two in step.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from aiohttp import web

from runner.sandbox import errors
from runner.sandbox.admin import ASSISTANT, VECTOR_STORE, AdminRoutes
from runner.sandbox.assistants import AssistantRoutes
from runner.sandbox.config import SandboxConfig
from runner.sandbox.errors import ApiError
from runner.sandbox.faults import (
    BAD_GATEWAY_HTML,
    ERROR_AFTER,
    HTTP_500,
    HTTP_502,
    LATE_APPLY,
    RESET_AFTER,
    RESET_BEFORE,
    SERVER_ERRORS,
    SLOW,
    FaultInjector,
    drop_connection,
)
from runner.sandbox.files import FILES, FileObject, FileRoutes
from runner.sandbox.limits import TokenBucket, format_go_duration, retry_headers
from runner.sandbox.record import Record
from runner.sandbox.state import (
    AssistantFile,
    VectorStore,
)
from runner.sandbox.vector_stores import VectorStoreRoutes

ADMIN_PREFIX = "/__sandbox/"
RETIRED_V1_MESSAGE = (
    "The v1 Assistants API has been retired. Please try again with the header "
    "'OpenAI-Beta: assistants=v2'; see https://platform.openai.com/docs/assistants/migration."
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouteInfo(NamedTuple):
    label: str  # the record's by_route key, e.g. "POST attach"
    target: str  # ASSISTANT or VECTOR_STORE
    write: bool  # adds, batches, updates, deletes, uploads: what a late_apply fault may hold
    store_write: bool  # a write to a vector store: counts against the store's limit
    upload: bool = False  # POST /files: a multipart body, streamed (see files.py)


class SandboxApi(AdminRoutes, AssistantRoutes, VectorStoreRoutes, FileRoutes):
    """The aiohttp application and all the state behind it. Not thread-safe: use it from the
    event loop that serves it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.record = Record()
        self.faults = FaultInjector(config)
        self.assistants: dict[str, dict[str, AssistantFile]] = {}
        self.assistant_created_at: dict[str, int] = {}  # wall-clock seconds, as the API sends
        self.stores: dict[str, VectorStore] = {}
        self._bucket = self._make_bucket()
        self._store_buckets: dict[str, TokenBucket] = {}
        self._upload_bucket: TokenBucket | None = None
        self._routes: dict[object, RouteInfo] = {}  # aiohttp route -> what it is
        self._batch_serial = 0  # not reset: batch ids stay unique for the server's life
        self.files: dict[str, FileObject] = {}
        self._file_serial = 0  # not reset: file ids stay unique for the server's life
        self._request_serial = 0
        # Held writes of late_apply faults: referenced so they are not collected mid-sleep.
        self._late: set[asyncio.Task[web.StreamResponse]] = set()
        # Writes held now, from the draw until applied or dropped (the record's held_writes).
        # Not in Record: a reset must not forget a write that will still land.
        self.held_writes = 0
        self.app = self._build_app()

    # -- steering -------------------------------------------------------------------------

    def update(self, changes: Mapping[str, Any]) -> None:
        """Change config fields live; ValueError for an unknown field or a bad value."""
        old, new = self.config, self.config.replace(changes)
        self.config = new
        if (old.rps, old.effective_burst) != (new.rps, new.effective_burst):
            self._bucket = self._make_bucket()
        if old.store_rpm != new.store_rpm:
            self._store_buckets.clear()
        if old.upload_rpm != new.upload_rpm:
            self._upload_bucket = None
        self.faults.configure(new)
        if "seed" in changes:
            self.faults.reseed(new.seed)

    def reset(self) -> None:
        """Forget every pair, batch and count; the config stays, the fault sequence restarts."""
        self.record = Record()
        self.assistants.clear()
        self.assistant_created_at.clear()
        self.stores.clear()
        self.files.clear()
        self._bucket = self._make_bucket()
        self._store_buckets.clear()
        self._upload_bucket = None
        self.faults.reseed(self.config.seed)

    # -- the pipeline every /v1 request goes through ----------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            try:
                return await handler(request)
            except ApiError as error:
                return error.response()
        # The same record at start and finish, even if a reset swaps it in between.
        record = self.record
        route = self._routes.get(request.match_info.route)
        now = time.monotonic()
        headers = request.headers
        record.request_started(
            route.label if route else f"{request.method} unknown",
            now,
            headers.get("OpenAI-Organization"),
            headers.get("OpenAI-Project"),
        )
        if route is not None and route.store_write:
            record.store_write_started(request.match_info["vector_store_id"], now)
        status = None
        try:
            response = await self._serve(request, handler, route, record)
            if response is None:
                # The connection is gone: aiohttp's write of this fails quietly.
                return web.Response()
            status = response.status
            return response
        finally:
            record.request_finished(status)
            if route is not None and route.upload:
                record.upload_finished(status)

    async def _serve(
        self, request: web.Request, handler: Handler, route: RouteInfo | None, record: Record
    ) -> web.StreamResponse | None:
        """The answer to send, or None when the connection was dropped."""
        config = self.config
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        fault = None
        response: web.StreamResponse
        try:
            if route is None:
                raise errors.invalid_url(request.method, request.path)
            self._check_key(request.headers.get("Authorization"))
            if config.quota_exhausted:
                raise errors.quota_exhausted()
            if self._bucket is not None:
                self._take_request_token(record)
            if route.upload:
                self.take_upload_token()
            fault = self.faults.draw(request.method, route.write)
            if fault is not None:
                record.fault(fault)
                if fault in SERVER_ERRORS:
                    return self._finish(self._server_error(fault))
                if fault == RESET_BEFORE:
                    drop_connection(request)
                    return None
                if fault == LATE_APPLY:
                    return self._finish(await self._apply_late(request, handler, route))
            response = await self._apply(request, handler, route.target)
        except ApiError as error:
            response = error.response()
        except ConnectionResetError:
            # The client left while its body was being read (an upload cut off, say): there
            # is no one to answer, and nothing was applied.
            return None
        if fault == RESET_AFTER:
            drop_connection(request)
            return None
        if fault == ERROR_AFTER:
            # Applied (or refused) as any write, and the answer lost behind a 500 all the same.
            return self._finish(self._server_error(HTTP_500))
        if fault == SLOW:
            await asyncio.sleep(config.slow_ms / 1000)
        return self._finish(response)

    async def _apply(
        self, request: web.Request, handler: Handler, target: str
    ) -> web.StreamResponse:
        """The rest of the pipeline: the OpenAI-Beta check, then the route."""
        try:
            self._check_beta(request.headers.get("OpenAI-Beta"), target)
            return await handler(request)
        except ApiError as error:
            return error.response()

    async def _apply_late(
        self, request: web.Request, handler: Handler, route: RouteInfo
    ) -> web.StreamResponse:
        """Hold the write `late_apply_ms`, then apply it. The apply runs in its own task and is
        awaited through a shield: when the client gives up, aiohttp may cancel this handler,
        but the write still lands, as the live API's did."""
        # Counted before the first await: no snapshot can fall between the draw and the count.
        self.held_writes += 1
        try:
            # The whole body, while the connection is open: an upload is streamed and hashed
            # now (its handler then only makes the file object); a JSON body is cached for
            # the route's own read.
            if route.upload:
                handler = await self.received_handler(request)
            else:
                await request.read()
        except BaseException:
            self.held_writes -= 1  # dropped: the client left before its body arrived
            raise
        task = asyncio.ensure_future(self._held(request, handler, route.target))
        self._late.add(task)
        task.add_done_callback(self._release)
        return await asyncio.shield(task)

    def _release(self, task: asyncio.Task[web.StreamResponse]) -> None:
        """A held write is over: applied, or cancelled at stop (a done callback runs either
        way, even for a task cancelled before it started)."""
        self._late.discard(task)
        self.held_writes -= 1

    async def _held(
        self, request: web.Request, handler: Handler, target: str
    ) -> web.StreamResponse:
        await asyncio.sleep(self.config.late_apply_ms / 1000)
        return await self._apply(request, handler, target)

    async def close(self) -> None:
        """Cancel writes still held (the server is stopping: they are never applied)."""
        for task in list(self._late):
            task.cancel()
        await asyncio.gather(*self._late, return_exceptions=True)

    def _finish(self, response: web.StreamResponse) -> web.StreamResponse:
        self._request_serial += 1
        headers = response.headers
        headers["x-request-id"] = f"req_{self._request_serial:032x}"
        bucket = self._bucket
        # A store's or the uploads' 429 carries that bucket's own limit headers: keep them.
        if bucket is not None and "x-ratelimit-limit-requests" not in headers:
            now = time.monotonic()
            headers["x-ratelimit-limit-requests"] = str(self._limit_per_minute())
            headers["x-ratelimit-remaining-requests"] = str(bucket.remaining(now))
            headers["x-ratelimit-reset-requests"] = format_go_duration(bucket.time_to_full(now))
        return response

    def _server_error(self, fault: str) -> web.Response:
        if fault == HTTP_502:
            # What a proxy in front of the API sends: HTML, not OpenAI's JSON.
            return web.Response(status=502, text=BAD_GATEWAY_HTML, content_type="text/html")
        return errors.server_error(int(fault.removeprefix("http_"))).response()

    def _check_key(self, header: str | None) -> None:
        scheme, _, key = (header or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise errors.missing_key()
        if not hmac.compare_digest(key.encode(), self.config.api_key.encode()):
            raise errors.incorrect_key(key)

    def _check_beta(self, header: str | None, target: str) -> None:
        if target == FILES:
            return  # the Files API is not the Assistants API: the header is not read
        version = _assistants_version(header)
        if version == "v1" and self.config.retire_v1:
            raise errors.invalid_beta(RETIRED_V1_MESSAGE)
        if target == ASSISTANT and version != "v1":
            if version is None:
                raise errors.invalid_beta(
                    "You must provide the 'OpenAI-Beta' header to access the Assistants API. "
                    "Please try again by setting the header 'OpenAI-Beta: assistants=v1'."
                )
            raise errors.invalid_beta(
                "Assistants (/v1/assistants/{assistant_id}) and their files are only available "
                f"in the v1 Assistants API, and this request asked for 'assistants={version}'. "
                "Please try again with the header 'OpenAI-Beta: assistants=v1'."
            )
        if target == VECTOR_STORE and version == "v1":
            raise errors.invalid_beta(
                "Vector stores are not available in the v1 Assistants API. Please try again "
                "with the header 'OpenAI-Beta: assistants=v2', or without it."
            )

    def _make_bucket(self) -> TokenBucket | None:
        rps = self.config.rps
        if rps is None:
            return None
        return TokenBucket(rps, self.config.effective_burst, time.monotonic())

    def _limit_per_minute(self) -> int:
        return max(1, round((self.config.rps or 0) * 60))

    def _take_request_token(self, record: Record) -> None:
        assert self._bucket is not None
        wait = self._bucket.take(time.monotonic())
        if wait:
            record.limited("requests")
            limit = self._limit_per_minute()
            raise errors.rate_limited(
                "Rate limit reached for requests in organization org-sandbox on requests per "
                f"min (RPM): Limit {limit}, Used {limit}, Requested 1. Please try again in "
                f"{format_go_duration(wait)}. Visit https://platform.openai.com/account/"
                "rate-limits to learn more.",
                retry_headers(wait),
            )

    # -- the application --------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=4 * 1024**2)
        owner = "/v1/assistants/{assistant_id}"
        assistant = owner + "/files"
        store = "/v1/vector_stores/{vector_store_id}"
        batch = store + "/file_batches/{batch_id}"
        api: list[tuple[str, str, Handler, str, str]] = [
            ("GET", owner, self.get_assistant, "assistant", ASSISTANT),
            ("POST", assistant, self.attach_assistant_file, "attach", ASSISTANT),
            ("GET", assistant, self.list_assistant_files, "list", ASSISTANT),
            ("GET", assistant + "/{file_id}", self.get_assistant_file, "check", ASSISTANT),
            ("DELETE", assistant + "/{file_id}", self.delete_assistant_file, "file", ASSISTANT),
            ("GET", store, self.get_vector_store, "store", VECTOR_STORE),
            ("POST", store + "/files", self.attach_vs_file, "attach", VECTOR_STORE),
            ("GET", store + "/files", self.list_vs_files, "list", VECTOR_STORE),
            ("GET", store + "/files/{file_id}", self.get_vs_file, "check", VECTOR_STORE),
            ("POST", store + "/files/{file_id}", self.update_vs_file, "update", VECTOR_STORE),
            ("DELETE", store + "/files/{file_id}", self.delete_vs_file, "file", VECTOR_STORE),
            ("POST", store + "/file_batches", self.create_batch, "batch", VECTOR_STORE),
            ("GET", batch, self.get_batch, "batch", VECTOR_STORE),
            ("GET", batch + "/files", self.list_batch_files, "batch_files", VECTOR_STORE),
            ("POST", batch + "/cancel", self.cancel_batch, "batch_cancel", VECTOR_STORE),
            ("POST", "/v1/files", self.create_file, "upload", FILES),
            ("GET", "/v1/files", self.list_files, "file_list", FILES),
            ("GET", "/v1/files/{file_id}", self.get_file, "file_object", FILES),
            ("DELETE", "/v1/files/{file_id}", self.delete_file, "file_object", FILES),
        ]
        for method, path, handler, kind, target in api:
            route = app.router.add_route(method, path, handler)
            # Cancelling a batch is left out: the product never does, the limit is on writes
            # of files.
            write = method in ("POST", "DELETE") and kind != "batch_cancel"
            info = RouteInfo(
                f"{method} {kind}",
                target,
                write,
                write and target == VECTOR_STORE,
                upload=kind == "upload",
            )
            self._routes[route] = info
        app.router.add_get(ADMIN_PREFIX + "record", self.admin_record)
        app.router.add_post(ADMIN_PREFIX + "reset", self.admin_reset)
        app.router.add_get(ADMIN_PREFIX + "config", self.admin_config)
        app.router.add_post(ADMIN_PREFIX + "config", self.admin_config)
        app.router.add_post(ADMIN_PREFIX + "preload", self.admin_preload)
        return app


def _assistants_version(header: str | None) -> str | None:
    """ "v1" from `OpenAI-Beta: assistants=v1` (among comma-separated betas), else None."""
    if not header:
        return None
    for part in header.split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "assistants":
            return value.strip()
    return None
