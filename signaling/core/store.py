"""Who is where: room membership, published streams and their viewers, and the routing decisions
that follow from them.

`Store` is the seam for cross-node state: `MemoryStore` serves one process; a shared store (Redis)
implements the same protocol. Methods are async so that a networked store fits without changing
callers; the in-memory one never awaits, so each of its calls is atomic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from signaling.core.errors import ErrorCode, SignalingError

Metadata = dict[str, Any]


@dataclass(frozen=True)
class Member:
    peer_id: str
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class Departure:
    """A room a peer was removed from, and who is still there to be told."""

    room: str
    remaining: list[str]


@dataclass(frozen=True)
class Stream:
    """A published stream. `max_viewers` None means the publisher opens a connection per viewer."""

    stream_id: str
    publisher: str
    room: str | None = None
    max_viewers: int | None = None
    viewers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Removal:
    """Everything a peer held when it was removed, so the others can be told."""

    rooms: list[Departure]
    published: list[Stream]
    played: list[Stream]


def stream_key(room: str | None, stream_id: str) -> str:
    """The name the store holds a stream by. A stream published in a room lives in that room: its
    id need only be unique there, and nobody outside it can learn that the id is taken. ('/' is
    in neither rooms' nor streams' alphabet, so keys never collide.)"""
    return stream_id if room is None else f"{room}/{stream_id}"


def stream_name(key: str) -> str:
    """The stream id clients know a stream by: its store key without the room."""
    return key.rpartition("/")[2]


def stream_room(key: str) -> str | None:
    """The room a stream was published in, from its store key."""
    room, separator, _ = key.rpartition("/")
    return room if separator else None


class Route(NamedTuple):
    """What links sender and target for a relay: a shared room, or a stream one publishes and the
    other plays. Exactly one is set. (A NamedTuple: one is built for every relayed message.)"""

    room: str | None = None
    stream_id: str | None = None


class Counterparts(NamedTuple):
    """Who is on the other side of a stream or two-peer room a peer is in, and how they link."""

    peers: list[str]
    route: Route
    plays: bool  # the asking peer plays the stream


class Store(Protocol):
    async def join(
        self, room: str, peer_id: str, metadata: Metadata, capacity: int, mode: str | None = None
    ) -> list[Member]:
        """Add the peer; return the members already there, in join order.

        A room holds as many peers as the smallest capacity any member joined with: a two-peer
        call stays two even when a peer that allows more joins it. `mode` is how a protocol uses
        the room (Ant Media's "p2p" call or "conference"); members with different modes cannot
        share a room, members without one join any room.
        """

    async def leave(self, room: str, peer_id: str) -> list[str]:
        """Remove the peer from one room; return the ids still in it."""

    async def members(self, room: str) -> list[Member]: ...

    async def rooms_of(self, peer_id: str) -> list[str]: ...

    async def publish(
        self, stream_id: str, peer_id: str, room: str | None, max_viewers: int | None
    ) -> Stream:
        """Register a stream; the id is free, or the store raises."""

    async def unpublish(self, stream_id: str, peer_id: str) -> Stream:
        """End the peer's stream; return it with the viewers it had."""

    async def play(self, stream_id: str, viewer: str) -> Stream:
        """Add a viewer within the publisher's limit; return the stream as it now is."""

    async def stop_playing(self, stream_id: str, viewer: str) -> Stream:
        """Remove a viewer; return the stream as it was before."""

    async def stream(self, stream_id: str) -> Stream | None: ...

    async def room_streams(self, room: str) -> list[Stream]: ...

    async def peer_streams(self, peer_id: str) -> tuple[list[str], list[str]]:
        """The stream ids the peer publishes and the ones it plays."""

    async def route(
        self, sender: str, target: str, *, room: str | None = None, stream_id: str | None = None
    ) -> Route:
        """How sender may reach target (through the given room or stream, if any), or raise."""

    async def counterparts(self, peer_id: str, name: str) -> Counterparts | None:
        """The other side of what the peer knows by `name`: a stream it publishes (its viewers) or
        plays (its publisher), else a room (its other members); None if it has nothing so named.
        One call, for protocols that address a call by its name (Ant Media's streamId)."""

    async def remove_peer(self, peer_id: str) -> Removal:
        """Remove the peer from every room and stream it is in."""

    async def room_names(self) -> list[str]:
        """Every room with at least one member."""

    async def stats(self) -> tuple[int, int]:
        """How many rooms have members, and how many peers hold a room or a stream."""


@dataclass(frozen=True)
class PeerLimits:
    """How much one peer may hold, so that one connection cannot grow server state without end."""

    rooms: int = 16
    streams: int = 16  # published and played together


DEFAULT_LIMITS = PeerLimits()


@dataclass
class _Seat:
    metadata: Metadata
    capacity: int
    mode: str | None


@dataclass
class StreamLinks:
    publisher: str
    room: str | None
    max_viewers: int | None
    viewers: dict[str, None] = field(default_factory=dict)

    def snapshot(self, stream_id: str) -> Stream:
        return Stream(stream_id, self.publisher, self.room, self.max_viewers, tuple(self.viewers))


SeatT = TypeVar("SeatT")


class Links(Generic[SeatT]):
    """Who is in which room and on which stream, and the routing rules that follow from it, with
    no I/O. `MemoryStore` is these links for one process; a cluster node keeps a copy of the
    shared store's links for its own peers (`signaling.core.view`) so that a relay is decided
    without a round trip. One set of rules for both."""

    def __init__(self) -> None:
        # Dicts keep insertion order, which is join order: peer lists and the default route are
        # deterministic.
        self._rooms: dict[str, dict[str, SeatT]] = {}
        self._peer_rooms: dict[str, dict[str, None]] = {}
        self._streams: dict[str, StreamLinks] = {}
        self._peer_published: dict[str, dict[str, None]] = {}
        self._peer_playing: dict[str, dict[str, None]] = {}

    def rooms_now(self, peer_id: str) -> list[str]:
        return list(self._peer_rooms.get(peer_id, {}))

    def streams_now(self, peer_id: str) -> tuple[list[str], list[str]]:
        return list(self._peer_published.get(peer_id, {})), list(self._peer_playing.get(peer_id, {}))

    def find_route(
        self, sender: str, target: str, *, room: str | None = None, stream_id: str | None = None
    ) -> Route:
        if target == sender:
            raise SignalingError(ErrorCode.UNKNOWN_TARGET, "target is yourself")
        if stream_id is not None:
            if self._linked_by_stream(sender, target, stream_id):
                return Route(stream_id=stream_id)
            raise SignalingError(
                ErrorCode.UNKNOWN_TARGET, f"no peer {target!r} on stream {stream_name(stream_id)!r} with you"
            )
        sender_rooms = self._peer_rooms.get(sender, {})
        if room is not None:
            if room not in sender_rooms:
                raise SignalingError(ErrorCode.NOT_IN_ROOM, f"not in room {room!r}")
            if target in self._rooms[room]:
                return Route(room=room)
            raise SignalingError(ErrorCode.UNKNOWN_TARGET, f"no peer {target!r} in room {room!r}")
        for name in sender_rooms:
            if target in self._rooms[name]:
                return Route(room=name)
        published, playing = self.streams_now(sender)
        for sid in [*published, *playing]:
            if self._linked_by_stream(sender, target, sid):
                return Route(stream_id=sid)
        if not sender_rooms and not published and not playing:
            raise SignalingError(
                ErrorCode.NOT_JOINED, "join a room or a stream before sending signaling messages"
            )
        raise SignalingError(ErrorCode.UNKNOWN_TARGET, f"no peer {target!r} in a room or stream you share")

    def find_counterparts(self, peer_id: str, name: str) -> Counterparts | None:
        published = self._peer_published.get(peer_id, {})
        playing = self._peer_playing.get(peer_id, {})
        key = next((key for key in [*published, *playing] if stream_name(key) == name), None)
        if key is not None:
            state = self._streams[key]
            plays = key not in published
            return Counterparts(
                [state.publisher] if plays else list(state.viewers), Route(stream_id=key), plays
            )
        if name in self._peer_rooms.get(peer_id, {}):
            return Counterparts([p for p in self._rooms[name] if p != peer_id], Route(room=name), False)
        return None

    def _linked_by_stream(self, sender: str, target: str, stream_id: str) -> bool:
        state = self._streams.get(stream_id)
        if state is None:
            return False
        return (state.publisher == sender and target in state.viewers) or (
            state.publisher == target and sender in state.viewers
        )


class MemoryStore(Links[_Seat]):
    def __init__(self, limits: PeerLimits = DEFAULT_LIMITS) -> None:
        super().__init__()
        self.limits = limits

    # Rooms

    async def join(
        self, room: str, peer_id: str, metadata: Metadata, capacity: int, mode: str | None = None
    ) -> list[Member]:
        seats = self._rooms.get(room, {})
        if peer_id in seats:
            raise SignalingError(ErrorCode.ALREADY_JOINED, f"already in room {room!r}")
        if len(self._peer_rooms.get(peer_id, {})) >= self.limits.rooms:
            raise SignalingError(
                ErrorCode.TOO_MANY_ROOMS, f"a peer may be in {self.limits.rooms} rooms at most"
            )
        modes = {seat.mode for seat in seats.values() if seat.mode is not None}
        if mode is not None and modes - {mode}:
            raise SignalingError(
                ErrorCode.ROOM_MODE_CONFLICT, f"room {room!r} is in use as a {modes.pop()} room, not {mode}"
            )
        limit = min([capacity, *(seat.capacity for seat in seats.values())])
        if len(seats) >= limit:
            raise SignalingError(ErrorCode.ROOM_FULL, f"room {room!r} is full ({limit} peers at most)")
        existing = [Member(pid, seat.metadata) for pid, seat in seats.items()]
        self._rooms.setdefault(room, seats)[peer_id] = _Seat(metadata, capacity, mode)
        self._peer_rooms.setdefault(peer_id, {})[room] = None
        return existing

    async def leave(self, room: str, peer_id: str) -> list[str]:
        if room not in self._peer_rooms.get(peer_id, {}):
            raise SignalingError(ErrorCode.NOT_IN_ROOM, f"not in room {room!r}")
        return self._leave(room, peer_id)

    async def members(self, room: str) -> list[Member]:
        return [Member(pid, seat.metadata) for pid, seat in self._rooms.get(room, {}).items()]

    async def rooms_of(self, peer_id: str) -> list[str]:
        return self.rooms_now(peer_id)

    # Streams

    async def publish(
        self, stream_id: str, peer_id: str, room: str | None, max_viewers: int | None
    ) -> Stream:
        existing = self._streams.get(stream_id)
        if existing is not None:
            if existing.publisher == peer_id:
                raise SignalingError(
                    ErrorCode.ALREADY_PUBLISHING, f"already publishing {stream_name(stream_id)!r}"
                )
            raise SignalingError(
                ErrorCode.STREAM_IN_USE, f"stream {stream_name(stream_id)!r} is published by another peer"
            )
        if room is not None and room not in self._peer_rooms.get(peer_id, {}):
            raise SignalingError(ErrorCode.NOT_IN_ROOM, f"not in room {room!r}")
        self._check_stream_limit(peer_id)
        state = self._streams[stream_id] = StreamLinks(peer_id, room, max_viewers)
        self._peer_published.setdefault(peer_id, {})[stream_id] = None
        return state.snapshot(stream_id)

    async def unpublish(self, stream_id: str, peer_id: str) -> Stream:
        state = self._streams.get(stream_id)
        if state is None or state.publisher != peer_id:
            raise SignalingError(ErrorCode.NOT_STREAMING, f"not publishing {stream_name(stream_id)!r}")
        return self._unpublish(stream_id)

    async def play(self, stream_id: str, viewer: str) -> Stream:
        state = self._streams.get(stream_id)
        # A room's streams are for its members: to anyone else they do not exist.
        if state is None or (state.room is not None and state.room not in self._peer_rooms.get(viewer, {})):
            raise SignalingError(
                ErrorCode.NO_SUCH_STREAM,
                f"no stream {stream_name(stream_id)!r} is published (in a room you are in)",
            )
        if state.publisher == viewer:
            raise SignalingError(
                ErrorCode.ALREADY_PUBLISHING, f"you publish {stream_name(stream_id)!r}; play another stream"
            )
        if viewer in state.viewers:
            raise SignalingError(ErrorCode.ALREADY_PLAYING, f"already playing {stream_name(stream_id)!r}")
        self._check_stream_limit(viewer)
        if state.max_viewers is not None and len(state.viewers) >= state.max_viewers:
            raise SignalingError(
                ErrorCode.VIEWER_LIMIT_REACHED,
                f"the publisher of {stream_name(stream_id)!r} can serve {state.max_viewers} "
                "viewer(s) at a time",
            )
        state.viewers[viewer] = None
        self._peer_playing.setdefault(viewer, {})[stream_id] = None
        return state.snapshot(stream_id)

    async def stop_playing(self, stream_id: str, viewer: str) -> Stream:
        state = self._streams.get(stream_id)
        if state is None or viewer not in state.viewers:
            raise SignalingError(ErrorCode.NOT_STREAMING, f"not playing {stream_name(stream_id)!r}")
        before = state.snapshot(stream_id)
        self._stop_playing(stream_id, viewer)
        return before

    async def stream(self, stream_id: str) -> Stream | None:
        state = self._streams.get(stream_id)
        return None if state is None else state.snapshot(stream_id)

    async def room_streams(self, room: str) -> list[Stream]:
        return [state.snapshot(sid) for sid, state in self._streams.items() if state.room == room]

    async def peer_streams(self, peer_id: str) -> tuple[list[str], list[str]]:
        return self.streams_now(peer_id)

    # Routing and removal

    async def counterparts(self, peer_id: str, name: str) -> Counterparts | None:
        return self.find_counterparts(peer_id, name)

    async def route(
        self, sender: str, target: str, *, room: str | None = None, stream_id: str | None = None
    ) -> Route:
        return self.find_route(sender, target, room=room, stream_id=stream_id)

    async def remove_peer(self, peer_id: str) -> Removal:
        published = [self._unpublish(sid) for sid in list(self._peer_published.get(peer_id, {}))]
        played = []
        for sid in list(self._peer_playing.get(peer_id, {})):
            played.append(self._streams[sid].snapshot(sid))
            self._stop_playing(sid, peer_id)
        rooms = [
            Departure(room, self._leave(room, peer_id)) for room in list(self._peer_rooms.get(peer_id, {}))
        ]
        return Removal(rooms, published, played)

    async def room_names(self) -> list[str]:
        return list(self._rooms)

    async def stats(self) -> tuple[int, int]:
        peers = set(self._peer_rooms) | set(self._peer_published) | set(self._peer_playing)
        return len(self._rooms), len(peers)

    def is_empty(self) -> bool:
        """True when nothing is held: what tests check after everyone has gone."""
        return not (
            self._rooms or self._peer_rooms or self._streams or self._peer_published or self._peer_playing
        )

    def _check_stream_limit(self, peer_id: str) -> None:
        held = len(self._peer_published.get(peer_id, {})) + len(self._peer_playing.get(peer_id, {}))
        if held >= self.limits.streams:
            raise SignalingError(
                ErrorCode.TOO_MANY_STREAMS,
                f"a peer may publish and play {self.limits.streams} streams at most",
            )

    def _leave(self, room: str, peer_id: str) -> list[str]:
        seats = self._rooms[room]
        del seats[peer_id]
        if not seats:
            del self._rooms[room]
        _discard(self._peer_rooms, peer_id, room)
        return list(seats)

    def _unpublish(self, stream_id: str) -> Stream:
        state = self._streams.pop(stream_id)
        _discard(self._peer_published, state.publisher, stream_id)
        for viewer in state.viewers:
            _discard(self._peer_playing, viewer, stream_id)
        return state.snapshot(stream_id)

    def _stop_playing(self, stream_id: str, viewer: str) -> None:
        del self._streams[stream_id].viewers[viewer]
        _discard(self._peer_playing, viewer, stream_id)


def _discard(index: dict[str, dict[str, None]], peer_id: str, key: str) -> None:
    """Remove key from a peer's index entry, and the entry once it is empty."""
    keys = index[peer_id]
    del keys[key]
    if not keys:
        del index[peer_id]
