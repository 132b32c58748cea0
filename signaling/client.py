"""A Python peer for this server, on `socketio.AsyncClient`: for bots, load tools and tests.

    async with SignalingClient() as alice:
        await alice.connect("http://127.0.0.1:5080")
        joined = await alice.join("lobby", {"name": "alice"})
        offer = await alice.next("offer")          # wait for an event
        await alice.answer(offer["from"], my_sdp)

Requests wait for the server's ack; a refused request raises `RequestFailed` with the server's
error code. Every event the server sends is queued per event name until `next()` takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import socketio

GOODBYE_TIMEOUT = 2.0  # seconds close() waits for its goodbye to be written


class RequestFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code: str = error.get("code", "")
        self.error = error


@dataclass
class _Room:
    metadata: dict[str, Any]
    peers: set[str] = field(default_factory=set)


class SignalingClient:
    """`reconnect=True`: when the connection drops, connect again and resume the session (the
    same peer id, rooms and streams, and the messages sent meanwhile); each outcome is queued as
    a `resumed` event (the ack) or a `resume_failed` event (the error: the client then has a fresh
    session and holds nothing)."""

    def __init__(self, *, request_timeout: float = 10.0, reconnect: bool = False, **options: Any) -> None:
        # `options` go to socketio.AsyncClient (an `http_session` of your own, for example).
        self.sio = socketio.AsyncClient(
            reconnection=reconnect, reconnection_delay=0.2, reconnection_delay_max=2, **options
        )
        self.request_timeout = request_timeout
        self.peer_id: str | None = None
        self.session: dict[str, Any] | None = None  # {peerId, secret, grace}: what resumes it
        self._queues: defaultdict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        # What the session holds, as the server told it: claimed to rebuild it after a restart.
        self._rooms: dict[str, _Room] = {}
        self._published: dict[str, dict[str, Any]] = {}
        self._playing: dict[str, dict[str, Any]] = {}
        self._lost: dict[str, Any] | None = None  # the session of a dropped connection
        self._fresh: dict[str, Any] | None = None  # the new connection's own, if a resume fails
        self._resuming: asyncio.Task[None] | None = None
        self._named = asyncio.Event()  # set by the first session event
        self.sio.on("session", self._on_session)
        self.sio.on("*", self._on_event)
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        # Reserved events skip the catch-all handler; queue this too so callers can await it.
        self.sio.on("connect_error", lambda data=None: self._queues["connect_error"].put_nowait(data))

    async def __aenter__(self) -> SignalingClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self, url: str, *, transports: list[str] | None = None, **kwargs: Any) -> None:
        try:
            await self.sio.connect(url, transports=transports or ["websocket"], wait_timeout=10, **kwargs)
        except socketio.exceptions.ConnectionError:
            # A refused connection leaves engine.io's HTTP session open; close it with the client.
            await self.sio.eio.disconnect()
            raise
        # This server names the session right after the connect: wait for it, so that `peer_id`
        # and `session` are known when connect() returns.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.request_timeout):
                await self._named.wait()

    async def close(self) -> None:
        """Say goodbye, which ends the session at once (a dropped connection's is held for the
        server's grace, to be resumed), and disconnect."""
        self._lost = None
        if self._resuming is not None:
            self._resuming.cancel()
        if self.sio.connected:
            # socket.io's disconnect() closes the WebSocket without waiting for its goodbye (the
            # DISCONNECT packet, "1") to be written: send it and wait until it is (not for ever:
            # a connection the server is closing at that moment never writes it).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GOODBYE_TIMEOUT):
                    await self.sio.eio.send("1")
                    await self.sio.eio.queue.join()
        await self.sio.disconnect()

    async def _on_session(self, session: dict[str, Any]) -> None:
        if self._lost is not None:
            self._fresh = session  # ours if the resume is refused
            return
        self.session = session
        self.peer_id = session["peerId"]
        self._named.set()

    async def _on_disconnect(self, reason: Any = None) -> None:
        if self.session is not None and self.session.get("grace"):
            self._lost = self.session
        self._queues["disconnect"].put_nowait(reason)

    async def _on_connect(self) -> None:
        if self._lost is not None:
            # Not in the handler itself: socket.io delivers the answer to the resume only after
            # the handler returns.
            self._resuming = asyncio.get_running_loop().create_task(self._resume_lost())

    async def _resume_lost(self) -> None:
        # `_lost` stays set until the answer: this connection's own session event, which comes
        # first, is kept aside for a refusal.
        lost = self._lost
        try:
            reply = await self.resume(lost)
        except (RequestFailed, TimeoutError, socketio.exceptions.SocketIOError) as exc:
            self._lost = None
            fresh, self._fresh = self._fresh, None
            self.session, self.peer_id = fresh, (fresh or {}).get("peerId")
            self._rooms.clear()
            self._published.clear()
            self._playing.clear()
            error = exc.error if isinstance(exc, RequestFailed) else {"code": "timeout", "message": str(exc)}
            self._queues["resume_failed"].put_nowait(error)
            return
        self._lost = None
        self._queues["resumed"].put_nowait(reply)

    async def _on_event(self, event: str, *args: Any) -> None:
        payload = args[0] if len(args) == 1 else list(args)
        if isinstance(payload, dict):
            self._track(event, payload)
        self._queues[event].put_nowait(payload)

    def _track(self, event: str, message: dict[str, Any]) -> None:
        match event:
            case "peer-joined" if message.get("room") in self._rooms:
                self._rooms[message["room"]].peers.add(message["peerId"])
            case "peer-left" if message.get("room") in self._rooms:
                self._rooms[message["room"]].peers.discard(message["peerId"])
            case "viewer-joined" if message.get("streamId") in self._published:
                self._published[message["streamId"]]["viewers"].add(message["viewerId"])
            case "viewer-left" if message.get("streamId") in self._published:
                self._published[message["streamId"]]["viewers"].discard(message["viewerId"])
            case "stream-ended":
                self._playing.pop(message.get("streamId", ""), None)

    def claims(self) -> dict[str, Any]:
        """What this client holds, as `resume` takes it to rebuild a session the server lost."""
        return {
            "rooms": [
                {"room": room, "metadata": held.metadata, "peers": sorted(held.peers)}
                for room, held in self._rooms.items()
            ],
            "published": [
                {
                    "streamId": sid,
                    "room": s["room"],
                    "maxViewers": s["maxViewers"],
                    "viewers": sorted(s["viewers"]),
                }
                for sid, s in self._published.items()
            ],
            "playing": [
                {"streamId": sid, "room": s["room"], "publisher": s["publisher"]}
                for sid, s in self._playing.items()
            ],
        }

    async def resume(
        self, session: dict[str, Any] | None = None, claims: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Take a session back on this fresh connection (by default the one this client had):
        the ack, after which the messages held for it arrive. `claims` (default: what this client
        holds) rebuild it if the server lost it."""
        session = session or self.session
        if session is None:
            raise ValueError("no session to resume")
        restore = claims if claims is not None else self.claims()
        reply = await self._checked(
            "resume", {"peerId": session["peerId"], "secret": session["secret"], "restore": restore}
        )
        self.session = {**session, **({"grace": self._fresh["grace"]} if self._fresh else {})}
        self.peer_id = reply["peerId"]
        self._fresh = None
        for room in reply["lost"]["rooms"]:
            self._rooms.pop(room, None)
        for room in reply["rooms"]:
            held = self._rooms.setdefault(room["room"], _Room({}))
            held.peers = {peer["peerId"] for peer in room["peers"]}
        return reply

    async def request(self, event: str, *args: Any) -> Any:
        """Emit with an ack and return the server's reply as is.

        Several `args` go out as several socket.io arguments, none as an event without payload.
        """
        data = args[0] if len(args) == 1 else args
        return await self.sio.call(event, data, timeout=self.request_timeout)

    async def emit(self, event: str, *args: Any) -> None:
        """Emit without an ack: a refusal then arrives as an `error` event."""
        await self.sio.emit(event, args[0] if len(args) == 1 else args)

    async def _checked(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        reply = await self.request(event, payload)
        if not reply.get("ok"):
            raise RequestFailed(reply.get("error", {}))
        return dict(reply)

    async def join(self, room: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"room": room}
        if metadata is not None:
            payload["metadata"] = metadata
        reply = await self._checked("join", payload)
        self.peer_id = reply["peerId"]
        self._rooms[room] = _Room(metadata or {}, {peer["peerId"] for peer in reply["peers"]})
        return reply

    async def leave(self, room: str) -> dict[str, Any]:
        reply = await self._checked("leave", {"room": room})
        self._rooms.pop(room, None)
        return reply

    async def offer(
        self, target: str, sdp: str | dict[str, str], room: str | None = None, stream_id: str | None = None
    ) -> dict[str, Any]:
        return await self._checked("offer", _relay(target, room, stream_id, sdp=sdp))

    async def answer(
        self, target: str, sdp: str | dict[str, str], room: str | None = None, stream_id: str | None = None
    ) -> dict[str, Any]:
        return await self._checked("answer", _relay(target, room, stream_id, sdp=sdp))

    async def ice_candidate(
        self,
        target: str,
        candidate: dict[str, Any] | None,
        room: str | None = None,
        stream_id: str | None = None,
    ) -> dict[str, Any]:
        return await self._checked("ice-candidate", _relay(target, room, stream_id, candidate=candidate))

    async def peer_message(
        self, target: str, data: Any, definition: str | None = None, room: str | None = None
    ) -> dict[str, Any]:
        return await self._checked(
            "peer-message", _relay(target, room, None, data=data, definition=definition)
        )

    async def publish(
        self, stream_id: str, room: str | None = None, max_viewers: int | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"streamId": stream_id}
        if room is not None:
            payload["room"] = room
        if max_viewers is not None:
            payload["maxViewers"] = max_viewers
        reply = await self._checked("publish", payload)
        self._published[stream_id] = {"room": room, "maxViewers": max_viewers, "viewers": set()}
        return reply

    async def play(self, stream_id: str) -> dict[str, Any]:
        reply = await self._checked("play", {"streamId": stream_id})
        self._playing[stream_id] = {"room": reply["room"], "publisher": reply["publisher"]}
        return reply

    async def stop(self, stream_id: str) -> dict[str, Any]:
        reply = await self._checked("stop", {"streamId": stream_id})
        self._published.pop(stream_id, None)
        self._playing.pop(stream_id, None)
        return reply

    async def next(self, event: str, timeout: float = 10.0) -> Any:
        """The oldest unread `event` from the server, waiting up to `timeout` seconds for one."""
        try:
            return await asyncio.wait_for(self._queues[event].get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no {event!r} event within {timeout}s; unread: {self.pending()}") from None

    def pending(self) -> dict[str, int]:
        """How many unread events of each name are queued."""
        return {name: queue.qsize() for name, queue in self._queues.items() if queue.qsize()}

    def take_pending(self, event: str) -> list[Any]:
        """Every unread `event`, without waiting."""
        queue = self._queues[event]
        return [queue.get_nowait() for _ in range(queue.qsize())]


def _relay(target: str, room: str | None, stream_id: str | None, **body: Any) -> dict[str, Any]:
    payload = {"target": target, **body}
    if room is not None:
        payload["room"] = room
    if stream_id is not None:
        payload["streamId"] = stream_id
    return payload
