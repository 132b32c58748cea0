"""Everything that reaches into python-socketio's, python-engineio's and aiohttp's internals, in one
module.

- `DirectSocket`: engine.io sessions whose WebSocket packets are written straight to the
  connection. python-engineio's WebSocket loop costs more CPU per message than the relaying
  itself: it wraps every read in a new task plus `wait_for`, and every write goes through a
  per-connection queue to a writer task. `DirectSocket` keeps engine.io's handshake, pings and
  close semantics, but reads frames as they arrive (see `WebSocketLink`) and writes each packet
  to the transport on the spot, in the order `send` is called (see signaling.transports.frames
  for the cap on what a client leaves unread). It also fixes engine.io's long-polling edge
  cases (see its methods).
- `WebSocketLink`: a WebSocket once its handshake is answered (an engine.io session's, or an Ant
  Media connection's: see `LinkOwner`), taken out of aiohttp's request handling (which holds a
  request, tasks and a dozen coroutine frames for a WebSocket's whole life): it reads frames in
  protocol callbacks and runs a task only while it has messages.
- `Pinger`: engine.io's heartbeat for all of a server's sessions, instead of a task per session.
- `SignalingServer`: python-socketio's server, decoding client packets itself and handing every
  event to one dispatcher.

`RELIES_ON` lists each private method and attribute used here; tests/test_engine_contract.py
checks them (and what is assumed of aiohttp's upgraded connections) against the installed
libraries, so an upgrade that changes one fails loudly there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import logging
import math
import re
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any, Protocol, cast

import socketio
from aiohttp import WSCloseCode, web
from aiohttp._websocket.helpers import websocket_mask
from engineio import async_socket, exceptions, packet, payload
from socketio import packet as sio_packet

from signaling.core.errors import ErrorCode, SignalingError
from signaling.operations.logs import brief
from signaling.security.guard import Guard
from signaling.security.ratelimit import ConnectionLimiter
from signaling.transports import fastjson, frames
from signaling.transports.frames import FrameWriter

log = logging.getLogger(__name__)


class DirectWebSocket:
    """engine.io's aiohttp WebSocket driver, replaced: aiohttp checks the handshake, and once it is
    answered the connection leaves aiohttp for a WebSocketLink (no per-frame deflate either:
    signaling messages are small, and deflating each one costs more CPU than the bytes it saves)."""

    __slots__ = ("_request", "accepted", "handler", "server")  # lives as long as the handshake

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server
        self._request: web.Request | None = None
        self.accepted = False

    async def __call__(self, environ: dict[str, Any]) -> web.StreamResponse:
        request: web.Request = environ["aiohttp.request"]
        # engine.io's copy of every header: nothing reads it once this driver is called (our
        # socket.io server keeps what it needs in its own slim environ: see _handle_eio_connect).
        environ.clear()
        await check_handshake(request)
        self._request = request
        try:
            await self.handler(self)  # the session's _websocket_handler: accepts, or not
        finally:
            self._request = None
        return Detached() if self.accepted else web.Response(status=400, text="the upgrade is refused")

    def accept(self, socket: DirectSocket) -> WebSocketLink:
        """Answer the handshake, and take the connection out of aiohttp's hands."""
        assert self._request is not None and not self.accepted
        self.accepted = True
        return WebSocketLink.take_over(
            self._request, socket, socket.links, socket.server.max_http_buffer_size
        )


async def check_handshake(request: web.Request) -> None:
    """Raises aiohttp's 400 for a request that is not a WebSocket handshake (what it checks before
    answering one); returns for one that is, leaving it unanswered for `WebSocketLink.take_over`."""
    handshake = web.WebSocketResponse(compress=False)
    if not handshake.can_prepare(request):
        await handshake.prepare(request)


class Detached(web.StreamResponse):
    """What an aiohttp handler returns once `WebSocketLink.take_over` has its connection: nothing
    to send, and no connection to keep alive (aiohttp no longer has one)."""

    def __init__(self) -> None:
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


# RFC 6455: the server's handshake answer, and the frames a client sends.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
    b"Sec-WebSocket-Accept: %s\r\n\r\n"
)
_OP_CONTINUATION, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
_CLOSE_CODE = struct.Struct("!H")
# Bytes of messages waiting for their handler past which a link stops reading (until half of
# that is left), as aiohttp's WebSocket reader does: what a client sends is bounded by this.
INBOX_LIMIT = 2 * 2**16
MESSAGE_OVERHEAD = 128  # counted for each message besides its bytes: floods of empty ones count too
_END = object()  # the last item of a link's inbox: the connection is gone


