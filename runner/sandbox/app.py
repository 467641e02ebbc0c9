"""Sandbox: the stand-in API served on loopback, in the caller's event loop; SandboxThread:
the same in a background thread with its own loop, for synchronous callers and for clients
that run their own loop (or a subprocess) against it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

from aiohttp import web

from runner.sandbox.config import SandboxConfig
from runner.sandbox.handlers import SandboxApi

T = TypeVar("T")
PreloadItem: TypeAlias = "str | Mapping[str, Any]"  # a file id, or a file with its state

# At stop, in-flight handlers (a slow fault's sleep, say) get this long, then are cancelled.
SHUTDOWN_TIMEOUT = 0.5
THREAD_CALL_TIMEOUT = 30.0


def format_base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class Sandbox:
    """The sandbox in the running event loop: `await start()`, then `await stop()`.

    `record()`, `update()`, `preload()` and `reset()` must be called from that loop's thread
    (use SandboxThread from elsewhere)."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self._api = SandboxApi(config or SandboxConfig())
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def config(self) -> SandboxConfig:
        return self._api.config

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`; only once started."""
        if self._base_url is None:
            raise RuntimeError("the sandbox is not started")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0: a free port) and return the base URL."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already started")
        runner = web.AppRunner(
            self._api.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, backlog=1024)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._base_url = format_base_url(host, bound_port)
        return self._base_url

    async def stop(self) -> None:
        """Close the listener and every connection; the record stays readable."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            await self._api.close()

    def record(self) -> dict[str, Any]:
        """A JSON-able snapshot of the record (shape: runner.sandbox.record)."""
        return self._api.snapshot()

    def update(self, **changes: Any) -> None:
        """Change config fields live, e.g. `update(fail_rate=0, quota_exhausted=True)`."""
        self._api.update(changes)

    def preload(self, owner_kind: str, owner: str, file_ids: Iterable[PreloadItem]) -> int:
        """Put pairs in place as if attached earlier (`owner_kind`: "assistant" or
        "vector_store"); returns how many were new. An item is a file id or, for a vector
        store, `{"file_id", "attributes"?, "chunking_strategy"?, "status"?, "last_error"?}`
        (see runner.sandbox.vector_stores.preload_entry)."""
        return self._api.preload(owner_kind, owner, _id_list(file_ids))

    def reset(self) -> None:
        """Forget all pairs, batches and counts; keep the config."""
        self._api.reset()


class SandboxThread:
    """A Sandbox served from a background thread; every method is thread-safe.

    with SandboxThread(SandboxConfig(fail_rate=0.1)) as sandbox:
        run_client(sandbox.base_url)
        assert sandbox.record()["pairs"]["asst_1/file-1"]["attached"] == 1
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._sandbox = Sandbox(config)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return self._sandbox.base_url

    @property
    def config(self) -> SandboxConfig:
        return self._call(lambda: self._sandbox.config)

    def start(self) -> str:
        """Start serving; returns the base URL once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the sandbox thread is already started")
        self._thread = threading.Thread(target=self._run, name="sandbox", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self.base_url

    def stop(self) -> None:
        """Stop serving and join the thread; the record stays readable."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def record(self) -> dict[str, Any]:
        return self._call(self._sandbox.record)

    def update(self, **changes: Any) -> None:
        self._call(lambda: self._sandbox.update(**changes))

    def preload(self, owner_kind: str, owner: str, file_ids: Iterable[PreloadItem]) -> int:
        ids = _id_list(file_ids)
        return self._call(lambda: self._sandbox.preload(owner_kind, owner, ids))

    def reset(self) -> None:
        self._call(self._sandbox.reset)

    def _call(self, function: Callable[[], T]) -> T:
        """Run `function` in the sandbox's loop (its state lives there); after stop, here."""
        loop = self._loop
        if self._thread is None or loop is None:
            return function()

        async def call() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(THREAD_CALL_TIMEOUT)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self._sandbox.start(self._host, self._port))
            except BaseException as exc:  # handed to start() in the caller's thread
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self._sandbox.stop())
        finally:
            _close_loop(loop)
            self._loop = None


def _id_list(file_ids: Iterable[PreloadItem]) -> list[PreloadItem]:
    if isinstance(file_ids, str):
        raise ValueError(f"file_ids must be a list of file ids, not the string {file_ids!r}")
    return list(file_ids)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left (handlers still sleeping), then close: no pending-task warnings."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        gather: Awaitable[Any] = asyncio.gather(*pending, return_exceptions=True)
        loop.run_until_complete(gather)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
