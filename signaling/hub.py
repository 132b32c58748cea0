"""The signaling core: membership changes and relays, told to the right peers.

Transports call the hub with already-validated requests and give it a `Sink` per connected peer;
the hub decides who hears what and hands neutral messages (`signaling.messages`) to `Delivery`.
No transport or network library is imported here.
"""

from __future__ import annotations

import logging
from typing import Protocol

from signaling.messages import LeaveReason, Outbound, PeerJoined, PeerLeft, Relayed, Signal
from signaling.rooms import Member, Metadata, RoomStore

log = logging.getLogger("signaling.hub")


class Sink(Protocol):
    """How one connected peer receives messages; each transport provides its own."""

    async def send(self, message: Outbound) -> None: ...


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

    async def deliver(self, peer_id: str, message: Outbound) -> None:
        sink = self._sinks.get(peer_id)
        if sink is None:
            log.debug("peer=%s gone before delivery of %s", peer_id, type(message).__name__)
            return
        try:
            await sink.send(message)
        except Exception:
            # One broken receiver must not fail the sender's request or the other receivers.
            log.exception("peer=%s delivery of %s failed", peer_id, type(message).__name__)

    def connected(self) -> int:
        return len(self._sinks)


class Hub:
    def __init__(self, store: RoomStore, delivery: LocalDelivery, *, room_capacity: int) -> None:
        self.store = store
        self.delivery = delivery
        self.room_capacity = room_capacity

    def connect(self, peer_id: str, sink: Sink) -> None:
        self.delivery.attach(peer_id, sink)

    async def disconnect(self, peer_id: str, reason: LeaveReason = "disconnected") -> None:
        """Forget the peer entirely and tell everyone who shared a room with it."""
        self.delivery.detach(peer_id)
        for departure in await self.store.remove_peer(peer_id):
            log.info("peer=%s room=%s left (%s)", peer_id, departure.room, reason)
            await self._tell(departure.remaining, PeerLeft(departure.room, peer_id, reason))

    async def join(
        self, peer_id: str, room: str, metadata: Metadata, capacity: int | None = None
    ) -> list[Member]:
        existing = await self.store.join(room, peer_id, metadata, capacity or self.room_capacity)
        log.info("peer=%s room=%s joined (%d already there)", peer_id, room, len(existing))
        await self._tell([m.peer_id for m in existing], PeerJoined(room, peer_id, metadata))
        return existing

    async def leave(self, peer_id: str, room: str) -> None:
        remaining = await self.store.leave(room, peer_id)
        log.info("peer=%s room=%s left", peer_id, room)
        await self._tell(remaining, PeerLeft(room, peer_id, "left"))

    async def relay(self, sender: str, target: str, signal: Signal, room: str | None = None) -> str:
        """Deliver a signal to target through a room both are in; return that room."""
        shared = await self.store.route(sender, target, room)
        log.debug("peer=%s room=%s relay %s to %s: %r", sender, shared, type(signal).__name__, target, signal)
        await self.delivery.deliver(target, Relayed(sender, target, shared, signal))
        return shared

    async def _tell(self, peer_ids: list[str], message: Outbound) -> None:
        for peer_id in peer_ids:
            await self.delivery.deliver(peer_id, message)