class Links:
    """The open WebSocketLinks of a server, and a way to wait until there are none."""

    def __init__(self) -> None:
        self._links: set[WebSocketLink] = set()
        self._none: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._links)

    def __iter__(self) -> Iterator[WebSocketLink]:
        return iter(list(self._links))

    def add(self, link: WebSocketLink) -> None:
        self._links.add(link)

    def discard(self, link: WebSocketLink) -> None:
        self._links.discard(link)
        if not self._links and self._none is not None:
            self._none.set()

    async def gone(self) -> None:
        if self._links:
            self._none = asyncio.Event()
            await self._none.wait()

    async def cut_off(self, timeout: float) -> None:
        """Shutting down, once every client has been told to go: cut off each connection whose
        closing handshake has not begun (nobody will end it), give those under way the time they
        have left of CLOSE_TIMEOUT (so that a client reads its goodbye), and wait at most
        `timeout` for the owners to have handled every end (what a disconnect does in the hub)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for link in self:
            if not link.closed:
                link.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout, frames.CLOSE_TIMEOUT)):
                await self.gone()
        for link in self:
            link.abort()  # a closing handshake past its time, whatever kept it open
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self.gone()


class LinkOwner(Protocol):
    """Whom a WebSocketLink hands its messages to: an engine.io session (DirectSocket) or an Ant
    Media connection (signaling.transports.antmedia.AntMediaPeer)."""

    @property
    def label(self) -> str: ...  # who it is, for log lines: "eio_sid=...", "peer=..."

    async def link_message(self, link: WebSocketLink, data: str | bytes) -> None: ...

    async def link_ended(self, link: WebSocketLink) -> None: ...


class WebSocketLink(asyncio.Protocol):
    """One WebSocket, once its handshake is answered: the connection's protocol, reading frames as
    they arrive (RFC 6455: fragments, control frames, the closing handshake, message size, UTF-8)
    and handing each message to its owner.

    In aiohttp, a WebSocket is a request that never ends: its request, headers, handler tasks and
    a dozen suspended coroutine frames (aiohttp's, the middleware's, engine.io's) are held for the
    connection's life, ~8 KB a connection. A link holds a transport, the bytes of a frame not yet
    whole, and a task only while messages are being handled: one at a time, in order, in the
    context (client address) of the request that opened it.
    """

    __slots__ = (
        "_context",
        "_fragment_op",
        "_fragments",
        "_inbox",
        "_inbox_bytes",
        "_links",
        "_max_size",
        "_need",
        "_owner",
        "_paused",
        "_pending",
        "_skip",
        "_task",
        "_timer",
        "close_code",
        "closed",
        "transport",
    )

    def __init__(
        self, owner: LinkOwner, transport: asyncio.Transport | None, links: Links, max_size: int
    ) -> None:
        self._owner: LinkOwner | None = owner  # until the end is handed to it
        self.transport: asyncio.Transport | None = transport
        self._links = links
        self._max_size = max_size  # bytes of a message, past which the connection is closed (1009)
        self._context = contextvars.copy_context()
        self._pending: bytearray | None = None  # the start of a frame not yet whole
        self._need = 0  # bytes of _pending needed before parsing it again
        self._skip = 0  # bytes still to skip of a message too large to read
        self._fragments: list[bytes | bytearray] | None = None  # of a fragmented message
        self._fragment_op = 0
        self._inbox: list[Any] | None = None  # messages (str or bytes), then _END
        self._inbox_bytes = 0
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False  # the closing handshake has begun, or the connection is gone
        # The code of the close frame that began the closing handshake, whichever side sent it
        # (1005: the client's had none); None while there was none (1006 once gone).
        self.close_code: int | None = None

    @classmethod
    def take_over(cls, request: web.Request, owner: LinkOwner, links: Links, max_size: int) -> WebSocketLink:
        """Answer `request`'s (checked: `check_handshake`) handshake and become its connection's
        protocol; aiohttp is left as if the connection were lost, so that its request handling
        ends when this request returns, writing and closing nothing (see `Detached`). A connection
        already gone ends the link at once: its owner hears of it as of any other end."""
        protocol = request.protocol
        transport = request.transport
        key = request.headers["Sec-WebSocket-Key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        link = cls(owner, transport, links, max_size)
        if transport is None or transport.is_closing():
            links.add(link)
            link.connection_lost(None)
            return link
        current = transport.get_protocol()
        if current is protocol:
            transport.set_protocol(link)
        else:  # a wrapper of ours around aiohttp's protocol (signaling.operations.listener)
            hand_over: Callable[[asyncio.Protocol], None] = current.hand_over  # type: ignore[attr-defined]
            hand_over(link)
        links.add(link)
        # What the client sent after its request head, which aiohttp keeps for whoever reads the
        # upgraded connection.
        tail = protocol._message_tail
        protocol._message_tail = b""
        protocol.transport = None  # aiohttp can no longer write to the connection, nor close it
        protocol.connection_lost(None)
        transport.write(_SWITCHING % accept)
        transport.resume_reading()  # aiohttp pauses a connection whose upgraded tail grows long
        if tail:
            link.data_received(tail)
        return link

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self._skip:  # the rest of a message too large to read
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        pending = self._pending
        if pending is not None:
            pending += data
            if len(pending) < self._need:
                return
            self._pending = None
            buffer: bytes | bytearray = pending
        else:
            buffer = data
        size = len(buffer)
        at = 0
        need = 2  # bytes from `at` needed to go on
        while size - at >= 2:
            need = 2
            first, second = buffer[at], buffer[at + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                head = 4
            elif length == 127:
                head = 10
            if second & 0x80:
                head += 4
            if size - at < head:
                need = head
                break
            if length == 126:
                length = int.from_bytes(buffer[at + 2 : at + 4], "big")
            elif length == 127:
                length = int.from_bytes(buffer[at + 2 : at + 10], "big")
            opcode = first & 0x0F
            if opcode >= _OP_CLOSE:
                if length > 125 or not first & 0x80:
                    self._fail(WSCloseCode.PROTOCOL_ERROR)
                    return
            elif length + (self._fragment_size() if opcode == _OP_CONTINUATION else 0) > self._max_size:
                # Not read: the client is told why it is closed, and what it sends until it has
                # answered that is skipped (closing a connection with unread bytes resets it).
                self._fragments = None
                self.close(WSCloseCode.MESSAGE_TOO_BIG)
                if size - at < head + length:
                    self._skip = head + length - (size - at)
                    at = size
                    break
                at += head + length
                continue
            if size - at < head + length:
                need = head + length
                break
            payload = bytearray(buffer[at + head : at + head + length])
            if second & 0x80:
                websocket_mask(bytes(buffer[at + head - 4 : at + head]), payload)
            at += head + length
            if not self._frame(first, opcode, payload):
                return
        if at < size:
            self._pending = bytearray(buffer[at:]) if at or isinstance(buffer, bytes) else buffer
            self._need = need

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself, and connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.closed = True
        self._pending = self._fragments = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deliver(_END)

    def pause_writing(self) -> None:
        pass  # writers never wait: FrameWriter caps what a client leaves unread instead

    def resume_writing(self) -> None:
        pass

    # Frames

    def _fragment_size(self) -> int:
        return sum(map(len, self._fragments)) if self._fragments is not None else 0

    def _frame(self, first: int, opcode: int, payload: bytearray) -> bool:
        """Handle one whole frame; False once the connection is failed or closing for good."""
        if first & 0x70:  # reserved bits, and no extension was negotiated
            self._fail(WSCloseCode.PROTOCOL_ERROR)
            return False
        fin = first & 0x80
        if opcode == _OP_PING:
            self._write(frames.frame(bytes(payload), frames.FIN_PONG))
            return True
        if opcode == _OP_PONG:
            return True
        if opcode == _OP_CLOSE:
            self._close_received(payload)
            return False
        if opcode == _OP_CONTINUATION:
            if self._fragments is None:
                self._fail(WSCloseCode.PROTOCOL_ERROR)
                return False
            self._fragments.append(payload)
            if not fin:
                return True
            opcode, data = self._fragment_op, bytearray().join(self._fragments)
            self._fragments = None
        elif opcode in (_OP_TEXT, _OP_BINARY):
            if self._fragments is not None:
                self._fail(WSCloseCode.PROTOCOL_ERROR)
                return False
            if not fin:
                self._fragments, self._fragment_op = [payload], opcode
                return True
            data = payload
        else:
            self._fail(WSCloseCode.PROTOCOL_ERROR)
            return False
        if self.closed:
            return True  # closing: messages are read until the client's close, not handled
        if opcode == _OP_TEXT:
            try:
                self._deliver(data.decode())
            except UnicodeDecodeError:
                self.close(WSCloseCode.INVALID_TEXT)
        else:
            self._deliver(bytes(data))
        return True

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def close(self, code: int = WSCloseCode.OK, reason: bytes = b"") -> None:
        """Begin the closing handshake: a client that has not answered within CLOSE_TIMEOUT (or
        does not read what it is sent) is cut off."""
        if self.closed:
            return
        self.closed, self.close_code = True, code
        self._write(frames.frame(_CLOSE_CODE.pack(code) + reason[:123], frames.FIN_CLOSE))
        self._arm(frames.CLOSE_TIMEOUT, self.abort)

    def _close_received(self, payload: bytearray) -> None:
        if not self.closed:
            self.closed = True
            self.close_code = _CLOSE_CODE.unpack_from(payload)[0] if len(payload) >= 2 else 1005
            self._write(frames.frame(_CLOSE_CODE.pack(WSCloseCode.OK), frames.FIN_CLOSE))
        self._hang_up()

    def _fail(self, code: int) -> None:
        """A frame this server does not take: the close frame says why, and the connection ends."""
        log.debug("%s broke the WebSocket protocol (%d); closing", self._label(), code)
        if not self.closed:
            self.closed, self.close_code = True, code
            self._write(frames.frame(_CLOSE_CODE.pack(code), frames.FIN_CLOSE))
        self._hang_up()

    def _hang_up(self) -> None:
        """Close the connection after what was written, within CLOSE_TIMEOUT."""
        self._pending = self._fragments = None
        transport = self.transport
        if transport is not None:
            transport.close()
            self._arm(frames.CLOSE_TIMEOUT, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def expect_upgrade(self, timeout: float, late: Callable[[], None]) -> None:
        """Call `late` unless `upgraded` is called within `timeout` (and the link has not ended).
        A link already closing keeps the timer that cuts it off instead."""
        if not self.closed:
            self._arm(timeout, partial(self._upgrade_late, late))

    def _upgrade_late(self, late: Callable[[], None]) -> None:
        self._timer = None
        if self._owner is not None:
            late()

    def upgraded(self) -> None:
        if self._timer is not None and not self.closed:
            self._timer.cancel()
            self._timer = None

    def _label(self) -> str:
        return self._owner.label if self._owner is not None else "a WebSocket that has ended"

    # Messages, handled one at a time in a task that lives only while there are some.

    def _deliver(self, item: Any) -> None:
        if self._inbox is None:
            self._inbox = [item]
        else:
            self._inbox.append(item)
        if item is not _END:
            self._inbox_bytes += len(item) + MESSAGE_OVERHEAD
            if self._inbox_bytes > INBOX_LIMIT and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._handle(), context=self._context)

    async def _handle(self) -> None:
        try:
            while (inbox := self._inbox) is not None:
                self._inbox = None
                for item in inbox:
                    await self._handle_one(item)
        finally:
            self._task = None

    async def _handle_one(self, item: Any) -> None:
        owner = self._owner
        if owner is None:
            return
        if item is _END:
            self._owner = None
            try:
                await owner.link_ended(self)
            except Exception:
                log.exception("%s closing failed", owner.label)
            finally:
                self._links.discard(self)
            return
        self._inbox_bytes -= len(item) + MESSAGE_OVERHEAD
        if self._paused and self._inbox_bytes <= INBOX_LIMIT // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        try:
            # What arrived before the closing handshake began is handled (unless the session
            # ended meanwhile: the session knows), in order.
            await owner.link_message(self, item)
        except Exception:
            log.exception("%s message failed", owner.label)

    def send_text(self, text: str) -> None:
        self._write(frames.frame(text.encode()))


# A ping may be sent this much after its interval, at most (less for intervals under 2.5 s).
PING_LATENESS = 0.05


class Pinger:
    """Sends engine.io's pings for every session of a server, one timer per tick in which pings
    fall due. engine.io starts a task per session that sleeps for the ping interval: an idle
    connection then costs a task, its coroutine, a future and a timer (~1.5 KB), all the time.

    A ping goes out at most a tick late, the same way engine.io's does (what `last_ping` records is
    when it was sent), so dead peers are detected after the same ping timeout.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.tick = min(PING_LATENESS, interval / 50)
        self._due: dict[int, list[DirectSocket]] = {}  # tick number -> sessions to ping then
        self._sending: set[asyncio.Task[None]] = set()

    def schedule(self, socket: DirectSocket) -> None:
        loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + self.interval) / self.tick)
        sockets = self._due.get(tick)
        if sockets is None:
            sockets = self._due[tick] = []
            loop.call_at(tick * self.tick, self._fire, tick)
        sockets.append(socket)

    def _fire(self, tick: int) -> None:
        task = asyncio.get_running_loop().create_task(self._ping(self._due.pop(tick)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    @staticmethod
    async def _ping(sockets: list[DirectSocket]) -> None:
        for socket in sockets:
            try:
                await socket.ping()
            except Exception:  # one session's failure must not cost the others their pings
                log.exception("eio_sid=%s ping failed", socket.sid)


class DirectSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    """An engine.io session; `adopt` turns the sessions engine.io creates into this class."""

    connected: bool  # engine.io's own state, declared for the type checker
    upgrading: bool
    # engine.io's queue of packets for a long-polling client; None once the session is on a
    # WebSocket, which never uses it (an asyncio.Queue holds four deques: ~3 KB per connection).
    queue: asyncio.Queue[packet.Packet | None] | None
    last_ping: float | None  # engine.io's: when the unanswered ping went out, None if answered
    max_unread: int  # bytes; set by `adopt`
    pinger: Pinger  # set by `adopt`
    links: Links  # the server's, set by `adopt`
    # Per-session state beyond engine.io's, all with class-level defaults: no constructor needed.
    _writer: FrameWriter | None = None
    _link: WebSocketLink | None = None  # the session's WebSocket, once it is on one
    _upgrade: WebSocketLink | None = None  # the WebSocket a long-polling session upgrades to
    _probed = False  # that WebSocket has sent its probe
    _queued: int = 0  # characters waiting in engine.io's queue for a long-polling client
    _cutting: asyncio.Task[Any] | None = None
    _polling: bool = False  # a long-poll is waiting on the queue

    @classmethod
    def adopt(
        cls, socket: async_socket.AsyncSocket, max_unread: int, pinger: Pinger, links: Links
    ) -> DirectSocket:
        # engine.io constructs its sockets itself, with no hook for a subclass. This subclass has
        # no constructor of its own (its extra fields default at class level), so switching the
        # class of a session right after engine.io created it is safe. engine.io schedules the
        # first ping after this, once the application accepted the connection.
        socket.__class__ = cls
        socket.max_unread = max_unread
        socket.pinger = pinger
        socket.links = links
        return cast(DirectSocket, socket)

    def schedule_ping(self) -> None:
        # engine.io's, but on the shared pinger: called at connect and on every pong, it
        # schedules a ping only if the last one was answered (or none was sent yet).
        if self.last_ping:
            self.last_ping = None
            self.pinger.schedule(self)

    async def ping(self) -> None:
        """What engine.io's ping task does once its interval is over."""
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            await self.send(packet.Packet(packet.PING))

    async def send(self, pkt: packet.Packet) -> None:
        writer = self._writer
        if self.closed:
            return  # nobody will read it; queueing it would only hold memory
        if writer is None:
            if self.queue is None:
                return  # its WebSocket is gone: nobody will read it
            # Long-polling, or the WebSocket is not ready yet: engine.io's queue, drained by polls.
            self._queued += len(pkt.data) if isinstance(pkt.data, str | bytes) else 0
            if self._queued > self.max_unread:
                self.cut_off(f"more than {self.max_unread} bytes unpolled")
                return
            await super().send(pkt)
        elif await self.check_ping_timeout():
            self._write_packet(writer, pkt)

    async def send_message(self, data: bytes) -> None:
        """Send one engine.io MESSAGE (`data`: UTF-8 text); on a WebSocket without building
        packet objects or strings."""
        writer = self._writer
        if self.closed:
            return
        if writer is None:
            await self.send(packet.Packet(packet.MESSAGE, data=data.decode()))
        else:
            writer.write(b"4" + data)

    async def poll(self) -> list[packet.Packet]:
        self._polling = True
        try:
            packets: list[packet.Packet] = await super().poll()
        finally:
            self._polling = False
        self._queued = 0  # poll() took everything queued
        if self._writer is not None:
            self.queue = None  # the poll that was waiting when the session upgraded
        return packets

    def cut_off(self, why: str) -> None:
        """Drop this client at once, without a goodbye (it would not read one anyway); its
        disconnect runs in the background, so that whoever found it unfit never waits for it."""
        if self._cutting is not None or self.closing or self.closed:
            return
        log.warning("eio_sid=%s dropped: %s", self.sid, why)
        if self._writer is not None:
            self._writer.abort()
        closing = self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
        self._cutting = asyncio.get_running_loop().create_task(closing)
        if self._writer is None and self.queue is not None:
            self.queue.put_nowait(None)  # answers a pending long-poll now, not at its timeout

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        """A long-polling POST. One larger than MAX_MESSAGE_BYTES, or one that does not decode
        (engine.io takes at most 16 packets per POST), ends the session here and now: engine.io
        would close it waiting for a poll that such a client never makes, or log a traceback."""
        limit = self.server.max_http_buffer_size
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > limit:
            await self._refuse_post(f"long-polling POST larger than {limit} bytes")
            return
        try:
            # readexactly: a body may arrive in several pieces, and read() returns the first.
            body = (await environ["wsgi.input"].readexactly(length)).decode()
            packets = payload.Payload(encoded_payload=body).packets
        except Exception as exc:  # the decoder raises whatever the input provokes
            await self._refuse_post(f"long-polling POST that does not decode ({brief(exc)})")
            return
        for pkt in packets:
            if self.closed:
                break  # cut off: the rest of what it sent is not handled
            await self.receive(pkt)

    async def _refuse_post(self, why: str) -> None:
        log.warning("eio_sid=%s dropped: %s", self.sid, why)
        forgotten = self.sid not in self.server.sockets  # closed meanwhile, while the body came
        # engine.io's own close, which leaves the session in engine.io's table: engine.io then
        # forgets it and answers 400, for a session still in its table only (else it fails).
        await super().close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
        if not forgotten:
            raise exceptions.EngineIOError(why)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        # engine.io's close(wait=True) waits until a long-polling client has polled what is
        # queued, for ever if it never polls again: the wait is bounded here.
        await super().close(wait=False, abort=abort, reason=reason)
        if self.closed:
            # engine.io forgets a closed session only when its next request comes, and a POST
            # then fails with a traceback: it is forgotten now, and that request gets a 400.
            self.server.sockets.pop(self.sid, None)
        if wait and self._writer is None and self.queue is not None:
            self.queue.put_nowait(None)  # answers a pending poll now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(frames.CLOSE_TIMEOUT):
                    await self.queue.join()
        link = self._link
        if self.closed and link is not None:
            link.close()

    async def _websocket_handler(self, ws: DirectWebSocket) -> None:
        if self.connected:  # a long-polling session upgrading
            if self.upgrading:
                return  # a second concurrent upgrade: refused
            self.upgrading = True
            link = self._upgrade = ws.accept(self)
            link.expect_upgrade(self.server.ping_timeout, partial(self._upgrade_failed, link, late=True))
            return
        self._attach(ws.accept(self))

    def _attach(self, link: WebSocketLink) -> None:
        self.connected = True
        self.upgraded = True
        self._link = link
        self._writer = FrameWriter(link, link.transport, self.max_unread, self.label)
        self._flush_queue()

    @property
    def label(self) -> str:
        return f"eio_sid={self.sid}"

    async def link_message(self, link: WebSocketLink, data: str | bytes) -> None:
        """One message from the session's WebSocket (by WebSocketLink, one at a time, in order)."""
        if link is not self._link:
            await self._upgrade_step(link, data)
            return
        if self.closed:
            return
        if isinstance(data, str) and data[:1] == "4":
            # A MESSAGE, nearly all a client sends: straight to python-socketio's handler.
            try:
                await self.server.handlers["message"](self.sid, data[1:])
            except Exception:
                log.exception("eio_sid=%s message handler failed", self.sid)
            return
        try:
            pkt = packet.Packet(encoded_packet=data)
        except Exception:  # the decoder raises whatever the input provokes
            log.warning("eio_sid=%s sent a malformed engine.io packet; closing", self.sid)
            await self._websocket_closed()
            return
        if not 0 <= pkt.packet_type < len(packet.packet_names):
            return  # engine.io's receive() would fail logging its name; unknown: ignored
        try:
            await self.receive(pkt)
        except exceptions.UnknownPacketError:
            pass  # ignored, as engine.io does
        except exceptions.SocketIsClosedError:
            await self._websocket_closed()
        except Exception:
            log.exception("eio_sid=%s engine.io packet failed", self.sid)

    async def _websocket_closed(self) -> None:
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    async def link_ended(self, link: WebSocketLink) -> None:
        """The connection of `link` is gone (its last message was handled before this)."""
        if link is self._upgrade:  # an upgrade that did not finish
            self._upgrade, self._probed, self.upgrading = None, False, False
        if link is not self._link:
            return
        await self._websocket_closed()
        # engine.io's handlers may hold this session a while yet: let go of the connection now.
        self._link = self._writer = None

    async def _upgrade_step(self, link: WebSocketLink, data: str | bytes) -> None:
        """The polling-to-WebSocket upgrade: "2probe", "3probe", then UPGRADE ("5"), within the
        ping timeout (meanwhile packets wait in the queue, capped, and are flushed once upgraded)."""
        if link is not self._upgrade:
            return  # failed already
        if not self._probed:
            if data != "2probe":
                self._upgrade_failed(link)
                return
            self._probed = True
            link.send_text(packet.Packet(packet.PONG, data="probe").encode())
            assert self.queue is not None  # dropped only once upgraded
            await self.queue.put(packet.Packet(packet.NOOP))  # ends the pending long-poll
            return
        if data != "5":
            self._upgrade_failed(link)
            return
        link.upgraded()
        self._upgrade, self._probed, self.upgrading = None, False, False
        if self.closed:  # timed out (or was closed) while upgrading
            link.close()
            return
        self._attach(link)

    def _upgrade_failed(self, link: WebSocketLink, late: bool = False) -> None:
        if link is not self._upgrade:
            return
        if late:
            log.warning("eio_sid=%s did not finish its upgrade to WebSocket in time", self.sid)
        self._upgrade, self._probed, self.upgrading = None, False, False
        link.close()

    def _flush_queue(self) -> None:
        """Write what was queued before the WebSocket was ready, then drop the queue: from now on
        every packet is written on the spot (a long-poll still waiting on it drops it when done)."""
        queue = self.queue
        assert self._writer is not None and queue is not None
        while not queue.empty():
            pkt = queue.get_nowait()
            queue.task_done()
            if pkt is not None:
                self._write_packet(self._writer, pkt)
        if not self._polling:
            self.queue = None

    @staticmethod
    def _write_packet(writer: FrameWriter, pkt: packet.Packet) -> None:
        encoded = pkt.encode()  # str, or bytes for a binary MESSAGE
        writer.write(encoded, binary=isinstance(encoded, bytes))


# An EVENT packet for the default namespace: type 2, an optional ack id, then the JSON array.
_EVENT_HEAD = re.compile(r"2(\d{0,18})\[")

Reply = dict[str, Any]
Dispatch = Callable[[str, list[Any]], Awaitable[Reply]]


class SignalingServer(socketio.AsyncServer):  # type: ignore[misc]
    """An AsyncServer that decodes client packets itself and hands every event, with its raw
    arguments, to one dispatcher.

    python-socketio's handler lookup gives a handler no way to know whether the client asked for
    an ack, routes a client-sent event named "disconnect" to the disconnect handler, buffers binary
    attachments without limit, and logs a traceback for a packet that does not decode. We need
    errors in the ack when there is one (in an `error` event otherwise), must forbid the spoofed
    disconnect, refuse binary without buffering it, and answer garbage with one warning line.
    Handling each event before reading the next one from that client keeps its messages in order.
    """

    def __init__(self, *, max_unread: int, dispatch: Dispatch | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # engine.io's sessions become DirectSockets (see _handle_eio_connect), served by this driver.
        self.eio._async = {**self.eio._async, "websocket": DirectWebSocket}
        self.dispatch = dispatch
        # Told of packets refused before dispatch (garbage, binary), so that they count as well.
        self.on_bad_packet: Callable[[str], None] | None = None
        # Told when a client has been sent its CONNECT (what it is sent next comes after it).
        self.on_connected: Callable[[str], Awaitable[None]] | None = None
        # sid -> what to do once the reply to its current event is sent (it then follows the ack).
        self.after_reply: dict[str, Callable[[], Awaitable[None]]] = {}
        self.max_unread = max_unread
        self.pinger = Pinger(self.eio.ping_interval)
        self.links = Links()  # every session's WebSocket, until its end is handled
        self._discarding: dict[str, int] = {}  # eio_sid -> binary attachments still to drop
        self._addresses: dict[str, str] = {}  # eio_sid -> client address holding a slot
        # eio_sid -> its rate buckets: per engine.io session, so that a client that connects its
        # namespace again (and again) on one session keeps its rates and strikes.
        self._limiters: dict[str, ConnectionLimiter] = {}
        self.guard: Guard | None = None

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if not isinstance(data, str):
            self._discard_attachment(eio_sid)
            return
        head = _EVENT_HEAD.match(data)
        if head is not None:
            # Nearly every packet: an EVENT on the default namespace, with or without an ack id.
            # Decoded here without the packet object (its decoder copies the payload while
            # looking for a binary attachment count); other packets take the general path.
            ack = int(head.group(1)) if head.group(1) else None
            try:
                arguments = fastjson.loads(data[head.end() - 1 :])
            except Exception as exc:  # the decoder raises whatever the input provokes
                # JSON this server does not read: answered when it asked for an answer.
                log.warning("eio_sid=%s refused an event that is not JSON it reads: %s", eio_sid, brief(exc))
                await self._refuse(
                    eio_sid, "/", ack, "the event is not JSON this server reads (no NaN, no lone surrogate)"
                )
                return
            await self._handle_event(eio_sid, "/", ack, arguments)
            return
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception as exc:  # the decoder raises whatever the input provokes
            log.warning("eio_sid=%s dropped malformed socket.io packet: %s", eio_sid, brief(exc))
            self._bad_packet(eio_sid)
            return
        match pkt.packet_type:
            case sio_packet.EVENT:
                await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
            case sio_packet.ACK:
                await self._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
            case sio_packet.CONNECT:
                await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
                sid = self.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/")
                connected = sid is not None and self.manager.is_connected(sid, pkt.namespace or "/")
                if connected and self.on_connected is not None:
                    await self.on_connected(sid)
            case sio_packet.DISCONNECT:
                await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
            case sio_packet.BINARY_EVENT | sio_packet.BINARY_ACK:
                await self._refuse_binary(eio_sid, pkt)
            case _:
                log.warning("eio_sid=%s dropped socket.io packet of type %s", eio_sid, pkt.packet_type)

    def _bad_packet(self, eio_sid: str) -> None:
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None and self.on_bad_packet is not None:
            self.on_bad_packet(sid)

    async def _refuse_binary(self, eio_sid: str, pkt: Any) -> None:
        # Signaling is JSON; the attachments that follow are dropped as they arrive, never buffered.
        if pkt.attachment_count:
            self._discarding[eio_sid] = pkt.attachment_count
        if pkt.packet_type != sio_packet.BINARY_EVENT:
            self._bad_packet(eio_sid)
            return
        event = (
            pkt.data[0]
            if isinstance(pkt.data, list) and pkt.data and isinstance(pkt.data[0], str)
            else "event"
        )
        log.warning("eio_sid=%s refused binary %s", eio_sid, event[:64])
        await self._refuse(
            eio_sid, pkt.namespace or "/", pkt.id, f"{event[:64]} payload must be JSON, not binary"
        )

    async def _refuse(self, eio_sid: str, namespace: str, id: int | None, why: str) -> None:
        """An event refused before dispatch: counted as a strike, and answered invalid_payload
        (in its ack when it asked for one, else as an error event)."""
        self._bad_packet(eio_sid)
        refusal = SignalingError(ErrorCode.INVALID_PAYLOAD, why)
        await self._reply(eio_sid, namespace, id, {"ok": False, "error": refusal.to_dict()})

    def _discard_attachment(self, eio_sid: str) -> None:
        remaining = self._discarding.get(eio_sid, 0)
        if remaining > 1:
            self._discarding[eio_sid] = remaining - 1
        else:
            self._discarding.pop(eio_sid, None)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        DirectSocket.adopt(self.eio.sockets[eio_sid], self.max_unread, self.pinger, self.links)
        # Connection slots are counted per engine.io session, so that sessions that never
        # connect to a namespace count as well; a refusal is engine.io's 401 with our error.
        request = environ.get("aiohttp.request")
        address = (request.remote if request is not None else None) or "unknown"
        if self.guard is not None:
            try:
                self.guard.reserve(address, "socketio")
            except SignalingError as error:
                log.warning(
                    "eio_sid=%s from %s refused: %s",
                    eio_sid,
                    address,
                    error.message,
                    extra={"code": error.code},
                )
                return error.to_dict()
            self._addresses[eio_sid] = address
            self._limiters[eio_sid] = self.guard.limiter()
        # python-socketio keeps the environ for the session's life, to hand it to each namespace
        # connect: only what our connect handler reads, not every header and the first request.
        return await super()._handle_eio_connect(eio_sid, {"REMOTE_ADDR": address})

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self._discarding.pop(eio_sid, None)
        self._limiters.pop(eio_sid, None)
        address = self._addresses.pop(eio_sid, None)
        if address is not None and self.guard is not None:
            self.guard.release(address)
        await super()._handle_eio_disconnect(eio_sid, reason)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace) or self.dispatch is None:
            return
        reply = await self.dispatch(sid, data if isinstance(data, list) else [data])
        if id is not None or not reply["ok"]:
            await self._reply(eio_sid, namespace, id, reply)
        follow_up = self.after_reply.pop(sid, None) if self.after_reply else None
        if follow_up is not None:
            await follow_up()

    async def _reply(self, eio_sid: str, namespace: str, id: int | None, reply: Reply) -> None:
        if id is not None:
            await self._send_packet(
                eio_sid, self.packet_class(sio_packet.ACK, namespace=namespace, id=id, data=[reply])
            )
        elif not reply["ok"]:
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is not None:
                await self.emit("error", reply["error"], to=sid, namespace=namespace)

    def limiter(self, sid: str) -> ConnectionLimiter | None:
        """The rate buckets of the engine.io session under a socket.io connection."""
        return self._limiters.get(self.manager.eio_sid_from_sid(sid, "/"))

    def start_service(self) -> None:
        """Start engine.io's service task (ping timeouts) now, from the app's start-up: started
        by the first request, it would run in that request's context and log on its behalf."""
        if self.eio.start_service_task:
            self.eio.start_service_task = False
            self.eio.service_task_handle = self.eio.start_background_task(self.eio._service_task)

    def session(self, sid: str) -> DirectSocket | None:
        """The engine.io session under a socket.io connection, while it lasts."""
        socket = self.eio.sockets.get(self.manager.eio_sid_from_sid(sid, "/"))
        return socket if isinstance(socket, DirectSocket) else None

    def drop(self, sid: str, why: str) -> None:
        """Cut a client off at once (see DirectSocket.cut_off); nobody waits for it."""
        socket = self.session(sid)
        if socket is not None:
            socket.cut_off(why)


# What this module relies on beyond the libraries' public API: (owner, name, the parameters it
# is called or overridden with, or None for an attribute of instances).
RELIES_ON: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("socketio.AsyncServer", "_handle_eio_message", ("self", "eio_sid", "data")),
    ("socketio.AsyncServer", "_handle_event", ("self", "eio_sid", "namespace", "id", "data")),
    ("socketio.AsyncServer", "_handle_ack", ("self", "eio_sid", "namespace", "id", "data")),
    ("socketio.AsyncServer", "_handle_connect", ("self", "eio_sid", "namespace", "data")),
    ("socketio.AsyncServer", "_handle_disconnect", ("self", "eio_sid", "namespace", "reason")),
    ("socketio.AsyncServer", "_handle_eio_connect", ("self", "eio_sid", "environ")),
    ("socketio.AsyncServer", "_handle_eio_disconnect", ("self", "eio_sid", "reason")),
    ("socketio.AsyncServer", "_send_packet", ("self", "eio_sid", "pkt")),
    ("socketio.AsyncServer", "packet_class", None),
    ("socketio.AsyncServer", "eio", None),
    ("socketio.AsyncServer", "manager", None),
    ("socketio.async_manager.AsyncManager", "sid_from_eio_sid", ("self", "eio_sid", "namespace")),
    ("socketio.async_manager.AsyncManager", "eio_sid_from_sid", ("self", "sid", "namespace")),
    ("socketio.async_manager.AsyncManager", "is_connected", ("self", "sid", "namespace")),
    ("engineio.AsyncServer", "_async", None),
    ("engineio.AsyncServer", "sockets", None),
    ("engineio.AsyncServer", "handlers", None),
    ("engineio.AsyncServer", "max_http_buffer_size", None),
    ("engineio.AsyncServer", "ping_interval", None),
    ("engineio.AsyncServer", "ping_timeout", None),
    ("engineio.AsyncServer", "start_service_task", None),
    ("engineio.AsyncServer", "service_task_handle", None),
    ("engineio.AsyncServer", "_service_task", ("self",)),
    ("engineio.async_socket.AsyncSocket", "send", ("self", "pkt")),
    ("engineio.async_socket.AsyncSocket", "poll", ("self",)),
    ("engineio.async_socket.AsyncSocket", "close", ("self", "wait", "abort", "reason")),
    ("engineio.async_socket.AsyncSocket", "receive", ("self", "pkt")),
    ("engineio.async_socket.AsyncSocket", "check_ping_timeout", ("self",)),
    ("engineio.async_socket.AsyncSocket", "schedule_ping", ("self",)),
    ("engineio.async_socket.AsyncSocket", "handle_post_request", ("self", "environ")),
    ("engineio.async_socket.AsyncSocket", "_websocket_handler", ("self", "ws")),
    ("engineio.async_socket.AsyncSocket", "queue", None),
    ("engineio.async_socket.AsyncSocket", "last_ping", None),
    ("engineio.async_socket.AsyncSocket", "connected", None),
    ("engineio.async_socket.AsyncSocket", "upgraded", None),
    ("engineio.async_socket.AsyncSocket", "upgrading", None),
    ("engineio.async_socket.AsyncSocket", "closed", None),
    ("engineio.async_socket.AsyncSocket", "closing", None),
    ("engineio.payload.Payload", "__init__", ("self", "packets", "encoded_payload")),
    ("engineio.packet.Packet", "__init__", ("self", "packet_type", "data", "encoded_packet")),
    ("aiohttp.web_protocol.RequestHandler", "_message_tail", None),
    ("aiohttp.web_protocol.RequestHandler", "transport", None),
    ("aiohttp.web_protocol.RequestHandler", "connection_lost", ("self", "exc")),
    ("aiohttp._websocket.helpers", "websocket_mask", None),
)
