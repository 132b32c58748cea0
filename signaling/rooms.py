"""Room membership and routing decisions.

`RoomStore` is the seam for cross-node state: this module's `MemoryRoomStore` serves one process;
a shared store (Redis) implements the same protocol. Methods are async so that a networked store
fits without changing callers; the in-memory one never awaits, so each call is atomic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from signaling.errors import ErrorCode, SignalingError

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


class RoomStore(Protocol):
    async def join(self, room: str, peer_id: str, metadata: Metadata, capacity: int) -> list[Member]:
        """Add the peer; return the members that were already there, in join order."""

    async def leave(self, room: str, peer_id: str) -> list[str]:
        """Remove the peer from one room; return the ids still in it."""

    async def remove_peer(self, peer_id: str) -> list[Departure]:
        """Remove the peer from every room it is in."""

    async def route(self, sender: str, target: str, room: str | None) -> str:
        """Return the room through which sender may reach target, or raise."""

    async def members(self, room: str) -> list[Member]: ...

    async def rooms_of(self, peer_id: str) -> list[str]: ...


class MemoryRoomStore:
    def __init__(self) -> None:
        # Dicts keep insertion order, which is join order: peer lists and the default route are
        # deterministic.
        self._rooms: dict[str, dict[str, Metadata]] = {}
        self._peer_rooms: dict[str, dict[str, None]] = {}

    async def join(self, room: str, peer_id: str, metadata: Metadata, capacity: int) -> list[Member]:
        members = self._rooms.get(room, {})
        if peer_id in members:
            raise SignalingError(ErrorCode.ALREADY_JOINED, f"already in room {room!r}")
        if len(members) >= capacity:
            raise SignalingError(ErrorCode.ROOM_FULL, f"room {room!r} is full ({capacity} peers at most)")
        existing = [Member(pid, meta) for pid, meta in members.items()]
        self._rooms.setdefault(room, members)[peer_id] = metadata
        self._peer_rooms.setdefault(peer_id, {})[room] = None
        return existing

    async def leave(self, room: str, peer_id: str) -> list[str]:
        rooms = self._peer_rooms.get(peer_id, {})
        if room not in rooms:
            raise SignalingError(ErrorCode.NOT_IN_ROOM, f"not in room {room!r}")
        return self._remove(room, peer_id)

    async def remove_peer(self, peer_id: str) -> list[Departure]:
        rooms = list(self._peer_rooms.get(peer_id, {}))
        return [Departure(room, self._remove(room, peer_id)) for room in rooms]

    async def route(self, sender: str, target: str, room: str | None) -> str:
        sender_rooms = self._peer_rooms.get(sender)
        if not sender_rooms:
            raise SignalingError(ErrorCode.NOT_JOINED, "join a room before sending signaling messages")
        if target == sender:
            raise SignalingError(ErrorCode.UNKNOWN_TARGET, "target is yourself")
        if room is not None:
            if room not in sender_rooms:
                raise SignalingError(ErrorCode.NOT_IN_ROOM, f"not in room {room!r}")
            candidates: list[str] = [room]
        else:
            candidates = list(sender_rooms)
        for name in candidates:
            if target in self._rooms[name]:
                return name
        raise SignalingError(ErrorCode.UNKNOWN_TARGET, f"no peer {target!r} in a room you share")

    async def members(self, room: str) -> list[Member]:
        return [Member(pid, meta) for pid, meta in self._rooms.get(room, {}).items()]

    async def rooms_of(self, peer_id: str) -> list[str]:
        return list(self._peer_rooms.get(peer_id, {}))

    def _remove(self, room: str, peer_id: str) -> list[str]:
        members = self._rooms[room]
        del members[peer_id]
        if not members:
            del self._rooms[room]
        rooms = self._peer_rooms[peer_id]
        del rooms[room]
        if not rooms:
            del self._peer_rooms[peer_id]
        return list(members)

    def is_empty(self) -> bool:
        """True when no room and no peer is held: what tests check after everyone has gone."""
        return not self._rooms and not self._peer_rooms
