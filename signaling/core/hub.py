"""The signaling core: membership changes and relays, told to the right peers.

Transports call the hub with already-validated requests and give it a `Sink` per connected peer;
the hub decides who hears what and hands neutral messages (`signaling.core.messages`) to `Delivery`.
No transport or network library is imported here.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Literal, NamedTuple, Protocol

from signaling.core import peers
from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.messages import (
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
from signaling.core.sessions import Claims, Ending, SessionStore
from signaling.core.store import (
    Member,
    Metadata,
    Removal,
    Route,
    Store,
    Stream,
    stream_key,
    stream_name,
    stream_room,
)

log = logging.getLogger(__name__)


class Sink(Protocol):
    """How one connected peer receives messages; each transport provides its own."""

    async def send(self, message: Outbound) -> None: ...

    async def evict(self, reason: str) -> None:
        """Disconnect the peer so that it reconnects and joins again."""

    async def moved(self) -> None:
        """Its session was resumed on another node: let go of the connection, not the session."""


# Whether a peer may still do something ("rooms", "publish" or "play") with a room or stream.
Allows = Callable[[Literal["rooms", "publish", "play"], str], bool]


class Withdrawn(NamedTuple):
    rooms: list[str]
    published: list[str]
    played: list[str]


class Resumed(NamedTuple):
    """A resumed session: `kept` (held all along) or `restored` (rebuilt from the client's claims
    after the server lost it), the messages held for it, and what it claimed but did not get back."""

    how: Literal["kept", "restored"]
    messages: tuple[Outbound, ...]
    lost_rooms: list[str]
    lost_streams: list[str]
    placeholders: list[str]  # sessions held for the peers named in a restore


# What a resume that cannot be honoured is told, by why its session is not there.
_NOT_RESUMED = (ErrorCode.SESSION_EXPIRED, "the session was not resumed in time and has ended; join afresh")
_REFUSALS: dict[str, tuple[ErrorCode, str]] = {
    "unknown": (
        ErrorCode.SESSION_EXPIRED,
        "no such session: it expired, or the server restarted longer than the grace ago; join afresh",
    ),
    "expired": _NOT_RESUMED,
    "node_lost": _NOT_RESUMED,
    "overflow": (
        ErrorCode.SESSION_OVERFLOW,
        "more was sent to this session while it was away than the server keeps; it has ended, join afresh",
    ),
    "closed": (ErrorCode.SESSION_ENDED, "the session was closed; join afresh"),
    "kicked": (ErrorCode.SESSION_ENDED, "the session was ended by an operator"),
    "revoked": (ErrorCode.SESSION_ENDED, "the session ended with its token; join afresh with a valid one"),
}


class RelayObserver(Protocol):
    def relayed_message(self, kind: str, seconds: float) -> None: ...


class LocalDelivery:
    """Delivers to peers connected to this process, and keeps what is sent to a held session (one
    whose connection dropped) in its `sessions`.

    This is the piece a cross-node delivery replaces: it only needs `attach`, `detach` and
    `deliver`.
    """

    def __init__(self, sessions: SessionStore) -> None:
        self.sessions = sessions
        self._sinks: dict[str, Sink] = {}

    def attach(self, peer_id: str, sink: Sink) -> Sink | None:
        """Deliver to `sink` from now on; returns the sink it replaces, if any."""
        previous = self._sinks.get(peer_id)
        self._sinks[peer_id] = sink
        return previous

    def detach(self, peer_id: str) -> None:
        self._sinks.pop(peer_id, None)

    async def deliver(self, peer_id: str, message: Outbound) -> bool:
        """Hand a message over; False when nobody holds that peer any more."""
        sink = self._sinks.get(peer_id)
        if sink is None:
            return await self.absent(peer_id, message)
        return await self.send(sink, peer_id, message)

    async def absent(self, peer_id: str, message: Outbound) -> bool:
        """For a peer with no connection here: kept for its session, if it has one."""
        if await self.sessions.keep(peer_id, message):
            return True
        log.debug("peer=%s gone before delivery of %s", peer_id, type(message).__name__)
        return False

    async def send(self, sink: Sink, peer_id: str, message: Outbound) -> bool:
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

    def holds(self, peer_id: str) -> bool:
        return peer_id in self._sinks

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
        node: str | None = None,
        observer: RelayObserver | None = None,
    ) -> None:
        self.store = store
        self.delivery = delivery
        self.room_capacity = room_capacity
        self.node = node  # this node's name in a cluster; None alone
        self.observer = observer
        self.sessions = delivery.sessions

    def peer_id(self, local_id: str) -> str:
        """The cluster-wide id of a peer born on this node (see signaling.core.peers)."""
        return peers.peer_id(self.node, local_id)

    def new_peer_id(self) -> str:
        """A fresh session's id: random, so that it says nothing about the connection under it."""
        return self.peer_id(secrets.token_urlsafe(15))

    async def holds_anything(self, peer_id: str) -> bool:
        if await self.store.rooms_of(peer_id):
            return True
        published, played = await self.store.peer_streams(peer_id)
        return bool(published or played)

    async def holdings(self, peer_id: str) -> tuple[list[tuple[str, list[Member]]], list[str], list[str]]:
        """The peer's rooms with their other members, and the ids of the streams it publishes
        and plays: what a resumed client is told it has."""
        rooms = [
            (room, [m for m in await self.store.members(room) if m.peer_id != peer_id])
            for room in await self.store.rooms_of(peer_id)
        ]
        published, played = await self.store.peer_streams(peer_id)
        return rooms, [stream_name(k) for k in published], [stream_name(k) for k in played]

    async def connect(self, peer_id: str, sink: Sink, *, resumable: bool = True) -> None:
        """Raises SignalingError when the session cannot be opened (the cluster's store out of
        reach), and then no longer delivers to `sink`."""
        self.delivery.attach(peer_id, sink)
        try:
            await self.sessions.open(peer_id, resumable)
        except BaseException:
            self.delivery.detach(peer_id)
            raise

    async def dropped(self, peer_id: str) -> bool:
        """The peer's connection is gone without a goodbye: hold its session for the grace
        (nobody is told); False if it ended now instead."""
        self.delivery.detach(peer_id)
        if await self.sessions.hold(peer_id):
            log.info("peer=%s held for %g s", peer_id, self.sessions.grace)
            return True
        await self.disconnect(peer_id)
        return False

    async def disconnect(
        self, peer_id: str, reason: GoneReason = "disconnected", *, ending: Ending = "closed"
    ) -> bool:
        """End the peer's session: forget it entirely and tell everyone it shared a room or a
        stream with; False if the shared state could not be reached (the cluster's reconciliation
        retries it)."""
        self.delivery.detach(peer_id)
        await self.sessions.end(peer_id, ending)
        try:
            removal = await self.store.remove_peer(peer_id)
        except SignalingError as error:
            log.warning("peer=%s could not be removed now: %s", peer_id, error.message)
            return False
        await self._announce_removal(peer_id, removal, reason)
        return True

    async def _announce_removal(self, peer_id: str, removal: Removal, reason: GoneReason) -> None:
        for stream in removal.published:
            await self._announce_unpublished(_named(stream), reason)
        for stream in removal.played:
            await self.delivery.deliver(
                stream.publisher, ViewerLeft(stream_name(stream.stream_id), peer_id, reason)
            )
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
        for key in published:
            if stream_room(key) == room:  # the key says where a stream was published
                await self._unpublish(peer_id, key)
        for key in playing:
            if stream_room(key) == room:
                await self._stop_playing(peer_id, key)
        remaining = await self.store.leave(room, peer_id)
        log.info("peer=%s room=%s left", peer_id, room)
        await self._tell(remaining, PeerLeft(room, peer_id, reason))

    # Streams: the store holds them by `stream_key`; clients know them by `stream_name`, and every
    # stream id a client gives is resolved from where it stands (`_own`, `_visible`).

    async def publish(
        self, peer_id: str, stream_id: str, *, room: str | None = None, max_viewers: int | None = None
    ) -> Stream:
        # One stream per id for a peer, whatever its rooms: `stop` and relays name it by its id.
        published, played = await self._mine(peer_id, stream_id)
        if published is not None:
            raise SignalingError(ErrorCode.ALREADY_PUBLISHING, f"already publishing {stream_id!r}")
        if played is not None:
            raise SignalingError(
                ErrorCode.ALREADY_PLAYING,
                f"you play a stream {stream_id!r}; stop it to publish one by that id",
            )
        if room is not None and room not in await self.store.rooms_of(peer_id):
            # Before the store looks the stream up: from outside, a room's streams are not there.
            raise SignalingError(ErrorCode.NOT_IN_ROOM, f"not in room {room!r}")
        stream = await self.store.publish(stream_key(room, stream_id), peer_id, room, max_viewers)
        log.info(
            "peer=%s stream=%s published (room %s, viewers %s)",
            peer_id,
            stream_id,
            room,
            max_viewers or "any",
        )
        if room is not None:
            await self._tell(await self._others(room, peer_id), StreamPublished(room, stream_id, peer_id))
        return _named(stream)

    async def _unpublish(self, peer_id: str, key: str, reason: EndReason = "stopped") -> Stream:
        stream = _named(await self.store.unpublish(key, peer_id))
        log.info("peer=%s stream=%s unpublished", peer_id, stream.stream_id)
        await self._announce_unpublished(stream, reason)
        return stream

    async def play(self, viewer: str, stream_id: str) -> Stream:
        published, played = await self._mine(viewer, stream_id)
        if published is not None:
            raise SignalingError(
                ErrorCode.ALREADY_PUBLISHING, f"you publish {stream_id!r}; play another stream"
            )
        if played is not None:
            raise SignalingError(ErrorCode.ALREADY_PLAYING, f"already playing {stream_id!r}")
        stream = _named(await self.store.play(await self._visible(viewer, stream_id), viewer))
        log.info("peer=%s stream=%s playing", viewer, stream_id)
        await self.delivery.deliver(stream.publisher, ViewerJoined(stream_id, viewer))
        return stream

    async def _stop_playing(self, viewer: str, key: str, reason: EndReason = "stopped") -> Stream:
        stream = _named(await self.store.stop_playing(key, viewer))
        log.info("peer=%s stream=%s stopped playing", viewer, stream.stream_id)
        await self.delivery.deliver(stream.publisher, ViewerLeft(stream.stream_id, viewer, reason))
        return stream

    async def stop(self, peer_id: str, stream_id: str) -> Literal["published", "played"]:
        """End whichever the peer does with the stream: publish it, or play it."""
        published, played = await self._mine(peer_id, stream_id)
        if published is not None:
            await self._unpublish(peer_id, published)
            return "published"
        if played is not None:
            await self._stop_playing(peer_id, played)
            return "played"
        raise SignalingError(ErrorCode.NOT_STREAMING, f"you neither publish nor play {stream_id!r}")

    async def stream(self, peer_id: str, stream_id: str) -> Stream | None:
        """The stream by that id that the peer can see: one in a room of its, else one in none."""
        stream = await self.store.stream(await self._visible(peer_id, stream_id))
        return None if stream is None else _named(stream)

    async def room_streams(self, room: str) -> list[Stream]:
        return [_named(stream) for stream in await self.store.room_streams(room)]

    # What operators see (signaling.operations.admin): through the hub like everything else.

    async def members(self, room: str) -> list[Member]:
        return await self.store.members(room)

    async def room_names(self) -> list[str]:
        return await self.store.room_names()

    async def stats(self) -> tuple[int, int]:
        """Rooms with a peer, and peers in a room or stream (cluster-wide with Redis)."""
        return await self.store.stats()

    async def is_published(self, stream_id: str, room: str | None) -> bool:
        return await self.store.stream(stream_key(room, stream_id)) is not None

    async def _mine(self, peer_id: str, stream_id: str) -> tuple[str | None, str | None]:
        """The keys of the streams by that id the peer publishes and plays (at most one of them)."""
        published, playing = await self.store.peer_streams(peer_id)
        return _find(published, stream_id), _find(playing, stream_id)

    async def _visible(self, peer_id: str, stream_id: str) -> str:
        """The key of the stream by that id the peer can see, first in its own rooms; the id
        itself (a stream in no room) if there is none."""
        for room in await self.store.rooms_of(peer_id):
            key = stream_key(room, stream_id)
            if await self.store.stream(key) is not None:
                return key
        return stream_id

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
        if stream_id is not None:
            published, played = await self._mine(sender, stream_id)
            stream_id = published or played or stream_id
        route = await self.store.route(sender, target, room=room, stream_id=stream_id)
        return await self._deliver(sender, target, signal, route, started)

    async def relay_through(self, peer_id: str, name: str, signal: Signal) -> tuple[Route, bool]:
        """Relay to the one peer on the other side of the stream or two-peer room `name` (for
        protocols that address a call by its name, as Ant Media's streamId does); returns the
        route, and whether the sender plays that stream.

        A stream's publisher reaches its single viewer and a viewer its publisher; a peer in a
        room reaches the only other member.
        """
        started = time.perf_counter()
        found = await self.store.counterparts(peer_id, name)
        if found is None:
            raise SignalingError(ErrorCode.NOT_JOINED, f"not in a room or stream named {name!r}")
        target = self._single(found.peers, name)
        return await self._deliver(peer_id, target, signal, found.route, started), found.plays

    async def _deliver(self, sender: str, target: str, signal: Signal, route: Route, started: float) -> Route:
        if route.stream_id is not None:
            route = Route(stream_id=stream_name(route.stream_id))
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
        # Handed over when a node holds the peer, even one that held no room or stream; the
        # session ends after that (its end would leave nothing to deliver it through).
        reached = await self.delivery.deliver(peer_id, Kicked(reason))
        await self.sessions.end(peer_id, "revoked" if gone == "expired" else "kicked")
        if reached or removal.rooms or removal.published or removal.played:
            log.warning("peer=%s kicked: %s", peer_id, reason)
            return True
        return False

    async def withdraw(self, peer_id: str, allows: Allows) -> Withdrawn:
        """Leave the rooms and end the streams that `allows` no longer covers (a narrower or an
        expired token), the streams of those rooms with them; the others are told with reason
        "expired". Returns what was given up. What ends meanwhile by itself is skipped."""
        rooms = [room for room in await self.store.rooms_of(peer_id) if not allows("rooms", room)]
        published, playing = await self.store.peer_streams(peer_id)

        def ends(key: str, action: Literal["publish", "play"]) -> bool:
            return stream_room(key) in rooms or not allows(action, stream_name(key))

        withdrawn = Withdrawn(rooms, [], [])
        for key in (key for key in published if ends(key, "publish")):
            with contextlib.suppress(SignalingError):
                withdrawn.published.append((await self._unpublish(peer_id, key, "expired")).stream_id)
        for key in (key for key in playing if ends(key, "play")):
            with contextlib.suppress(SignalingError):
                withdrawn.played.append((await self._stop_playing(peer_id, key, "expired")).stream_id)
        for room in rooms:
            with contextlib.suppress(SignalingError):
                await self.leave(peer_id, room, "expired")
        if any(withdrawn):
            log.info("peer=%s gave up what its token no longer grants: %s", peer_id, withdrawn)
        return withdrawn

    async def expire(self, peer_id: str) -> None:
        """The peer's token expired: out of everything (the others hear reason "expired"), told,
        and disconnected by the node that holds it, even if the shared state is out of reach."""
        reason = "the token expired: connect again with a fresh one"
        try:
            await self.kick(peer_id, reason, gone="expired")
        except SignalingError as error:
            log.warning("peer=%s expired, but could not be removed now: %s", peer_id, error.message)
            await self.delivery.deliver(peer_id, Kicked(reason))  # its disconnect retries it

    # Sessions

    async def sweep(self) -> None:
        """End the held sessions whose grace is over (or that overflowed): the others are told
        the peer left, as if it had just disconnected."""
        for peer_id, why in await self.sessions.due():
            log.info("peer=%s session ended: %s", peer_id, why)
            await self.disconnect(peer_id, "node_lost" if why == "node_lost" else "disconnected", ending=why)

    async def resume(self, peer_id: str, sink: Sink, claims: Claims, *, placeholders: int = 0) -> Resumed:
        """Give a session back to a new connection (`sink`), whose owner the caller has checked.

        Delivery goes to `sink` from the start, so nothing sent meanwhile is lost; the caller
        sends the returned held messages before what `sink` receives from now on. Rebuilding a
        session from `claims` holds at most `placeholders` sessions for the peers they name.
        """
        previous = self.delivery.attach(peer_id, sink)
        try:
            found = await self.sessions.resume(peer_id)
            if found.found == "unknown" and await self.sessions.restore(peer_id):
                how: Literal["kept", "restored"] = "restored"
            elif found.found == "kept":
                how = "restored" if found.placeholder else "kept"
            else:
                code, message = _REFUSALS[found.found]
                raise SignalingError(code, message)
        except BaseException:
            if previous is not None:
                self.delivery.attach(peer_id, previous)
            else:
                self.delivery.detach(peer_id)
            raise
        if previous is not None and previous is not sink:
            await previous.evict("the session was resumed on another connection")
        resumed = Resumed(how, found.messages, [], [], [])
        if how == "restored":
            await self._restore(peer_id, claims, resumed, placeholders)
        log.info("peer=%s resumed (%s, %d held messages)", peer_id, how, len(found.messages))
        return resumed

    async def _restore(self, peer_id: str, claims: Claims, resumed: Resumed, budget: int) -> None:
        """Rebuild what a session held from its owner's claims, quietly: the others were in the
        call all along. What it claims, it gets only where it may be: in rooms it is seated in
        again (a room's streams included), within every cap. The peers it names there that
        nobody knows are held for their owners to resume, as if they had disconnected (at most
        `budget` of them). What another peer's claims gave this session and its own claims do
        not name is given up, and announced. `resumed` collects what was not rebuilt."""
        rooms = await self.store.rooms_of(peer_id)
        for claim in claims.rooms:
            try:
                if claim.room in rooms:  # a placeholder's seat: it now has its metadata
                    await self.store.leave(claim.room, peer_id)
                await self.store.join(claim.room, peer_id, dict(claim.metadata), self.room_capacity)
            except SignalingError:
                resumed.lost_rooms.append(claim.room)
        seated = set(await self.store.rooms_of(peer_id))
        for claim in claims.rooms:
            if claim.room in seated:
                for other in claim.peers:
                    await self._hold_for(other, claim.room, resumed.placeholders, budget)
        published, playing = await self.store.peer_streams(peer_id)
        for stream in claims.published:
            key = stream_key(stream.room, stream.stream_id)
            try:
                if stream.room is not None and stream.room not in seated:
                    raise SignalingError(ErrorCode.NOT_IN_ROOM, "not in that room")
                if key not in published:
                    await self.store.publish(key, peer_id, stream.room, stream.max_viewers)
            except SignalingError:
                resumed.lost_streams.append(stream.stream_id)
                continue
            for viewer in stream.viewers:
                if await self._hold_for(viewer, stream.room, resumed.placeholders, budget):
                    with contextlib.suppress(SignalingError):
                        await self.store.play(key, viewer)
        for played in claims.playing:
            key = stream_key(played.room, played.stream_id)
            try:
                if played.room is not None and played.room not in seated:
                    raise SignalingError(ErrorCode.NOT_IN_ROOM, "not in that room")
                if key not in playing:
                    existing = await self.store.stream(key)
                    if existing is None and await self._hold_for(
                        played.publisher, played.room, resumed.placeholders, budget
                    ):
                        await self.store.publish(key, played.publisher, played.room, None)
                    await self.store.play(key, peer_id)
            except SignalingError:
                resumed.lost_streams.append(played.stream_id)
        await self._give_up_unclaimed(peer_id, claims)

    async def _hold_for(self, other: str, room: str | None, made: list[str], budget: int) -> bool:
        """Whether a peer named in a restore is there (in `room`, if any), holding a session for
        it if nobody knows it: only for a peer that can resume (not an Ant Media SDK's, which
        comes back under a new id), within `budget`, and where the room has a seat for it."""
        members = [m.peer_id for m in await self.store.members(room)] if room is not None else []
        if other in members:
            return True
        if not peers.resumable(other) or len(made) >= budget or len(members) >= self.room_capacity:
            return False
        if not await self.sessions.placeholder(other):
            return False
        if other not in made:
            made.append(other)
        if room is not None:
            try:
                await self.store.join(room, other, {}, self.room_capacity)
            except SignalingError:
                return False
        return True

    async def _give_up_unclaimed(self, peer_id: str, claims: Claims) -> None:
        """What others' claims seated this peer in and its own claims do not name: it is not
        there, so it leaves, and those who believed otherwise are told."""
        published, playing = await self.store.peer_streams(peer_id)
        claimed_published = {stream_key(c.room, c.stream_id) for c in claims.published}
        claimed_playing = {stream_key(c.room, c.stream_id) for c in claims.playing}
        for key in published:
            if key not in claimed_published:
                with contextlib.suppress(SignalingError):
                    await self._unpublish(peer_id, key, "disconnected")
        for key in playing:
            if key not in claimed_playing:
                with contextlib.suppress(SignalingError):
                    await self._stop_playing(peer_id, key, "disconnected")
        claimed_rooms = {c.room for c in claims.rooms}
        for room in await self.store.rooms_of(peer_id):
            if room not in claimed_rooms:
                with contextlib.suppress(SignalingError):
                    await self.leave(peer_id, room, "disconnected")

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


def _named(stream: Stream) -> Stream:
    """The stream as clients know it: by its id, not its store key."""
    return stream if "/" not in stream.stream_id else replace(stream, stream_id=stream_name(stream.stream_id))


def _find(keys: list[str], stream_id: str) -> str | None:
    return next((key for key in keys if stream_name(key) == stream_id), None)


def _kind(signal: Signal) -> str:
    match signal:
        case SessionDescription(type=kind):
            return kind
        case IceCandidate():
            return "candidate"
    return "message"
