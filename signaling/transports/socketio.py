"""The socket.io transport: parse each event with its schema, call the hub, reply with an ack.

Every client event goes through `SocketIOTransport.dispatch`, so validation errors, unknown
events and internal failures are all answered in one place, the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import socketio

from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.hub import Hub, Withdrawn
from signaling.core.limits import Limits
from signaling.core.messages import (
    Candidate,
    DescriptionType,
    IceCandidate,
    Kicked,
    Outbound,
    PeerJoined,
    PeerLeft,
    PeerMessage,
    Relayed,
    SessionDescription,
    Signal,
    StreamEnded,
    StreamPublished,
    StreamUnpublished,
    ViewerJoined,
    ViewerLeft,
    candidate_fields,
)
from signaling.core.sessions import Claims
from signaling.security.guard import Guard, Session
from signaling.security.ratelimit import AddressLimiter
from signaling.security.session_keys import SessionKeys
from signaling.security.turn import IceServers
from signaling.transports import fastjson
from signaling.transports.engine import DirectSocket, Reply, SignalingServer
from signaling.transports.events import Event, Pipeline
from signaling.transports.schemas import build_schemas

log = logging.getLogger(__name__)


def render(message: Outbound) -> tuple[str, dict[str, Any]]:
    """The socket.io event and payload a peer receives for a core message."""
    match message:
        case Relayed(sender=sender, target=target, route=route, signal=signal):
            body: dict[str, Any] = {"from": sender, "target": target}
            if route.room is not None:
                body["room"] = route.room
            else:
                body["streamId"] = route.stream_id
            match signal:
                case SessionDescription(type=kind, sdp=sdp, as_object=as_object):
                    body["sdp"] = {"type": kind, "sdp": sdp} if as_object else sdp
                    return kind, body
                case IceCandidate(candidate=candidate):
                    body["candidate"] = None if candidate is None else candidate_fields(candidate)
                    return "ice-candidate", body
                case PeerMessage(definition=definition, data=data):
                    body["definition"] = definition
                    body["data"] = data
                    return "peer-message", body
        case PeerJoined(room=room, peer_id=peer_id, metadata=metadata):
            return "peer-joined", {"room": room, "peerId": peer_id, "metadata": metadata}
        case PeerLeft(room=room, peer_id=peer_id, reason=reason):
            return "peer-left", {"room": room, "peerId": peer_id, "reason": reason}
        case StreamPublished(room=room, stream_id=stream_id, publisher=publisher):
            return "stream-published", {"room": room, "streamId": stream_id, "peerId": publisher}
        case StreamUnpublished(room=room, stream_id=stream_id, publisher=publisher):
            return "stream-unpublished", {"room": room, "streamId": stream_id, "peerId": publisher}
        case ViewerJoined(stream_id=stream_id, viewer=viewer):
            return "viewer-joined", {"streamId": stream_id, "viewerId": viewer}
        case ViewerLeft(stream_id=stream_id, viewer=viewer, reason=reason):
            return "viewer-left", {"streamId": stream_id, "viewerId": viewer, "reason": reason}
        case StreamEnded(stream_id=stream_id, reason=reason):
            return "stream-ended", {"streamId": stream_id, "reason": reason}
    raise TypeError(f"no socket.io rendering for {message!r}")


def _description(kind: DescriptionType, sdp: str | dict[str, str]) -> SessionDescription:
    """A validated `sdp`: the text, or an RTCSessionDescriptionInit whose type is `kind`."""
    if isinstance(sdp, dict):
        return SessionDescription(kind, sdp["sdp"], as_object=True)
    return SessionDescription(kind, sdp)


class SocketIOSink:
    __slots__ = ("_session", "_sid", "_sio", "_unmap", "_waiting")  # one per connection

    def __init__(self, sio: SignalingServer, sid: str, unmap: Callable[[str], object]) -> None:
        self._sio = sio
        self._sid = sid
        self._unmap = unmap  # forgets that this connection carries the session
        self._session: DirectSocket | None = None  # known once the namespace connection is complete
        # While a resume is answered: what arrives waits here, to follow the ack and the messages
        # held for the session, in that order.
        self._waiting: list[Outbound] | None = None

    def wait(self) -> None:
        self._waiting = []

    async def release(self, held: tuple[Outbound, ...]) -> None:
        """Send what was held for the session, then what came while the resume was answered."""
        pending = list(held)
        while pending or self._waiting:
            pending += self._waiting or []
            self._waiting = []  # what arrives while these go out waits for the next round
            for message in pending:
                await self._write(message)
            pending = []
        self._waiting = None

    async def send(self, message: Outbound) -> None:
        if self._waiting is not None:
            self._waiting.append(message)
            return
        await self._write(message)

    async def _write(self, message: Outbound) -> None:
        socket = self._session = self._session or self._sio.session(self._sid)
        if socket is None or socket.closed:
            return  # gone; its disconnect is being handled
        if isinstance(message, Kicked):
            await self._sio.emit("kicked", {"reason": message.reason}, to=self._sid)
            await self._sio.disconnect(self._sid)
            return
        event, payload = render(message)
        # One recipient, JSON only (all of it validated): the socket.io EVENT packet ("2" + JSON,
        # default namespace) goes straight to its engine.io session, skipping the room lookup and
        # the binary scan of a general emit.
        await socket.send_message(b"2" + fastjson.dumpb([event, payload]))

    async def evict(self, reason: str) -> None:
        # Cutting the connection makes socket.io clients reconnect (and resume) by themselves.
        self._sio.drop(self._sid, reason)

    async def moved(self) -> None:
        # Resumed on another node: the connection goes, the session lives on there.
        self._unmap(self._sid)
        self._sio.drop(self._sid, "the session was resumed on another node")


class SocketIOTransport:
    def __init__(
        self,
        hub: Hub,
        sio: SignalingServer,
        *,
        limits: Limits,
        guard: Guard,
        ice: IceServers,
        keys: SessionKeys,
    ) -> None:
        self._hub = hub
        self._sio = sio
        self._guard = guard
        self._keys = keys
        # A connection (socket id) carries one session (peer id) at a time; a resume moves a
        # session onto another connection.
        self._peers: dict[str, str] = {}  # sid -> peer
        self._sids: dict[str, str] = {}  # peer -> sid
        self._connections: dict[str, Session] = {}  # sid -> its address, rates and grants
        self._closing: set[str] = set()  # sids cut off for abuse: their sessions end with them
        # Held sessions per address, as many as it may have connections: nobody can pile up held
        # sessions (and what is kept for them) without end. A held session counts until it is
        # resumed here, or for the grace.
        self._held = AddressLimiter(guard.connections_per_address)
        self._held_addresses: dict[str, tuple[str, asyncio.TimerHandle]] = {}  # peer -> address, timer
        self._ice = ice
        self._ice_expiry: dict[str, float] = {}  # sid -> when the credentials it was given expire
        self._events = Pipeline(self, self.EVENTS, build_schemas(limits), guard, self._flooded)
        sio.dispatch = self.dispatch
        sio.guard = guard
        sio.on_bad_packet = self._bad_packet
        sio.on_connected = self._connected
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        peer = self._hub.new_peer_id()
        address = environ.get("REMOTE_ADDR") or "unknown"  # set by SignalingServer._handle_eio_connect
        token = auth.get("token") if isinstance(auth, dict) else None
        limiter = self._sio.limiter(sid) or self._guard.limiter()
        self._peers[sid], self._sids[peer] = peer, sid  # known from here: a flooder is cut off by it
        try:
            self._events.take(peer, limiter, address, "control")  # connects count, refused or not
            if self._guard.auth_required and not token:
                self._guard.refused("socketio", ErrorCode.UNAUTHORIZED)
                raise SignalingError(
                    ErrorCode.UNAUTHORIZED, 'a token is required: connect with auth {"token": ...}'
                )
            connection = self._connections[sid] = self._guard.open(address, "socketio", token, limiter)
        except SignalingError as error:
            self._unmap(sid)
            log.warning(
                "peer=%s from %s refused: %s", peer, address, error.message, extra={"code": error.code}
            )
            # socket.io clients get {message, data: {code, message}} in their connect_error event.
            raise socketio.exceptions.ConnectionRefusedError(error.message, error.to_dict()) from None
        log.info("peer=%s connected from %s", peer, address)
        await self._hub.connect(peer, SocketIOSink(self._sio, sid, self._unmap))
        self._guard.watch_expiry(
            connection, partial(self._expired, sid), partial(self._narrowed, sid, connection)
        )

    async def _connected(self, sid: str) -> None:
        """The client has its CONNECT: the first thing it hears is its session, and how to resume
        it."""
        peer = self._peers.get(sid)
        if peer is not None:
            session = {"peerId": peer, "secret": self._keys.secret(peer), "grace": self._hub.sessions.grace}
            await self._sio.emit("session", session, to=sid)

    async def disconnect(self, sid: str, reason: str = "") -> None:
        self._ice_expiry.pop(sid, None)
        self._sio.after_reply.pop(sid, None)
        connection = self._connections.pop(sid, None)
        if connection is not None:
            self._guard.close(connection)
        peer = self._unmap(sid)
        if peer is None:
            return  # its session was resumed on another connection
        log.info("peer=%s disconnected (%s)", peer, reason)
        # A goodbye (the client's own disconnect) or a cut-off for abuse ends the session now;
        # any other loss of the connection holds it for the client to resume, within the
        # address's share of held sessions.
        goodbye = reason == self._sio.reason.CLIENT_DISCONNECT or sid in self._closing
        self._closing.discard(sid)
        address = connection.address if connection is not None else None
        try:
            if goodbye or address is None or not self._held.acquire(address):
                await self._hub.disconnect(peer)
            elif await self._hub.dropped(peer):
                self._charge_held(peer, address, acquired=True)
            else:
                self._held.release(address)
        except SignalingError as error:
            # The shared state is out of reach: the node's reconciliation settles it later.
            if address is not None and peer not in self._held_addresses and not goodbye:
                self._held.release(address)
            log.warning("peer=%s: its session could not be settled now: %s", peer, error.message)

    def _charge_held(self, peer: str, address: str, *, acquired: bool = False) -> None:
        """Count a held session against its address (the slot is taken already if `acquired`),
        until it is resumed here or the grace is over."""
        if peer in self._held_addresses or not (acquired or self._held.acquire(address)):
            return
        timer = asyncio.get_running_loop().call_later(self._hub.sessions.grace, self._release_held, peer)
        self._held_addresses[peer] = (address, timer)

    def _unmap(self, sid: str) -> str | None:
        """Forget which session a connection carries: its peer, if the connection still had it."""
        peer = self._peers.pop(sid, None)
        if peer is None or self._sids.get(peer) != sid:
            return None
        del self._sids[peer]
        return peer

    def _release_held(self, peer: str) -> None:
        held = self._held_addresses.pop(peer, None)
        if held is not None:
            address, timer = held
            timer.cancel()
            self._held.release(address)

    async def dispatch(self, sid: str, data: list[Any]) -> Reply:
        """Answer one client event; handlers get the sender's peer id, not the socket id."""
        peer = self._peers.get(sid, sid)
        event = data[0] if data else None
        name = event[:64] if isinstance(event, str) else repr(event)[:64]
        try:
            connection = self._connections.get(sid)
            if connection is None or sid not in self._peers:  # its connect was refused, or it is going
                raise SignalingError(ErrorCode.UNAUTHORIZED, "not connected")
            result = await self._events.run(
                peer, connection, event if isinstance(event, str) else "", tuple(data[1:]), self._unknown
            )
            return {"ok": True, **result}
        except SignalingError as error:
            log.warning(
                "peer=%s event=%s refused: %s: %s",
                peer,
                name,
                error.code,
                error.message,
                extra={"code": error.code},
            )
            self._guard.refused("socketio", error.code)
            return {"ok": False, "error": error.to_dict()}
        except Exception:
            log.exception("peer=%s event=%s failed", peer, name)
            internal = SignalingError(ErrorCode.INTERNAL_ERROR, "the server failed to handle this event")
            return {"ok": False, "error": internal.to_dict()}

    def _unknown(self, name: str) -> SignalingError:
        return SignalingError(
            ErrorCode.UNKNOWN_EVENT,
            f"unknown event {name[:64]!r}; this server accepts {', '.join(self._events.names)}",
        )

    def _issue_ice(self, peer: str) -> list[dict[str, Any]]:
        """ICE servers for a peer about to open connections; refreshed before they expire."""
        sid = self._sids[peer]
        issued = self._ice.issue(self._user(sid, peer))
        self._ice_expiry[sid] = issued.expires_at
        return issued.servers

    def _user(self, sid: str, peer: str) -> str:
        connection = self._connections.get(sid)
        return connection.user(peer) if connection is not None else peer

    async def refresh_ice(self) -> None:
        """Send fresh ICE servers to every client whose TURN credentials are about to expire."""
        for sid, expires_at in list(self._ice_expiry.items()):
            peer = self._peers.get(sid)
            if peer is not None and self._ice.due(expires_at):
                issued = self._ice.issue(self._user(sid, peer))
                self._ice_expiry[sid] = issued.expires_at
                await self._sio.emit("ice-servers", {"iceServers": issued.servers}, to=sid)

    def _bad_packet(self, sid: str) -> None:
        connection = self._connections.get(sid)
        peer = self._peers.get(sid)
        if connection is None or peer is None:
            return
        # Counted as a strike (a flooder is cut off); the refusal itself has been logged already.
        with contextlib.suppress(SignalingError):
            self._events.admit(peer, connection, "control")

    def _flooded(self, peer: str) -> None:
        sid = self._sids.get(peer)
        if sid is not None:
            self._closing.add(sid)
            self._sio.drop(sid, "kept flooding after rate_limited errors")

    async def _expired(self, sid: str) -> None:
        peer = self._peers.get(sid)
        if peer is not None:
            await self._hub.expire(peer)

    async def _narrowed(self, sid: str, connection: Session) -> None:
        peer = self._peers.get(sid)
        if peer is not None:
            await self._hub.withdraw(peer, self._guard.allows(connection))

    # The handlers of the events in EVENTS (below): each gets the sender's peer id and the
    # validated payload, and returns what the ack adds to {ok: true}.

    async def authenticate(self, peer: str, request: dict[str, Any]) -> Reply:
        # A fresh token replaces the connection's grant, which may cover less than the old one.
        connection = self._connections[self._sids[peer]]
        withdrawn = Withdrawn([], [], [])
        if self._guard.authenticate(connection, request["token"]):
            withdrawn = await self._hub.withdraw(peer, self._guard.allows(connection))
        return {"revoked": {"rooms": withdrawn.rooms, "streams": [*withdrawn.published, *withdrawn.played]}}

    async def resume(self, peer: str, request: dict[str, Any]) -> Reply:
        """Take over a session whose connection dropped: this connection becomes that peer."""
        old = request["peerId"]
        if not self._keys.verify(old, request["secret"]):
            raise SignalingError(
                ErrorCode.INVALID_SESSION, "that secret does not prove that session; join afresh"
            )
        if old == peer or await self._hub.holds_anything(peer):
            raise SignalingError(
                ErrorCode.SESSION_IN_USE,
                "this connection already holds rooms or streams: resume first, on a fresh connection",
            )
        sid = self._sids[peer]
        connection = self._connections[sid]
        claims = request["restore"]
        if self._guard.auth_required:
            await self._check_grant(old, connection, claims)
        sink = SocketIOSink(self._sio, sid, self._unmap)
        sink.wait()
        resumed = await self._hub.resume(
            old, sink, claims, placeholders=self._held.available(connection.address)
        )
        # This connection is the resumed session from now on; its own fresh one never held anything.
        # Nothing below may fail the reply: the client would take its fresh session back while the
        # server gave this connection the old one.
        self._sio.after_reply[sid] = partial(sink.release, resumed.messages)
        del self._sids[peer]
        self._peers[sid], self._sids[old] = old, sid
        self._release_held(old)
        for placeholder in resumed.placeholders:
            self._charge_held(placeholder, connection.address)
        with contextlib.suppress(SignalingError):
            await self._hub.disconnect(peer)  # else the node's reconciliation does it
        try:
            rooms, published, played = await self._hub.holdings(old)
        except SignalingError:
            rooms, published, played = [], [], []  # the client rejoins what it misses
        return {
            "peerId": old,
            "resumed": resumed.how,
            "rooms": [
                {"room": room, "peers": [{"peerId": m.peer_id, "metadata": m.metadata} for m in members]}
                for room, members in rooms
            ],
            "published": published,
            "playing": played,
            "lost": {"rooms": resumed.lost_rooms, "streams": resumed.lost_streams},
            "iceServers": self._issue_ice(old),
        }

    async def _check_grant(self, peer: str, connection: Session, claims: Claims) -> None:
        """JWT grants apply to a resumed session: the connection's token must cover all it holds
        (or claims, to rebuild it), else the session ends and the resume is refused."""
        allows = self._guard.allows(connection)
        rooms, published, played = await self._hub.holdings(peer)
        wanted = [
            *(("rooms", room) for room, _ in rooms),
            *(("rooms", claim.room) for claim in claims.rooms),
            *(("publish", stream) for stream in published),
            *(("publish", claim.stream_id) for claim in claims.published),
            *(("play", stream) for stream in played),
            *(("play", claim.stream_id) for claim in claims.playing),
        ]
        refused = [name for action, name in wanted if not allows(action, name)]  # type: ignore[arg-type]
        if refused:
            await self._hub.disconnect(peer, "expired", ending="revoked")
            raise SignalingError(
                ErrorCode.FORBIDDEN,
                f"your token does not grant {refused[0]!r}, which the session holds; it has ended",
            )

    async def join(self, peer: str, request: dict[str, Any]) -> Reply:
        room = request["room"]
        existing = await self._hub.join(peer, room, request["metadata"])
        streams = await self._hub.room_streams(room)
        return {
            "peerId": peer,
            "room": room,
            "peers": [{"peerId": m.peer_id, "metadata": m.metadata} for m in existing],
            "streams": [{"streamId": s.stream_id, "peerId": s.publisher} for s in streams],
            "iceServers": self._issue_ice(peer),
        }

    async def leave(self, peer: str, request: dict[str, Any]) -> Reply:
        await self._hub.leave(peer, request["room"])
        return {"room": request["room"]}

    async def offer(self, peer: str, request: dict[str, Any]) -> Reply:
        return await self._relay(peer, request, _description("offer", request["sdp"]))

    async def answer(self, peer: str, request: dict[str, Any]) -> Reply:
        return await self._relay(peer, request, _description("answer", request["sdp"]))

    async def relay_candidate(self, peer: str, request: dict[str, Any]) -> Reply:
        body = request["candidate"]
        candidate = (
            None
            if body is None
            else Candidate(
                candidate=body["candidate"],
                sdp_mid=body["sdpMid"],
                sdp_mline_index=body["sdpMLineIndex"],
                username_fragment=body["usernameFragment"],
            )
        )
        return await self._relay(peer, request, IceCandidate(candidate))

    async def relay_peer_message(self, peer: str, request: dict[str, Any]) -> Reply:
        return await self._relay(peer, request, PeerMessage(request["definition"], request["data"]))

    async def _relay(self, peer: str, request: dict[str, Any], signal: Signal) -> Reply:
        route = await self._hub.relay(
            peer, request["target"], signal, room=request["room"], stream_id=request["streamId"]
        )
        return {"room": route.room} if route.room is not None else {"streamId": route.stream_id}

    async def publish(self, peer: str, request: dict[str, Any]) -> Reply:
        stream = await self._hub.publish(
            peer, request["streamId"], room=request["room"], max_viewers=request["maxViewers"]
        )
        return {"streamId": stream.stream_id, "room": stream.room, "iceServers": self._issue_ice(peer)}

    async def play(self, peer: str, request: dict[str, Any]) -> Reply:
        stream = await self._hub.play(peer, request["streamId"])
        return {
            "streamId": stream.stream_id,
            "publisher": stream.publisher,
            "room": stream.room,
            "iceServers": self._issue_ice(peer),
        }

    async def stop(self, peer: str, request: dict[str, Any]) -> Reply:
        ended = await self._hub.stop(peer, request["streamId"])
        return {"streamId": request["streamId"], "stopped": ended}

    # Every event a client may send: one row each (see signaling.transports.events); its schema
    # is the one of that name in signaling.transports.schemas.
    EVENTS: tuple[Event[SocketIOTransport, str, Reply], ...] = (
        Event("join", join, access=("rooms", "room")),
        Event("leave", leave, access="open"),
        Event("offer", offer, kind="relay"),
        Event("answer", answer, kind="relay"),
        Event("ice-candidate", relay_candidate, kind="relay"),
        Event("peer-message", relay_peer_message, kind="relay"),
        Event("publish", publish, access=("publish", "streamId")),
        Event("play", play, access=("play", "streamId")),
        Event("stop", stop, access="open"),
        Event("authenticate", authenticate, access="open"),
        Event("resume", resume),
    )
