"""The TCP listener of `python app.py`: aiohttp's server, with what one address holds bounded.

Whatever a client does with a TCP connection (never finish its request head, send a body that
never ends, hold long polls, never read a response), each costs a file descriptor: an address
may hold at most TCP_CONNECTIONS_PER_SESSION times MAX_CONNECTIONS_PER_IP connections, counted
from accept to close (a long-polling session uses two, a WebSocket one), and the lines aiohttp
logs about a connection count against its address's log budget. A connection waits at most
HEADER_TIMEOUT for a request head, first or next.
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

TCP_CONNECTIONS_PER_SESSION = 2


class TcpConnections:
    """Open TCP connections by address, each counted from accept to close."""

    def __init__(self, guard: Guard, sessions_per_address: int) -> None:
        self._guard = guard  # for the refusal counts in metrics
        self._limiter = AddressLimiter(TCP_CONNECTIONS_PER_SESSION * sessions_per_address)
        self._open: dict[object, str] = {}  # by the connection's protocol (our wrapper of aiohttp's)

    def opened(self, protocol: object, address: str, transport: asyncio.Transport) -> bool:
        """Count a new connection; False (and the connection aborted) beyond the address's share."""
        if not self._limiter.acquire(address):
            self._guard.refused("http", ErrorCode.TOO_MANY_CONNECTIONS)
            log.warning(
                "connection from %s closed: it has %d open already",
                address,
                self._limiter.per_address,
                extra={"code": ErrorCode.TOO_MANY_CONNECTIONS},
            )
            transport.abort()
            return False
        self._open[protocol] = address
        return True

    def closed(self, protocol: object) -> None:
        address = self._open.pop(protocol, None)
        if address is not None:
            self._limiter.release(address)


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted by `TcpConnections` from open to close.

    A wrapper rather than a subclass: aiohttp builds its protocol objects itself, and the wrapper
    needs nothing of them beyond asyncio's Protocol interface. An upgraded WebSocket leaves
    aiohttp for a protocol of its own (`hand_over`), still counted.
    """

    __slots__ = ("_connections", "_inner")

    def __init__(self, inner: asyncio.Protocol, connections: TcpConnections) -> None:
        self._inner = inner
        self._connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        # Set while aiohttp starts the connection's task, which keeps it: what aiohttp logs about
        # the connection (malformed requests...) counts against its address (signaling.logs).
        reset = client_address.set(address)
        try:
            self._inner.connection_made(transport)
            self._connections.opened(self, address, cast(asyncio.Transport, transport))
        finally:
            client_address.reset(reset)

    def hand_over(self, inner: asyncio.Protocol) -> None:
        """From now on the connection is `inner`'s (signaling.transports.engine.WebSocketLink)."""
        self._inner = inner

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.closed(self)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def counted(
    factory: Callable[[], asyncio.Protocol], connections: TcpConnections
) -> Callable[[], asyncio.Protocol]:
    return lambda: _Counted(factory(), connections)


LISTEN_BACKLOG = 4096


async def serve(
    app: web.Application,
    connections: TcpConnections,
    *,
    host: str,
    port: int,
    header_timeout: float,
    drain_timeout: float,
    reuse_port: bool | None = None,
) -> None:
    """Serve `app` until SIGTERM or SIGINT; then drain: take no new connection, let the app tell
    its clients to go elsewhere (its on_shutdown), give handlers `drain_timeout` seconds to end,
    and clean up (a cluster node leaves)."""
    # aiohttp's keep-alive timer runs from the moment a connection opens and closes it if no
    # complete request head is waiting by then: it bounds both a slow head and an idle connection.
    runner = web.AppRunner(
        app, access_log=None, keepalive_timeout=header_timeout, shutdown_timeout=drain_timeout
    )
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    # After a restart every client reconnects at once: asyncio's default backlog (100) makes the
    # kernel drop most of their handshakes, which clients retry after 1, 2, 4... s (a reconnect
    # storm of 5,000 took 17-23 s, 9 s with this). The kernel caps it at net.core.somaxconn.
    server = await loop.create_server(
        counted(runner.server, connections), host, port, reuse_port=reuse_port, backlog=LISTEN_BACKLOG
    )
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
        log.info("draining: no new connections; clients are told to reconnect elsewhere")
    finally:
        server.close()
        await runner.cleanup()
