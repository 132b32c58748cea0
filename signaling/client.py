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
from collections import defaultdict
from types import TracebackType
from typing import Any

import socketio


class RequestFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code: str = error.get("code", "")
        self.error = error


class SignalingClient:
    def __init__(self, *, request_timeout: float = 10.0) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.request_timeout = request_timeout
        self.peer_id: str | None = None
        self._queues: defaultdict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.session: dict[str, Any] | None = None  # {peerId, secret, grace}: what resumes it
        self.sio.on("session", self._on_session)
        self.sio.on("*", self._on_event)
        # Reserved events skip the catch-all handler; queue these too so callers can await them.
        self.sio.on("disconnect", lambda reason=None: self._queues["disconnect"].put_nowait(reason))
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

    async def close(self) -> None:
        """Say goodbye, which ends the session at once (a dropped connection's is held for the
        server's grace, to be resumed), and disconnect."""
        if self.sio.connected:
            # socket.io's disconnect() closes the WebSocket without waiting for its goodbye (the
            # DISCONNECT packet, "1") to be written: send it and wait until it is.
            await self.sio.eio.send("1")
            await self.sio.eio.queue.join()
        await self.sio.disconnect()

    async def _on_session(self, session: dict[str, Any]) -> None:
        self.session = session
        self.peer_id = session["peerId"]

    async def _on_event(self, event: str, *args: Any) -> None:
        self._queues[event].put_nowait(args[0] if len(args) == 1 else list(args))

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
        return reply

    async def leave(self, room: str) -> dict[str, Any]:
        return await self._checked("leave", {"room": room})

    async def offer(
        self, target: str, sdp: str, room: str | None = None, stream_id: str | None = None
    ) -> dict[str, Any]:
        return await self._checked("offer", _relay(target, room, stream_id, sdp=sdp))

    async def answer(
        self, target: str, sdp: str, room: str | None = None, stream_id: str | None = None
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
        return await self._checked("publish", payload)

    async def play(self, stream_id: str) -> dict[str, Any]:
        return await self._checked("play", {"streamId": stream_id})

    async def stop(self, stream_id: str) -> dict[str, Any]:
        return await self._checked("stop", {"streamId": stream_id})

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
