"""Everything that reaches into python-socketio's, python-engineio's and aiohttp's internals, in one
module.

- `DirectSocket`: engine.io sessions whose WebSocket packets are written straight to the
  connection. python-engineio's WebSocket loop costs more CPU per message than the relaying
  itself: it wraps every read in a new task plus `wait_for`, and every write goes through a
  per-connection queue to a writer task. `DirectSocket` keeps engine.io's handshake, pings and
  close semantics, but reads frames in one loop and writes each packet to the transport on the
  spot, in the order `send` is called (see signaling.transports.frames for the cap on what a
  client leaves unread). It also fixes engine.io's long-polling edge cases (see its methods).
- `Pinger`: engine.io's heartbeat for all of a server's sessions, instead of a task per session.
- `SignalingServer`: python-socketio's server, decoding client packets itself and handing every
  event to one dispatcher.

`RELIES_ON` lists each private method and attribute used here; tests/test_engine_contract.py
checks them (and what is assumed of aiohttp's upgraded connections) against the installed
libraries, so an upgrade that changes one fails loudly there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import socketio
from aiohttp import WSMsgType, web
from engineio import async_socket, exceptions, packet, payload
from socketio import packet as sio_packet

from signaling.core.errors import ErrorCode, SignalingError
from signaling.operations.logs import brief
from signaling.security.guard import Guard
from signaling.security.ratelimit import ConnectionLimiter
from signaling.transports import fastjson
from signaling.transports.frames import CLOSE_TIMEOUT, FrameWriter, close_websocket

log = logging.getLogger(__name__)


class DirectWebSocket:
    """engine.io's aiohttp WebSocket driver, minus per-frame deflate: signaling messages are small
    and deflating each one costs more CPU than the bytes it saves (the stock driver has no switch)."""

    __slots__ = ("handler", "request", "response", "server")  # one per connection, for its life

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server
        self.response: web.WebSocketResponse | None = None
        self.request: web.Request | None = None

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        self.request = environ["aiohttp.request"]
        # engine.io's handler frames hold this environ (a copy of every header, ~1.1 KB) for the
        # WebSocket's life, yet read nothing more from it once they have called this driver; our
        # socket.io server keeps what it needs in its own slim environ (see _handle_eio_connect).
        environ.clear()
        self.response = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await self.response.prepare(self.request)
        # aiohttp keeps the connection's HTTP parser (llhttp's state and buffers: ~1.6 KB of RSS)
        # for the WebSocket's life, though an upgraded connection's bytes all go to the WebSocket
        # reader: it is let go now, as aiohttp itself does when the connection is lost.
        self.request.protocol._parser = None
        await self.handler(self)
        return self.response


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
    # engine.io's queue of packets for a long-polling client; None once the session is on a
    # WebSocket, which never uses it (an asyncio.Queue holds four deques: ~3 KB per connection).
    queue: asyncio.Queue[packet.Packet | None] | None
    last_ping: float | None  # engine.io's: when the unanswered ping went out, None if answered
    max_unread: int  # bytes; set by `adopt`
    pinger: Pinger  # set by `adopt`
    # Per-session state beyond engine.io's, all with class-level defaults: no constructor needed.
    _writer: FrameWriter | None = None
    _response: web.WebSocketResponse | None = None
    _closer: asyncio.Task[Any] | None = None
    _queued: int = 0  # characters waiting in engine.io's queue for a long-polling client
    _cutting: asyncio.Task[Any] | None = None
    _polling: bool = False  # a long-poll is waiting on the queue

    @classmethod
    def adopt(cls, socket: async_socket.AsyncSocket, max_unread: int, pinger: Pinger) -> DirectSocket:
        # engine.io constructs its sockets itself, with no hook for a subclass. This subclass has
        # no constructor of its own (its extra fields default at class level), so switching the
        # class of a session right after engine.io created it is safe. engine.io schedules the
        # first ping after this, once the application accepted the connection.
        socket.__class__ = cls
        socket.max_unread = max_unread
        socket.pinger = pinger
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
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.queue.join()
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
                assert self.queue is not None  # dropped only once upgraded
                await self.queue.put(packet.Packet(packet.NOOP))  # ends the pending long-poll
                upgrade = await response.receive()
                return upgrade.type is WSMsgType.TEXT and upgrade.data == "5"
        except TimeoutError:
            log.warning("eio_sid=%s did not finish its upgrade to WebSocket in time", self.sid)
            return False
        finally:
            self.upgrading = False

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
        DirectSocket.adopt(self.eio.sockets[eio_sid], self.max_unread, self.pinger)
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
    ("aiohttp.web_protocol.RequestHandler", "_parser", None),
)
