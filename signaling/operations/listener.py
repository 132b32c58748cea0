"""The TCP listener of `python app.py`: aiohttp's server, with slow clients kept in bounds.

A slowloris client holds many connections open without ever finishing a request head, each with
a file descriptor. Connections whose first request head has not arrived are counted per address,
up to MAX_CONNECTIONS_PER_IP (on their own: a live session's next request must never be turned
away because its address is at its session limit), and each has HEADER_TIMEOUT seconds.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import cast

from aiohttp import web

from signaling.core.errors import ErrorCode
from signaling.operations.logs import client_address
from signaling.security.guard import Guard
from signaling.security.ratelimit import AddressLimiter

log = logging.getLogger(__name__)


class PendingHeads:
    """Connections accepted whose first request head has not arrived yet, by address."""

    def __init__(self, guard: Guard, per_address: int) -> None:
        self._guard = guard  # for the refusal counts in metrics
        self._limiter = AddressLimiter(per_address)
        self._pending: dict[object, str] = {}  # by aiohttp's protocol object of the connection

    def opened(self, protocol: object, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._limiter.acquire(address):
            self._guard.refused("http", ErrorCode.TOO_MANY_CONNECTIONS)
            reset = client_address.set(address)
            try:
                log.warning(
                    "connection from %s closed: %d connections from it have not sent a request yet",
                    address,
                    self._limiter.per_address,
                    extra={"code": ErrorCode.TOO_MANY_CONNECTIONS},
                )
            finally:
                client_address.reset(reset)
            transport.abort()
            return
        self._pending[protocol] = address

    def served(self, protocol: object) -> None:
        """The connection's first request has arrived, or it closed: it is pending no more."""
        address = self._pending.pop(protocol, None)
        if address is not None:
            self._limiter.release(address)


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, told to `PendingHeads` when it opens and closes.

    A wrapper rather than a subclass: aiohttp builds its protocol objects itself, and the wrapper
    needs nothing of them beyond asyncio's Protocol interface.
    """

    __slots__ = ("_heads", "_inner")

    def __init__(self, inner: asyncio.Protocol, heads: PendingHeads) -> None:
        self._inner = inner
        self._heads = heads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)
        self._heads.opened(self._inner, cast(asyncio.Transport, transport))

    def connection_lost(self, exc: Exception | None) -> None:
        self._heads.served(self._inner)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def counted(factory: Callable[[], asyncio.Protocol], heads: PendingHeads) -> Callable[[], asyncio.Protocol]:
    return lambda: _Counted(factory(), heads)


async def serve(
    app: web.Application,
    heads: PendingHeads,
    *,
    host: str,
    port: int,
    header_timeout: float,
    reuse_port: bool | None = None,
) -> None:
    """Serve `app` until SIGTERM or SIGINT, then shut down cleanly (the cluster leaves, handlers
    finish), as aiohttp's run_app does."""
    # aiohttp's keep-alive timer runs from the moment a connection opens and closes it if no
    # complete request head is waiting by then: it bounds both a slow head and an idle connection.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=header_timeout)
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(counted(runner.server, heads), host, port, reuse_port=reuse_port)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
        log.info("stopping")
    finally:
        server.close()
        await runner.cleanup()
