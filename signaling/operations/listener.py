"""The TCP listener of `python app.py`: aiohttp's server, with slow clients kept in bounds.

A connection that has not sent a complete request head yet (a slowloris client holds many such
connections open, each with a file descriptor) takes one of its address's connection slots, the
same slots that sessions take (`MAX_CONNECTIONS_PER_IP`), and is closed if its head has not come
within `HEADER_TIMEOUT` seconds. Once a request is being served the slot is given back: a
socket.io or Ant Media session then takes its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from aiohttp import web

from signaling.core.errors import SignalingError
from signaling.operations.logs import client_address
from signaling.security.guard import Guard

log = logging.getLogger(__name__)


class PendingHeads:
    """Connections accepted whose first request head has not arrived yet, by address."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._pending: dict[object, str] = {}  # by aiohttp's protocol object of the connection

    def opened(self, protocol: object, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        try:
            self._guard.reserve(address, "http")
        except SignalingError as error:
            reset = client_address.set(address)
            try:
                log.warning(
                    "connection from %s refused: %s", address, error.message, extra={"code": error.code}
                )
            finally:
                client_address.reset(reset)
            transport.abort()
            return
        self._pending[protocol] = address

    def served(self, protocol: object) -> None:
        """The connection's first request has arrived: it holds no slot from now on."""
        address = self._pending.pop(protocol, None)
        if address is not None:
            self._guard.release(address)

    def lost(self, protocol: object) -> None:
        self.served(protocol)

    def __len__(self) -> int:
        return len(self._pending)


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
        self._heads.lost(self._inner)
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
    """Serve `app` until cancelled; SIGTERM and SIGINT end it (aiohttp raises GracefulExit)."""
    # aiohttp's keep-alive timer runs from the moment a connection opens and closes it if no
    # complete request head is waiting by then: it bounds both a slow head and an idle connection.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=header_timeout)
    await runner.setup()
    assert runner.server is not None
    server = await asyncio.get_running_loop().create_server(
        counted(runner.server, heads), host, port, reuse_port=reuse_port
    )
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
        await runner.cleanup()
