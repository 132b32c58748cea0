"""The socket.io transport: parse each event with its schema, call the hub, reply with an ack.

Every client event goes through `SocketIOTransport.dispatch`, so validation errors, unknown
events and internal failures are all answered in one place, the same way.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from typing import Any

import socketio

from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.hub import Hub, Withdrawn
from signaling.core.limits import Limits
from signaling.core.messages import (
    Candidate,
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
from signaling.core.peers import local_id
from signaling.security.guard import Guard, Session
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
                case SessionDescription(type=kind, sdp=sdp):
                    body["sdp"] = sdp
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


class SocketIOSink:
    def __init__(self, sio: SignalingServer, sid: str) -> None:
        self._sio = sio
        self._sid = sid
        self._session: DirectSocket | None = None  # known once the namespace connection is complete

    async def send(self, message: Outbound) -> None:
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
        # Cutting the connection makes socket.io clients reconnect by themselves.
        self._sio.drop(self._sid, reason)


class SocketIOTransport:
    def __init__(
        self,
        hub: Hub,
        sio: SignalingServer,
        *,
        limits: Limits,
        guard: Guard,
        ice: IceServers,
    ) -> None:
        self._hub = hub
        self._sio = sio
        self._guard = guard
        self._sessions: dict[str, Session] = {}
        self._ice = ice
        self._ice_expiry: dict[str, float] = {}  # sid -> when the credentials it was given expire
        self._events = Pipeline(self, self.EVENTS, build_schemas(limits), guard, self._flooded)
        sio.dispatch = self.dispatch
        sio.guard = guard
        sio.on_bad_packet = self._bad_packet
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        peer = self._hub.peer_id(sid)
        request = environ.get("aiohttp.request")
        address = (request.remote if request is not None else None) or "unknown"
        token = auth.get("token") if isinstance(auth, dict) else None
        limiter = self._sio.limiter(sid) or self._guard.limiter()
        try:
            self._events.take(peer, limiter, address, "control")  # connects count, refused or not
            if self._guard.auth_required and not token:
                self._guard.refused("socketio", ErrorCode.UNAUTHORIZED)
                raise SignalingError(
                    ErrorCode.UNAUTHORIZED, 'a token is required: connect with auth {"token": ...}'
                )
            session = self._sessions[sid] = self._guard.open(address, "socketio", token, limiter)
        except SignalingError as error:
            log.warning(
                "peer=%s from %s refused: %s", peer, address, error.message, extra={"code": error.code}
            )
            # socket.io clients get {message, data: {code, message}} in their connect_error event.
            raise socketio.exceptions.ConnectionRefusedError(error.message, error.to_dict()) from None
        log.info("peer=%s connected from %s", peer, address)
        self._hub.connect(peer, SocketIOSink(self._sio, sid))
        self._guard.watch_expiry(
            session, partial(self._hub.expire, peer), partial(self._narrowed, peer, session)
        )

    async def disconnect(self, sid: str, reason: str = "") -> None:
        peer = self._hub.peer_id(sid)
        self._ice_expiry.pop(sid, None)
        session = self._sessions.pop(sid, None)
        if session is not None:
            self._guard.close(session)
        log.info("peer=%s disconnected (%s)", peer, reason)
        await self._hub.disconnect(peer)

    async def dispatch(self, sid: str, data: list[Any]) -> Reply:
        """Answer one client event; handlers get the cluster-wide peer id, not the socket id."""
        peer = self._hub.peer_id(sid)
        event = data[0] if data else None
        name = event[:64] if isinstance(event, str) else repr(event)[:64]
        try:
            session = self._sessions.get(sid)
            if session is None:  # its connect was refused, or it is going
                raise SignalingError(ErrorCode.UNAUTHORIZED, "not connected")
            result = await self._events.run(
                peer, session, event if isinstance(event, str) else "", tuple(data[1:]), self._unknown
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
        sid = local_id(peer)
        issued = self._ice.issue(self._user(sid, peer))
        self._ice_expiry[sid] = issued.expires_at
        return issued.servers

    def _user(self, sid: str, peer: str) -> str:
        session = self._sessions.get(sid)
        return session.user(peer) if session is not None else peer

    async def refresh_ice(self) -> None:
        """Send fresh ICE servers to every client whose TURN credentials are about to expire."""
        for sid, expires_at in list(self._ice_expiry.items()):
            if self._ice.due(expires_at):
                issued = self._ice.issue(self._user(sid, self._hub.peer_id(sid)))
                self._ice_expiry[sid] = issued.expires_at
                await self._sio.emit("ice-servers", {"iceServers": issued.servers}, to=sid)

    def _bad_packet(self, sid: str) -> None:
        session = self._sessions.get(sid)
        if session is None:
            return
        # Counted as a strike (a flooder is cut off); the refusal itself has been logged already.
        with contextlib.suppress(SignalingError):
            self._events.admit(self._hub.peer_id(sid), session, "control")

    def _flooded(self, peer: str) -> None:
        self._sio.drop(local_id(peer), "kept flooding after rate_limited errors")

    # The handlers of the events in EVENTS (below): each gets the sender's peer id and the
    # validated payload, and returns what the ack adds to {ok: true}.

    async def authenticate(self, peer: str, request: dict[str, Any]) -> Reply:
        # A fresh token replaces the connection's grant, which may cover less than the old one.
        session = self._sessions[local_id(peer)]
        withdrawn = Withdrawn([], [], [])
        if self._guard.authenticate(session, request["token"]):
            withdrawn = await self._hub.withdraw(peer, self._guard.allows(session))
        return {"revoked": {"rooms": withdrawn.rooms, "streams": [*withdrawn.published, *withdrawn.played]}}

    async def _narrowed(self, peer: str, session: Session) -> None:
        await self._hub.withdraw(peer, self._guard.allows(session))

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
        return await self._relay(peer, request, SessionDescription("offer", request["sdp"]))

    async def answer(self, peer: str, request: dict[str, Any]) -> Reply:
        return await self._relay(peer, request, SessionDescription("answer", request["sdp"]))

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
    )
