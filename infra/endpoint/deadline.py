"""Overall deadlines that every endpoint client honours, and the HTTP clients that honour them.

httpx's timeouts are per socket operation: the read timeout starts again with every byte, so a
server that drips one byte a second, or streams events for ever, keeps a request alive for
ever whatever timeout is given. Here a :class:`Deadline` is an absolute time on the monotonic
clock. ``with scope(d1, d2, ...):`` makes the earliest of them (and of any enclosing scope) the
limit for every connect, read and write that the current thread or asyncio task does through a
client from :func:`http_client` / :func:`async_http_client`: their network backend wraps
httpcore's own and clamps each operation's timeout to the time left. Once the deadline has
passed, the next operation fails at once with httpx's ``ConnectTimeout`` / ``ReadTimeout`` /
``WriteTimeout``, whose message names the deadline (:meth:`Deadline.message`).

Scopes live in a context variable: asyncio tasks inherit the scope they were created in; a
thread from a pool does not, so code that fans out to threads passes its deadline explicitly.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import httpcore
import httpx


@dataclass(frozen=True)
class Deadline:
    at: float          # time.monotonic() when it passes
    seconds: float     # the budget it was made with, for messages
    what: str          # what it bounds: "request", "smoke test", "warm-up request", ...

    @classmethod
    def after(cls, seconds: float, what: str) -> "Deadline":
        seconds = max(0.0, float(seconds))
        return cls(time.monotonic() + seconds, seconds, what)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def message(self) -> str:
        return f"the {self.what} took longer than its {self.seconds:g}s deadline"


_ACTIVE: ContextVar[Deadline | None] = ContextVar("gptoss_endpoint_deadline", default=None)


def earliest(*deadlines: Deadline | None) -> Deadline | None:
    found = [d for d in deadlines if d is not None]
    return min(found, key=lambda d: d.at) if found else None


def active() -> Deadline | None:
    return _ACTIVE.get()


@contextmanager
def scope(*deadlines: Deadline | None) -> Iterator[Deadline | None]:
    """Within this block, socket operations end by the earliest of ``deadlines`` and the
    enclosing scope's deadline. Yields that deadline (None: no limit)."""
    effective = earliest(_ACTIVE.get(), *deadlines)
    token = _ACTIVE.set(effective)
    try:
        yield effective
    finally:
        _ACTIVE.reset(token)


_Exc = type[httpcore.TimeoutException]


def _clamp(timeout: float | None, exc: _Exc) -> tuple[float | None, Deadline | None]:
    d = _ACTIVE.get()
    if d is None:
        return timeout, None
    left = d.remaining()
    if left <= 0:
        raise exc(d.message())
    return (left if timeout is None else min(timeout, left)), d


def _bounded(call: typing.Callable[[float | None], typing.Any], timeout: float | None, exc: _Exc) -> typing.Any:
    t, d = _clamp(timeout, exc)
    try:
        return call(t)
    except httpcore.TimeoutException as err:
        if d is not None and d.expired:  # the socket timed out because the deadline did
            raise exc(d.message()) from err
        raise


async def _abounded(call: typing.Callable[[float | None], typing.Awaitable[typing.Any]], timeout: float | None,
                    exc: _Exc) -> typing.Any:
    t, d = _clamp(timeout, exc)
    try:
        return await call(t)
    except httpcore.TimeoutException as err:
        if d is not None and d.expired:
            raise exc(d.message()) from err
        raise


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _bounded(lambda t: self._inner.read(max_bytes, t), timeout, httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _bounded(lambda t: self._inner.write(buffer, t), timeout, httpcore.WriteTimeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(_bounded(lambda t: self._inner.start_tls(ssl_context, server_hostname, t), timeout,
                                httpcore.ConnectTimeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: typing.Any = None) -> httpcore.NetworkStream:
        return _Stream(_bounded(lambda t: self._inner.connect_tcp(host, port, t, local_address, socket_options),
                                timeout, httpcore.ConnectTimeout))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Any = None) -> httpcore.NetworkStream:
        return _Stream(_bounded(lambda t: self._inner.connect_unix_socket(path, t, socket_options), timeout,
                                httpcore.ConnectTimeout))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream):
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await _abounded(lambda t: self._inner.read(max_bytes, t), timeout, httpcore.ReadTimeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await _abounded(lambda t: self._inner.write(buffer, t), timeout, httpcore.WriteTimeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await _abounded(lambda t: self._inner.start_tls(ssl_context, server_hostname, t),
                                            timeout, httpcore.ConnectTimeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend):
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: typing.Any = None
                          ) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await _abounded(
            lambda t: self._inner.connect_tcp(host, port, t, local_address, socket_options),
            timeout, httpcore.ConnectTimeout))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Any = None) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await _abounded(lambda t: self._inner.connect_unix_socket(path, t, socket_options),
                                            timeout, httpcore.ConnectTimeout))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _wrap_pools(client: httpx.Client | httpx.AsyncClient, wrapper: typing.Any) -> None:
    # httpx has no public hook for httpcore's network backend; each pool keeps it in one
    # attribute. The main transport and those httpx mounts for proxies from the environment
    # are all wrapped. A changed httpx fails here, at construction, not silently later.
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        if pool is None:
            continue  # no proxy for this pattern, or a test double
        inner = getattr(pool, "_network_backend", None)
        if inner is None:
            raise RuntimeError("this httpx/httpcore version gives no network backend to wrap; "
                               "the endpoint clients cannot enforce their deadlines")
        if not isinstance(inner, (_Backend, _AsyncBackend)):
            pool._network_backend = wrapper(inner)


def _client(cls: typing.Any, backend: typing.Any, timeout: float, max_connections: int, transport: typing.Any,
            kwargs: dict[str, typing.Any]) -> typing.Any:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    client = cls(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), transport=transport, limits=limits,
                 follow_redirects=False, **kwargs)
    if transport is None:  # a given transport is a test double: used as is
        _wrap_pools(client, backend)
    return client


def http_client(timeout: float, *, max_connections: int = 64, transport: httpx.BaseTransport | None = None,
                **kwargs: typing.Any) -> httpx.Client:
    """An httpx.Client whose socket operations honour the active :func:`scope`. ``timeout``
    is httpx's per-operation timeout (connect at most 10 s)."""
    return _client(httpx.Client, _Backend, timeout, max_connections, transport, kwargs)


def async_http_client(timeout: float, *, max_connections: int = 64,
                      transport: httpx.AsyncBaseTransport | None = None, **kwargs: typing.Any) -> httpx.AsyncClient:
    """The asyncio twin of :func:`http_client`."""
    return _client(httpx.AsyncClient, _AsyncBackend, timeout, max_connections, transport, kwargs)
