"""Writing WebSocket frames straight to a connection, with a cap on what the client leaves unread.

aiohttp's `send_str` waits for the connection to drain once its buffer is full; a relay must not
wait on its slowest recipient. Writing frames directly, in the order they are sent, keeps a sender
from ever waiting for a recipient, and a recipient whose unread bytes pass the cap is cut off. (The
cap counts what waits in this process's send buffer, beyond what the kernel's socket buffers took.)
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Protocol

log = logging.getLogger(__name__)

# How long a server-side close waits for the client's half of the closing handshake.
CLOSE_TIMEOUT = 5.0

_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
FIN_CLOSE = 0x88
FIN_PONG = 0x8A
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def frame(payload: bytes, first_byte: int = _FIN_TEXT) -> bytes:
    """An unmasked, unfragmented WebSocket frame (RFC 6455 section 5.2), as servers send them."""
    size = len(payload)
    if size < 126:
        return _SHORT.pack(first_byte, size) + payload
    if size < 65536:
        return _MEDIUM.pack(first_byte, 126, size) + payload
    return _LONG.pack(first_byte, 127, size) + payload


class Closing(Protocol):
    """What a FrameWriter asks of the WebSocket it writes to: aiohttp's WebSocketResponse, or
    signaling.transports.engine's WebSocketLink."""

    @property
    def closed(self) -> bool: ...  # the closing handshake has begun (or the connection is gone)


class FrameWriter:
    """Writes frames to one client's WebSocket; aborts the connection past `limit` unread bytes.

    Frames go to the transport beneath `response`, interleaving safely with aiohttp's own writes
    (each is one whole frame, written synchronously); none is written once the closing handshake
    has begun.
    """

    __slots__ = ("_limit", "_response", "_transport", "_who")  # one per connection

    def __init__(self, response: Closing, transport: asyncio.Transport | None, limit: int, who: str) -> None:
        self._response = response
        self._transport = transport
        self._limit = limit
        self._who = who

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def write(self, payload: str | bytes, binary: bool = False) -> bool:
        """Write one message now (`payload` is UTF-8 text unless `binary`); False if the
        connection is closing or was just cut off."""
        transport = self._transport
        if transport is None or transport.is_closing() or self._response.closed:
            return False
        if transport.get_write_buffer_size() > self._limit:
            # It does not read: cut it off. A goodbye would wait behind the very bytes it ignores;
            # the connection's reading loop then sees it end and cleans up.
            log.warning("%s dropped: more than %d bytes unread", self._who, self._limit)
            transport.abort()
            return False
        if isinstance(payload, str):
            payload = payload.encode()
        transport.write(frame(payload, _FIN_BINARY if binary else _FIN_TEXT))
        return True
