"""The signaling core: membership changes and relays, told to the right peers.

Transports call the hub with already-validated requests and give it a `Sink` per connected peer;
the hub decides who hears what and hands neutral messages (`signaling.messages`) to `Delivery`.
No transport or network library is imported here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal, NamedTuple, Protocol

from signaling.errors import ErrorCode, SignalingError
from signaling.messages import (
    EndReason,
    GoneReason,
    IceCandidate,
    Kicked,
    LeaveReason,
    Outbound,
    PeerJoined,
    PeerLeft,
    Relayed,
    SessionDescription,
    Signal,
    StreamEnded,
    StreamPublished,
    StreamUnpublished,
    ViewerJoined,
    ViewerLeft,
)
from signaling.store import Member, Metadata, Removal, Route, Store, Stream

log = logging.getLogger("signaling.hub")


class Sink(Protocol):
    """How one connected peer receives messages; each transport provides its own."""

    async def send(self, message: Outbound) -> None: ...

    async def evict(self, reason: str) -> None:
        """Disconnect the peer so that it reconnects and joins again."""


# Whether a peer may still do something ("rooms", "publish" or "play") with a room or stream.
Allows = Callable[[Literal["rooms", "publish", "play"], str], bool]


class Withdrawn(NamedTuple):
    rooms: list[str]
    published: list[str]
    played: list[str]


class RelayObserver(Protocol):
    def relayed_message(self, kind: str, seconds: float) -> None: ...


class LocalDelivery:
    """Delivers to peers connected to this process.

    This is the piece a cross-node delivery replaces: it only needs `attach`, `detach` and
    `deliver`.
    """

    def __init__(self) -> None:
        self._sinks: dict[str, Sink] = {}

    def attach(self, peer_id: str, sink: Sink) -> None:
        self._sinks[peer_id] = sink

    def detach(self, peer_id: str) -> None:
        self._sinks.pop(peer_id, None)

    async def deliver(self, peer_id: str, message: Outbound) -> bool:
        """Hand a message over; False when nobody holds that peer any more."""
        sink = self._sinks.get(peer_id)
        if sink is None:
            log.debug("peer=%s gone before delivery of %s", peer_id, type(message).__name__)
            return False
        try:
            await sink.send(message)
        except ConnectionError as exc:
            log.info("peer=%s gone during delivery of %s: %s", peer_id, type(message).__name__, exc)
        except Exception:
            # One broken receiver must not fail the sender's request or the other receivers.
            log.exception("peer=%s delivery of %s failed", peer_id, type(message).__name__)
        return True

    def connected(self) -> int:
        return len(self._sinks)

    def local_peers(self) -> list[str]:
        return list(self._sinks)

    async def evict_all(self, reason: str) -> None:
        for sink in list(self._sinks.values()):
            await sink.evict(reason)


class Hub:
    def __init__(
        self,
        store: Store,
        delivery: LocalDelivery,
        *,
        room_capacity: int,
        peer_id_prefix: str = "",
        observer: RelayObserver | None = None,
    ) -> None:
        self.store = store
        self.delivery = delivery
        self.room_capacity = room_capacity
        self.peer_id_prefix = peer_id_prefix
        self.observer = observer

    def peer_id(self, local_id: str) -> str:
        """The cluster-wide id of a connection this node holds (its node's name comes first)."""
        return self.peer_id_prefix + local_id

    def connect(self, peer_id: str, sink: Sink) -> None:
        self.delivery.attach(peer_id, sink)

    async def disconnect(self, peer_id: str, reason: GoneReason = "disconnected") -> bool:
        """Forget the peer entirely and tell everyone it shared a room or a stream with; False if
        the shared state could not be reached (the cluster's reconciliation retries it)."""
        self.delivery.detach(peer_id)
        try:
            removal = await self.store.remove_peer(peer_id)
        except SignalingError as error:
            log.warning("peer=%s could not be removed now: %s", peer_id, error.message)
            return False
        await self._announce_removal(peer_id, removal, reason)
        return True

    async def _announce_removal(self, peer_id: str, removal: Removal, reason: GoneReason) -> None:
        for stream in removal.published:
            await self._announce_unpublished(stream, reason)
        for stream in removal.played:
            await self.delivery.deliver(stream.publisher, ViewerLeft(stream.stream_id, peer_id, reason))
        for departure in removal.rooms:
            log.info("peer=%s room=%s left (%s)", peer_id, departure.room, reason)
            await self._tell(departure.remaining, PeerLeft(departure.room, peer_id, reason))

    # Rooms

    async def join(
        self,
        peer_id: str,
        room: str,
        metadata: Metadata,
        *,
        capacity: int | None = None,
        mode: str | None = None,
    ) -> list[Member]:
        existing = await self.store.join(room, peer_id, metadata, capacity or self.room_capacity, mode)
        log.info("peer=%s room=%s joined (%d already there)", peer_id, room, len(existing))
        await self._tell([m.peer_id for m in existing], PeerJoined(room, peer_id, metadata))
        return existing

    async def leave(self, peer_id: str, room: str, reason: LeaveReason = "left") -> None:
        """Leave a room, ending first what the peer published or played in it."""
        if room not in await self.store.rooms_of(peer_id):
            raise SignalingError(ErrorCode.NOT_IN_ROOM, f"not in room {room!r}")
        published, playing = await self.store.peer_streams(peer_id)
        for stream_id in [*published, *playing]:
            stream = await self.store.stream(stream_id)
            if stream is not None and stream.room == room:
                await self.stop(peer_id, stream_id)
        remaining = await self.store.leave(room, peer_id)
        log.info("peer=%s room=%s left", peer_id, room)
        await self._tell(remaining, PeerLeft(room, peer_id, reason))

    # Streams

    async def publish(
        self, peer_id: str, stream_id: str, *, room: str | None = None, max_viewers: int | None = None
    ) -> Stream:
        stream = await self.store.publish(stream_id, peer_id, room, max_viewers)
        log.info(
            "peer=%s stream=%s published (room %s, viewers %s)",
            peer_id,
            stream_id,
            room,
            max_viewers or "any",
        )
        if room is not None:
            await self._tell(await self._others(room, peer_id), StreamPublished(room, stream_id, peer_id))
        return stream

    async def unpublish(self, peer_id: str, stream_id: str) -> Stream:
        stream = await self.store.unpublish(stream_id, peer_id)
        log.info("peer=%s stream=%s unpublished", peer_id, stream_id)
        await self._announce_unpublished(stream, "stopped")
        return stream

    async def play(self, viewer: str, stream_id: str) -> Stream:
        stream = await self.store.play(stream_id, viewer)
        log.info("peer=%s stream=%s playing", viewer, stream_id)
        await self.delivery.deliver(stream.publisher, ViewerJoined(stream_id, viewer))
        return stream

    async def stop_playing(self, viewer: str, stream_id: str) -> Stream:
        stream = await self.store.stop_playing(stream_id, viewer)
        log.info("peer=%s stream=%s stopped playing", viewer, stream_id)
        await self.delivery.deliver(stream.publisher, ViewerLeft(stream_id, viewer, "stopped"))
        return stream

    async def stop(self, peer_id: str, stream_id: str) -> Literal["published", "played"]:
        """End whichever the peer does with the stream: publish it, or play it."""
        published, playing = await self.store.peer_streams(peer_id)
        if stream_id in published:
            await self.unpublish(peer_id, stream_id)
            return "published"
        if stream_id in playing:
            await self.stop_playing(peer_id, stream_id)
            return "played"
        raise SignalingError(ErrorCode.NOT_STREAMING, f"you neither publish nor play {stream_id!r}")

    # Relay

    async def relay(
        self,
        sender: str,
        target: str,
        signal: Signal,
        *,
        room: str | None = None,
        stream_id: str | None = None,
    ) -> Route:
        """Deliver a signal to target through a room or stream both are in; return which."""
        started = time.perf_counter()
        route = await self.store.route(sender, target, room=room, stream_id=stream_id)
        log.debug("peer=%s relay %s to %s via %s: %r", sender, type(signal).__name__, target, route, signal)
        await self.delivery.deliver(target, Relayed(sender, target, route, signal))
        if self.observer is not None:
            self.observer.relayed_message(_kind(signal), time.perf_counter() - started)
        return route

    async def kick(self, peer_id: str, reason: str, gone: GoneReason = "kicked") -> bool:
        """Remove a peer on an operator's (or its token's) word, wherever it is connected; False
        if unknown.

        Its room-mates and counterparts are told at once (reason `gone`); the peer itself gets
        `reason` and is disconnected by the node that holds it.
        """
        removal = await self.store.remove_peer(peer_id)
        await self._announce_removal(peer_id, removal, gone)
        # Handed over when a node holds the peer, even one that held no room or stream.
        reached = await self.delivery.deliver(peer_id, Kicked(reason))
        if reached or removal.rooms or removal.published or removal.played:
            log.warning("peer=%s kicked: %s", peer_id, reason)
            return True
        return False

    async def withdraw(self, peer_id: str, allows: Allows) -> Withdrawn:
        """Leave the rooms and end the streams that `allows` no longer covers (a narrower token);
        the others are told with reason "expired". Returns what was given up."""
        published, playing = await self.store.peer_streams(peer_id)
        withdrawn = Withdrawn(
            [room for room in await self.store.rooms_of(peer_id) if not allows("rooms", room)],
            [stream_id for stream_id in published if not allows("publish", stream_id)],
            [stream_id for stream_id in playing if not allows("play", stream_id)],
        )
        for stream_id in withdrawn.published:
            await self._announce_unpublished(await self.store.unpublish(stream_id, peer_id), "expired")
        for stream_id in withdrawn.played:
            stream = await self.store.stop_playing(stream_id, peer_id)
            await self.delivery.deliver(stream.publisher, ViewerLeft(stream_id, peer_id, "expired"))
        for room in withdrawn.rooms:
            await self.leave(peer_id, room, "expired")
        if any(withdrawn):
            log.info("peer=%s gave up what its new token does not grant: %s", peer_id, withdrawn)
        return withdrawn

    async def counterpart(self, peer_id: str, key: str) -> tuple[str, Route]:
        """The one peer on the other side of a stream or two-peer room named `key`.

        Protocols that address a call by its name rather than by peer (Ant Media's streamId) relay
        through this: a stream's publisher reaches its single viewer and a viewer its publisher; a
        peer in a room reaches the only other member.
        """
        published, playing = await self.store.peer_streams(peer_id)
        if key in published or key in playing:
            stream = await self.store.stream(key)
            if stream is None:  # ended between the two reads
                raise SignalingError(ErrorCode.NOT_JOINED, f"stream {key!r} has ended")
            others = list(stream.viewers) if key in published else [stream.publisher]
            return self._single(others, key), Route(stream_id=key)
        if key in await self.store.rooms_of(peer_id):
            return self._single(await self._others(key, peer_id), key), Route(room=key)
        raise SignalingError(ErrorCode.NOT_JOINED, f"not in a room or stream named {key!r}")

    @staticmethod
    def _single(others: list[str], key: str) -> str:
        if not others:
            raise SignalingError(ErrorCode.UNKNOWN_TARGET, f"nobody else is in {key!r} yet")
        if len(others) > 1:
            raise SignalingError(
                ErrorCode.UNKNOWN_TARGET, f"{key!r} has {len(others)} other peers; name a target"
            )
        return others[0]

    async def _announce_unpublished(self, stream: Stream, reason: EndReason) -> None:
        await self._tell(list(stream.viewers), StreamEnded(stream.stream_id, reason))
        if stream.room is not None:
            others = [
                m.peer_id for m in await self.store.members(stream.room) if m.peer_id != stream.publisher
            ]
            await self._tell(others, StreamUnpublished(stream.room, stream.stream_id, stream.publisher))

    async def _others(self, room: str, peer_id: str) -> list[str]:
        return [m.peer_id for m in await self.store.members(room) if m.peer_id != peer_id]

    async def _tell(self, peer_ids: list[str], message: Outbound) -> None:
        for peer_id in peer_ids:
            await self.delivery.deliver(peer_id, message)


def _kind(signal: Signal) -> str:
    match signal:
        case SessionDescription(type=kind):
            return kind
        case IceCandidate():
            return "candidate"
    return "message"
