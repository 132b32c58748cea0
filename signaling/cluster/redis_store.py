"""The `Store` protocol on Redis: room membership and streams shared by every node of a cluster.

Each change is one Lua script (signaling.cluster.redis_lua), so checks and writes happen as one step,
and tells the nodes concerned what it changed. With a `Replica` (a node's view of what concerns its
own peers), routing questions about this node's peers are answered from it, without a round trip;
what the view does not know is still asked of Redis.

When Redis cannot be reached, every operation raises `SignalingError(service_unavailable)`: the
client that asked gets a clear error and nothing else is disturbed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from signaling.cluster import redis_lua
from signaling.cluster.replica import Replica
from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.peers import node_of
from signaling.core.store import (
    DEFAULT_LIMITS,
    Counterparts,
    Departure,
    Member,
    Metadata,
    PeerLimits,
    Removal,
    Route,
    Stream,
    stream_name,
)
from signaling.core.view import RouteView

T = TypeVar("T")

MESSAGES = {
    "already_joined": "already in room {room!r}",
    "too_many_rooms": "a peer may be in {limit} rooms at most",
    "room_mode_conflict": "room {room!r} is in use as a {mode} room",
    "room_full": "room {room!r} is full ({limit} peers at most)",
    "not_in_room": "not in room {room!r}",
    "already_publishing": "already publishing (or playing your own) {stream!r}",
    "stream_in_use": "stream {stream!r} is published by another peer",
    "too_many_streams": "a peer may publish and play {limit} streams at most",
    "not_streaming": "you neither publish nor play {stream!r}",
    "no_such_stream": "no stream {stream!r} is published (in a room you are in)",
    "already_playing": "already playing {stream!r}",
    "viewer_limit_reached": "the publisher of {stream!r} can serve {limit} viewer(s) at a time",
    "unknown_target": "no peer {target!r} in a room or stream you share with it",
    "not_joined": "join a room or a stream before sending signaling messages",
}


# Peers whose links one LOAD script sends: a node's whole view is rebuilt in slices that keep each
# script short.
LOAD_BATCH = 500


class RedisStore:
    def __init__(
        self,
        client: redis.Redis,
        *,
        limits: PeerLimits = DEFAULT_LIMITS,
        prefix: str = "sig:",
        node_id: str = "",
        replica: Replica | None = None,
    ) -> None:
        self.client = client
        self.limits = limits
        self.prefix = prefix
        self.node_id = node_id  # the node told of the changes it makes ("" for none)
        self.replica = replica
        self._scripts = {
            name: client.register_script(getattr(redis_lua, name))
            for name in (
                "JOIN",
                "LEAVE",
                "PUBLISH",
                "UNPUBLISH",
                "PLAY",
                "STOP_PLAYING",
                "REMOVE_PEER",
                "ROUTE",
                "COUNTERPARTS",
                "MEMBERS",
                "STREAM",
                "ROOM_STREAMS",
                "STATS",
                "LOAD",
            )
        }

    async def _run(self, name: str, *args: Any, **context: Any) -> Any:
        return (await self._answer(name, args, context))["ok"]

    async def _change(self, name: str, *args: Any, **context: Any) -> Any:
        """Run a script that changes links (it is told which node calls); answered once this
        node's view has the change."""
        answer = await self._answer(name, (*args, self.node_id), context)
        if self.replica is not None:
            await self.replica.caught_up(answer["seq"])
        return answer["ok"]

    async def _answer(self, name: str, args: tuple[Any, ...], context: dict[str, Any]) -> dict[str, Any]:
        raw = await available(lambda: self._scripts[name](args=[self.prefix, *args]))
        answer: dict[str, Any] = orjson.loads(raw)
        if "error" in answer:
            code = answer["error"]
            raise SignalingError(ErrorCode(code), MESSAGES[code].format_map(_Known({**context, **answer})))
        return answer

    # Rooms

    async def join(
        self, room: str, peer_id: str, metadata: Metadata, capacity: int, mode: str | None = None
    ) -> list[Member]:
        existing = await self._change(
            "JOIN",
            room,
            peer_id,
            orjson.dumps(metadata),
            capacity,
            mode or "",
            self.limits.rooms,
            node_of(peer_id),
            room=room,
        )
        return [Member(pid, orjson.loads(meta)) for pid, meta in _list(existing)]

    async def leave(self, room: str, peer_id: str) -> list[str]:
        return _list(await self._change("LEAVE", room, peer_id, room=room))

    async def members(self, room: str) -> list[Member]:
        return [Member(pid, orjson.loads(meta)) for pid, meta in _list(await self._run("MEMBERS", room))]

    async def rooms_of(self, peer_id: str) -> list[str]:
        rooms = await available(lambda: self.client.zrange(f"{self.prefix}peer:{peer_id}:rooms", 0, -1))
        return [as_text(room) for room in rooms]

    # Streams

    async def publish(
        self, stream_id: str, peer_id: str, room: str | None, max_viewers: int | None
    ) -> Stream:
        stream = await self._change(
            "PUBLISH",
            stream_id,
            peer_id,
            room or "",
            max_viewers or 0,
            self.limits.streams,
            node_of(peer_id),
            stream=stream_name(stream_id),
            room=room,
        )
        return _stream(stream)

    async def unpublish(self, stream_id: str, peer_id: str) -> Stream:
        return _stream(await self._change("UNPUBLISH", stream_id, peer_id, stream=stream_name(stream_id)))

    async def play(self, stream_id: str, viewer: str) -> Stream:
        stream = await self._change(
            "PLAY", stream_id, viewer, self.limits.streams, node_of(viewer), stream=stream_name(stream_id)
        )
        return _stream(stream)

    async def stop_playing(self, stream_id: str, viewer: str) -> Stream:
        return _stream(await self._change("STOP_PLAYING", stream_id, viewer, stream=stream_name(stream_id)))

    async def stream(self, stream_id: str) -> Stream | None:
        stream = await self._run("STREAM", stream_id)
        return _stream(stream) if stream else None

    async def room_streams(self, room: str) -> list[Stream]:
        return [_stream(s) for s in _list(await self._run("ROOM_STREAMS", room))]

    async def peer_streams(self, peer_id: str) -> tuple[list[str], list[str]]:
        if (view := self._view_for(peer_id)) is not None:
            return view.streams_now(peer_id)

        async def read() -> tuple[list[bytes], list[bytes]]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zrange(f"{self.prefix}peer:{peer_id}:pub", 0, -1)
                pipe.zrange(f"{self.prefix}peer:{peer_id}:play", 0, -1)
                published, playing = await pipe.execute()
            return published, playing

        published, playing = await available(read)
        return [as_text(s) for s in published], [as_text(s) for s in playing]

    # Routing and removal

    async def route(
        self, sender: str, target: str, *, room: str | None = None, stream_id: str | None = None
    ) -> Route:
        if (view := self._view_for(sender)) is not None:
            # What the view does not know may have happened a moment ago: Redis says.
            with contextlib.suppress(SignalingError):
                return view.find_route(sender, target, room=room, stream_id=stream_id)
        found = await self._run(
            "ROUTE", sender, target, room or "", stream_id or "", target=target, room=room
        )
        return Route(room=found.get("room"), stream_id=found.get("stream"))

    async def counterparts(self, peer_id: str, name: str) -> Counterparts | None:
        view = self._view_for(peer_id)
        if view is not None and (known := view.find_counterparts(peer_id, name)):
            return known
        found = await self._run("COUNTERPARTS", peer_id, name)
        if not found:
            return None
        route = Route(room=found.get("room"), stream_id=found.get("stream"))
        return Counterparts([as_text(p) for p in _list(found["peers"])], route, bool(found["plays"]))

    async def remove_peer(self, peer_id: str) -> Removal:
        removed = await self._change("REMOVE_PEER", peer_id, node_of(peer_id))
        return Removal(
            rooms=[Departure(room, _list(remaining)) for room, remaining in _list(removed["rooms"])],
            published=[_stream(s) for s in _list(removed["published"])],
            played=[_stream(s) for s in _list(removed["played"])],
        )

    async def load(self, peer_ids: list[str]) -> int:
        """Have Redis send this node everything the peers are in, down its channel (a node
        rebuilding its view); the seq of the last notice."""
        seq = 0
        for start in range(0, len(peer_ids), LOAD_BATCH):
            answer = await self._answer("LOAD", (*peer_ids[start : start + LOAD_BATCH], self.node_id), {})
            seq = answer["seq"] or seq
        return seq

    def _view_for(self, peer_id: str) -> RouteView | None:
        """This node's view, when it is whole and answers for the peer (one of this node's)."""
        if self.replica is None or not self.replica.synced or not self.replica.view.here(peer_id):
            return None
        return self.replica.view

    async def room_names(self) -> list[str]:
        rooms = await available(lambda: self.client.smembers(f"{self.prefix}rooms"))
        return sorted(as_text(room) for room in rooms)

    async def stats(self) -> tuple[int, int]:
        rooms, peers = await self._run("STATS")
        return int(rooms), int(peers)


async def available(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise SignalingError(
            ErrorCode.SERVICE_UNAVAILABLE, "shared state is unreachable right now; try again shortly"
        ) from exc


def as_text(value: Any) -> str:
    """Redis answers bytes (or str with decode_responses); ids are text either way."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _Known(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _list(value: Any) -> list[Any]:
    # Lua's cjson writes an empty table as {}.
    return list(value) if isinstance(value, list) else []


def _stream(raw: dict[str, Any]) -> Stream:
    return Stream(
        stream_id=raw["id"],
        publisher=raw["publisher"],
        room=raw["room"] or None,
        max_viewers=raw["maxv"] or None,
        viewers=tuple(_list(raw["viewers"])),
    )
