"""engine.io sessions whose WebSocket packets are written straight to the connection.

python-engineio's WebSocket loop costs more CPU per message than the relaying itself: it wraps
every read in a new task plus `wait_for`, and every write goes through a per-connection queue to a
writer task. `DirectSocket` keeps engine.io's handshake, pings and close semantics, but reads
frames in one loop and writes each packet to the transport on the spot, in the order `send` is
called (see signaling.transports.frames for the cap on what a client leaves unread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, NoReturn, cast

from aiohttp import WSMsgType, web
from engineio import async_socket, exceptions, packet, payload

from signaling.operations.logs import brief
from signaling.transports.frames import CLOSE_TIMEOUT, FrameWriter, close_websocket

log = logging.getLogger(__name__)


class DirectWebSocket:
    """engine.io's aiohttp WebSocket driver, minus per-frame deflate: signaling messages are small
    and deflating each one costs more CPU than the bytes it saves (the stock driver has no switch)."""

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server
        self.response: web.WebSocketResponse | None = None
        self.request: web.Request | None = None

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        self.request = environ["aiohttp.request"]
        self.response = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await self.response.prepare(self.request)
        await self.handler(self)
        return self.response


class DirectSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    """An engine.io session; `adopt` turns the sessions engine.io creates into this class."""

    connected: bool  # engine.io's own state, declared for the type checker
    max_unread: int  # bytes; set by `adopt`
    # Per-session state beyond engine.io's, all with class-level defaults: no constructor needed.
    _writer: FrameWriter | None = None
    _response: web.WebSocketResponse | None = None
    _closer: asyncio.Task[Any] | None = None
    _queued: int = 0  # characters waiting in engine.io's queue for a long-polling client
    _cutting: asyncio.Task[Any] | None = None

    @classmethod
    def adopt(cls, socket: async_socket.AsyncSocket, max_unread: int) -> DirectSocket:
        # engine.io constructs its sockets itself, with no hook for a subclass. This subclass has
        # no constructor of its own (its extra fields default at class level), so switching the
        # class of a session right after engine.io created it is safe.
        socket.__class__ = cls
        socket.max_unread = max_unread
        return cast(DirectSocket, socket)

    async def send(self, pkt: packet.Packet) -> None:
        writer = self._writer
        if self.closed:
            return  # nobody will read it; queueing it would only hold memory
        if writer is None:
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
        packets: list[packet.Packet] = await super().poll()
        self._queued = 0  # poll() took everything queued
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
        if self._writer is None:
            self.queue.put_nowait(None)  # answers a pending long-poll now, not at its timeout

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        """A long-polling POST. One larger than MAX_MESSAGE_BYTES, or one that does not decode
        (engine.io takes at most 16 packets per POST), ends the session here and now: engine.io
        would close it waiting for a poll that such a client never makes, or log a traceback."""
        if self.closed:
            return  # a POST that raced its session's end: nothing to hand over
        limit = self.server.max_http_buffer_size
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > limit:
            await self._refuse_post(f"long-polling POST larger than {limit} bytes")
        try:
            body = (await environ["wsgi.input"].read(length)).decode()
            packets = payload.Payload(encoded_payload=body).packets
        except Exception as exc:  # the decoder raises whatever the input provokes
            await self._refuse_post(f"long-polling POST that does not decode ({brief(exc)})")
        for pkt in packets:
            await self.receive(pkt)

    async def _refuse_post(self, why: str) -> NoReturn:
        log.warning("eio_sid=%s dropped: %s", self.sid, why)
        # engine.io's own close, which leaves the session in engine.io's table: the 400 that
        # engine.io answers with is given only for a session still there.
        await super().close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
        raise exceptions.EngineIOError(why)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        # engine.io's close(wait=True) waits until a long-polling client has polled what is
        # queued, for ever if it never polls again: the wait is bounded here.
        await super().close(wait=False, abort=abort, reason=reason)
        if wait and self._writer is None:
            self.queue.put_nowait(None)  # answers a pending poll now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.queue.join()
        if self.closed:
            # engine.io forgets a closed session only when its next request comes, and a POST
            # then fails with a traceback: it is forgotten now, and that request gets a 400.
            self.server.sockets.pop(self.sid, None)
        response, writer = self._response, self._writer
        if self.closed and response is not None and not response.closed and self._closer is None:
            # In the background: close() may be called while handling another client's message.
            transport = writer.transport if writer is not None else None
            self._closer = asyncio.get_running_loop().create_task(close_websocket(response, transport))

    async def _websocket_handler(self, ws: DirectWebSocket) -> None:
        response, request = ws.response, ws.request
        assert response is not None and request is not None
        if self.connected:  # a long-polling session upgrading
            if self.upgrading or not await self._finish_upgrade(response):
                return  # a second concurrent upgrade, or one that failed
            if self.closed:  # timed out (or was closed) while upgrading
                await close_websocket(response, request.transport)
                return
        self.connected = True
        self.upgraded = True
        self._response = response
        self._writer = FrameWriter(response, request.transport, self.max_unread, f"eio_sid={self.sid}")
        self._flush_queue()
        on_message = self.server.handlers["message"]  # python-socketio's: a coroutine, run inline
        try:
            while True:
                message = await response.receive()
                if message.type is WSMsgType.TEXT:
                    data: Any = message.data
                    if data[:1] == "4":
                        # A MESSAGE, nearly all a client sends: straight to the application.
                        try:
                            await on_message(self.sid, data[1:])
                        except Exception:
                            log.exception("eio_sid=%s message handler failed", self.sid)
                        if self.closed:
                            break  # cut off: what it sent after that is not handled
                        continue
                elif message.type is WSMsgType.BINARY:
                    data = message.data
                else:
                    break  # closed, closing or failed
                try:
                    pkt = packet.Packet(encoded_packet=data)
                except Exception:  # the decoder raises whatever the input provokes
                    log.warning("eio_sid=%s sent a malformed engine.io packet; closing", self.sid)
                    break
                if not 0 <= pkt.packet_type < len(packet.packet_names):
                    continue  # engine.io's receive() would fail logging its name; unknown: ignored
                try:
                    await self.receive(pkt)
                except exceptions.UnknownPacketError:
                    pass  # ignored, as engine.io does
                except exceptions.SocketIsClosedError:
                    break
                except Exception:
                    log.exception("eio_sid=%s engine.io packet failed", self.sid)
        finally:
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
            # engine.io's ping task holds this session until its next ping: let go of the
            # connection now, and with it every frame read from it but not handled.
            self._response = self._writer = None
            if self._closer is not None:
                await self._closer

    async def _finish_upgrade(self, response: web.WebSocketResponse) -> bool:
        """The polling-to-WebSocket upgrade: "2probe", "3probe", then UPGRADE ("5"), within the
        ping timeout (meanwhile packets wait in the queue, capped, and are flushed once upgraded)."""
        self.upgrading = True
        try:
            async with asyncio.timeout(self.server.ping_timeout):
                probe = await response.receive()
                if probe.type is not WSMsgType.TEXT or probe.data != "2probe":
                    return False
                await response.send_str(packet.Packet(packet.PONG, data="probe").encode())
                await self.queue.put(packet.Packet(packet.NOOP))  # ends the pending long-poll
                upgrade = await response.receive()
                return upgrade.type is WSMsgType.TEXT and upgrade.data == "5"
        except TimeoutError:
            log.warning("eio_sid=%s did not finish its upgrade to WebSocket in time", self.sid)
            return False
        finally:
            self.upgrading = False

    def _flush_queue(self) -> None:
        assert self._writer is not None
        while not self.queue.empty():
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            if pkt is not None:
                self._write_packet(self._writer, pkt)

    @staticmethod
    def _write_packet(writer: FrameWriter, pkt: packet.Packet) -> None:
        encoded = pkt.encode()  # str, or bytes for a binary MESSAGE
        writer.write(encoded, binary=isinstance(encoded, bytes))
