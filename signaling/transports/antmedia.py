"""Ant Media Server's WebSocket JSON protocol, on the same core as socket.io.

One text frame carries one JSON object with a `command`. `COMMANDS` maps each inbound command to
its handler, `RENDERERS` maps each core message to what an Ant Media client receives, and
`ERROR_DEFINITIONS` maps core error codes to Ant Media's error definitions: every translation
between the two protocols is written once, in those three tables.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import orjson
from aiohttp import WSCloseCode, web

from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.hub import Hub
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
    StreamEnded,
    StreamPublished,
    StreamUnpublished,
    ViewerJoined,
    ViewerLeft,
)
from signaling.core.peers import NOT_RESUMABLE
from signaling.core.store import Route
from signaling.security.guard import Guard, Session
from signaling.security.turn import IceServers
from signaling.transports.antmedia_schemas import build_command_schemas
from signaling.transports.engine import Detached, Links, WebSocketLink, check_handshake
from signaling.transports.events import Event, Pipeline
from signaling.transports.frames import FrameWriter

log = logging.getLogger(__name__)

Message = dict[str, Any]

# An Ant Media SDK publisher keeps one peer connection per streamId, so it can serve one viewer.
SDK_VIEWER_LIMIT = 1
P2P_ROOM_SIZE = 2

# Commands of Ant Media's media server (track lists, bitrates, ...) that have no meaning without one.
MEDIA_SERVER_COMMANDS = frozenset(
    {
        "getTrackList",
        "enableTrack",
        "toggleVideo",
        "toggleAudio",
        "forceStreamQuality",
        "updateStreamMetaData",
        "getBroadcastObject",
        "getSubscriberCount",
        "getSubscribers",
        "getVideoTrackAssignments",
        "updateVideoTrackAssignments",
        "setMaxVideoTrackCount",
        "assignVideoTrackCommand",
        "getSubtracks",
        "getSubtrackCount",
        "registerPushNotificationToken",
        "sendPushNotification",
        "getDebugInfo",
    }
)

ERROR_DEFINITIONS: dict[ErrorCode, str] = {
    ErrorCode.UNAUTHORIZED: "unauthorized_access",
    ErrorCode.FORBIDDEN: "unauthorized_access",
    ErrorCode.ROOM_FULL: "NoSpaceForNewPeer",
    ErrorCode.NOT_JOINED: "no_peer_associated_before",
    ErrorCode.UNKNOWN_TARGET: "no_peer_associated_before",
    ErrorCode.STREAM_IN_USE: "streamIdInUse",
    ErrorCode.ALREADY_PUBLISHING: "already_publishing",
    ErrorCode.ALREADY_PLAYING: "already_playing",
    ErrorCode.NO_SUCH_STREAM: "no_stream_exist",
    ErrorCode.NOT_STREAMING: "no_stream_exist",
    ErrorCode.VIEWER_LIMIT_REACHED: "viewerLimitReached",
    ErrorCode.INTERNAL_ERROR: "server_error_check_logs",
}


class AntMediaRefusal(SignalingError):
    """A refusal that only exists in this protocol (bad frames, unknown commands): it names its
    Ant Media definition itself, next to the core code it is reported with."""

    def __init__(self, definition: str, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)
        self.definition = definition


def notification(definition: str, **body: Any) -> Message:
    return {"command": "notification", "definition": definition, **body}


def error_message(error: SignalingError, request: Message | None = None) -> Message:
    """Ant Media's `error` command, with this server's code and message alongside its definition."""
    if isinstance(error, AntMediaRefusal):
        definition = error.definition
    elif error.code == ErrorCode.VALIDATION_FAILED and error.fields:
        definition = _validation_definition(error.fields, request or {})
    else:
        definition = ERROR_DEFINITIONS.get(error.code, str(error.code))
    body: Message = {
        "command": "error",
        "definition": definition,
        "code": str(error.code),
        "message": error.message,
    }
    if error.fields is not None:
        body["fields"] = error.fields
    if request is not None and isinstance(request.get("streamId"), str):
        body["streamId"] = request["streamId"][:64]
    return body


def _validation_definition(fields: dict[str, Any], request: Message) -> str:
    if "streamId" in fields:
        return "noStreamNameSpecified" if not request.get("streamId") else "invalidStreamName"
    if "room" in fields:
        return "no_room_specified" if not request.get("room") else "invalidRoomName"
    return (
        "missingParameter" if any("Missing data" in str(v) for v in fields.values()) else "invalidParameter"
    )


@dataclass(frozen=True)
class Membership:
    """How this connection is in a room: a two-peer `join` call, or a `joinRoom` conference where
    `stream_id` is the id it was given to publish."""

    mode: Literal["p2p", "conference"]
    stream_id: str | None = None


@dataclass(frozen=True)
class Close:
    """Written after the last message to a peer that is being sent away: the connection closes
    there, with this WebSocket close code and reason."""

    code: int
    reason: bytes


# The node is going away or lost its state: come back (Ant Media's SDK reconnects on any close).
CLOSE_RECONNECT = Close(WSCloseCode.SERVICE_RESTART, b"state lost; reconnect")
# Sent away for what it did (flooding, a kick): the code says not to come straight back.
CLOSE_POLICY = Close(WSCloseCode.POLICY_VIOLATION, b"policy violation")
Command = Message | Close


class AntMediaPeer:
    """One Ant Media WebSocket connection: a peer of the core, the sink for its messages, and the
    owner of its WebSocketLink (signaling.transports.engine), which hands it what the client sends.

    Everything it is sent, replies to its own commands included, is written to its connection on
    the spot (see signaling.transports.frames): a client that stops reading is cut off, and never
    makes anyone wait. What it sends is handled one message at a time, in order; while 128 KiB of
    it waits to be handled, its connection is not read.
    """

    # One per connection, for the connection's whole life.
    __slots__ = (
        "_sent_away",
        "_transport",
        "_writer",
        "address",
        "heard",
        "ice_expires_at",
        "link",
        "peer_id",
        "rooms",
        "session",
        "watchdog",
    )

    def __init__(self, transport: AntMediaTransport, peer_id: str, session: Session, address: str) -> None:
        self._transport = transport
        self.peer_id = peer_id
        self.session = session
        self.address = address
        self.rooms: dict[str, Membership] = {}
        self.ice_expires_at: float | None = None
        self.heard = 0.0  # the event loop's time of the last frame it sent
        self.watchdog: asyncio.TimerHandle | None = None  # see AntMediaTransport._check_quiet
        self.link: WebSocketLink | None = None
        self._writer: FrameWriter | None = None
        self._sent_away: Close | None = None

    def attach(self, link: WebSocketLink, max_unread: int) -> None:
        self.link = link
        self._writer = FrameWriter(link, link.transport, max_unread, self.label)
        if self._sent_away is not None:
            # Sent away while its handshake was being answered (a drain, say): what it was told
            # then had nowhere to go, but the close code alone tells the SDK what to do.
            link.close(self._sent_away.code, self._sent_away.reason)

    @property
    def label(self) -> str:
        return f"peer={self.peer_id}"

    @property
    def user(self) -> str:
        return self.session.user(self.peer_id)

    def mode(self, room: str) -> str | None:
        membership = self.rooms.get(room)
        return None if membership is None else membership.mode

    @property
    def closing(self) -> bool:
        """Being sent away: what it sends from now on is not handled. (What a client sent before
        closing the connection itself is.)"""
        return self._sent_away is not None

    async def send(self, message: Outbound) -> None:
        for command in RENDERERS[type(message)](self, message):
            self.write(command)

    def write(self, command: Command) -> None:
        """Write a command now, or close after what was written if it is a Close."""
        if isinstance(command, Close):
            if self._sent_away is None:
                self._sent_away = command
                if self.link is not None:
                    self.link.close(command.code, command.reason)
        elif self._writer is not None:
            self._writer.write(orjson.dumps(command))

    def abort(self) -> None:
        """Cut the connection without a goodbye: the client is gone and would not read one."""
        if self._writer is not None:
            self._writer.abort()

    async def evict(self, reason: str) -> None:
        # Ant Media's SDK reconnects when told the server is going away.
        self.write(notification("server_will_stop", message=reason))
        self.write(CLOSE_RECONNECT)

    async def moved(self) -> None:
        await self.evict("the session moved to another node")  # (Ant Media sessions never resume)

    # LinkOwner

    async def link_message(self, link: WebSocketLink, data: str | bytes) -> None:
        await self._transport.received(self, data)

    async def link_ended(self, link: WebSocketLink) -> None:
        await self._transport.ended(self)


def _refused(address: str, error: SignalingError, status: int) -> web.Response:
    log.warning("connection from %s refused: %s", address, error.message, extra={"code": error.code})
    return web.json_response(error.to_dict(), status=status)


def _stream_of(route: Route) -> str:
    # A P2P call's streamId is its room's name; publish/play relays carry the stream's own id.
    return route.stream_id if route.stream_id is not None else str(route.room)


def _render_relayed(peer: AntMediaPeer, message: Relayed) -> list[Message]:
    stream_id = _stream_of(message.route)
    match message.signal:
        case SessionDescription(type=kind, sdp=sdp):
            return [
                {
                    "command": "takeConfiguration",
                    "streamId": stream_id,
                    "type": kind,
                    "sdp": sdp,
                    "idMapping": {},
                }
            ]
        case IceCandidate(candidate=None):
            return []  # the SDK has no end-of-candidates message; trickle works without one
        case IceCandidate(candidate=Candidate() as candidate):
            return [
                {
                    "command": "takeCandidate",
                    "streamId": stream_id,
                    "label": candidate.sdp_mline_index,
                    "id": candidate.sdp_mid,
                    "candidate": candidate.candidate,
                }
            ]
        case PeerMessage(definition=definition, data=data):
            return [
                {
                    "command": "peerMessageCommand",
                    "streamId": stream_id,
                    "definition": definition,
                    "data": data,
                }
            ]
    raise TypeError(f"no Ant Media rendering for {message.signal!r}")


def _render_peer_joined(peer: AntMediaPeer, message: PeerJoined) -> list[Message]:
    # In a P2P call the peer that was there first makes the offer when the second one arrives.
    return [{"command": "start", "streamId": message.room}] if peer.mode(message.room) == "p2p" else []


def _render_peer_left(peer: AntMediaPeer, message: PeerLeft) -> list[Message]:
    return [{"command": "stop", "streamId": message.room}] if peer.mode(message.room) == "p2p" else []


def _render_stream_published(peer: AntMediaPeer, message: StreamPublished) -> list[Message]:
    if peer.mode(message.room) != "conference":
        return []
    return [notification("streamJoined", streamId=message.stream_id, room=message.room)]


def _render_stream_unpublished(peer: AntMediaPeer, message: StreamUnpublished) -> list[Message]:
    if peer.mode(message.room) != "conference":
        return []
    return [notification("streamLeaved", streamId=message.stream_id, room=message.room)]


def _render_viewer_joined(peer: AntMediaPeer, message: ViewerJoined) -> list[Message]:
    return [{"command": "start", "streamId": message.stream_id}]


def _render_viewer_left(peer: AntMediaPeer, message: ViewerLeft) -> list[Message]:
    # Closes the publisher's connection for this stream, so the next viewer gets a fresh one.
    return [{"command": "stop", "streamId": message.stream_id}]


def _render_stream_ended(peer: AntMediaPeer, message: StreamEnded) -> list[Message]:
    return [
        {"command": "stop", "streamId": message.stream_id},
        notification("play_finished", streamId=message.stream_id),
    ]


def _render_kicked(peer: AntMediaPeer, message: Kicked) -> list[Command]:
    return [notification("kicked", reason=message.reason), CLOSE_POLICY]


RENDERERS: dict[type, Callable[[AntMediaPeer, Any], Sequence[Command]]] = {
    Kicked: _render_kicked,
    Relayed: _render_relayed,
    PeerJoined: _render_peer_joined,
    PeerLeft: _render_peer_left,
    StreamPublished: _render_stream_published,
    StreamUnpublished: _render_stream_unpublished,
    ViewerJoined: _render_viewer_joined,
    ViewerLeft: _render_viewer_left,
    StreamEnded: _render_stream_ended,
}


class AntMediaTransport:
    """Serves `/{app}/websocket`: decodes frames, validates commands, calls the hub, replies."""

    def __init__(
        self,
        hub: Hub,
        *,
        limits: Limits,
        max_message_bytes: int,
        max_unread: int,
        idle_timeout: float,
        guard: Guard,
        allowed_origins: str | list[str],
        ice: IceServers,
    ) -> None:
        self._hub = hub
        self._guard = guard
        self._allowed_origins = allowed_origins
        self._max_message_bytes = max_message_bytes
        self._max_unread = max_unread
        self._idle_timeout = idle_timeout
        self._ice = ice
        self._peers: dict[str, AntMediaPeer] = {}
        self.links = Links()  # every connection's WebSocket, until its end is handled
        self._commands = Pipeline(self, self.COMMANDS, build_command_schemas(limits), guard, self._flooded)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # The SDK appends ?target=origin|edge; routing is by path only, so the query is ignored.
        address = request.remote or "unknown"
        origin = request.headers.get("Origin")
        if origin and self._allowed_origins != "*" and origin not in self._allowed_origins:
            log.warning(
                "connection from %s refused: origin %s not allowed",
                address,
                origin,
                extra={"code": "forbidden"},
            )
            return web.json_response(
                {"code": "forbidden", "message": f"origin {origin} is not allowed"}, status=403
            )
        try:
            self._guard.reserve(address, "antmedia")
        except SignalingError as error:
            return _refused(address, error, 429)
        try:
            # The SDKs may put the token on the URL; each command may also carry one.
            session = self._guard.open(address, "antmedia", request.query.get("token"))
        except SignalingError as error:
            self._guard.release(address)
            return _refused(address, error, 401)
        except BaseException:
            self._guard.release(address)  # the slot, whatever failed
            raise
        try:
            await check_handshake(request)
            peer = AntMediaPeer(
                self, self._hub.peer_id(f"{NOT_RESUMABLE}{secrets.token_urlsafe(12)}"), session, address
            )
            await self._hub.connect(peer.peer_id, peer, resumable=False)  # the SDKs cannot resume
        except BaseException as failure:
            self._guard.close(session)
            self._guard.release(address)
            if isinstance(failure, SignalingError):  # the cluster's store out of reach, say
                return _refused(address, failure, 503)
            raise
        # From here on the connection is the link's, and its end (`ended`) undoes all of the above.
        link = WebSocketLink.take_over(request, peer, self.links, self._max_message_bytes)
        peer.attach(link, self._max_unread)
        log.info(
            "peer=%s connected from %s (app %s)",
            peer.peer_id,
            address,
            request.match_info.get("app", "client"),
        )
        self._peers[peer.peer_id] = peer
        self._guard.watch_expiry(
            session, partial(self._hub.expire, peer.peer_id), partial(self._withdraw, peer, session)
        )
        loop = asyncio.get_running_loop()
        peer.heard = loop.time()
        peer.watchdog = loop.call_at(peer.heard + self._idle_timeout, self._check_quiet, peer)
        return Detached()

    async def received(self, peer: AntMediaPeer, data: str | bytes) -> None:
        """One message from the peer's connection (one at a time, in order)."""
        peer.heard = asyncio.get_running_loop().time()
        if peer.closing:
            return  # sent away: what it sent meanwhile is not handled
        if isinstance(data, str):
            replies = await self.dispatch(peer, data, peer.session)
        else:
            try:
                self._commands.admit(peer, peer.session, "control")  # garbage counts too
                refusal: SignalingError = BINARY_REFUSAL
            except SignalingError as error:
                refusal = error
            replies = [self._refuse(peer, None, refusal)]
        for reply in replies:
            peer.write(reply)

    async def ended(self, peer: AntMediaPeer) -> None:
        """The peer's connection is gone: it leaves everything, without a reply."""
        if peer.watchdog is not None:
            peer.watchdog.cancel()
            peer.watchdog = None
        code = peer.link.close_code if peer.link is not None else None
        log.info(
            "peer=%s disconnected (close code %s)",
            peer.peer_id,
            WSCloseCode.ABNORMAL_CLOSURE if code is None else code,
        )
        self._peers.pop(peer.peer_id, None)
        try:
            await self._hub.disconnect(peer.peer_id)
        finally:
            self._guard.close(peer.session)
            self._guard.release(peer.address)

    def _check_quiet(self, peer: AntMediaPeer) -> None:
        """The SDK pings every 3 s: a connection quiet for the idle timeout has gone without a
        close (a phone off the network), and must not hold its streamId any longer. One timer per
        connection, moved on as frames come, costs less than a timeout around every read."""
        loop = asyncio.get_running_loop()
        due = peer.heard + self._idle_timeout
        if loop.time() < due:
            peer.watchdog = loop.call_at(due, self._check_quiet, peer)
            return
        log.info("peer=%s silent for %g s: gone", peer.peer_id, self._idle_timeout)
        peer.abort()

    async def dispatch(self, peer: AntMediaPeer, text: str, session: Session) -> list[Message]:
        request: Message | None = None
        try:
            try:
                decoded = orjson.loads(text)
            except orjson.JSONDecodeError:
                self._commands.admit(peer, session, "control")  # garbage counts too
                raise AntMediaRefusal(
                    "invalid_json", ErrorCode.INVALID_PAYLOAD, "frame is not valid JSON"
                ) from None
            if not isinstance(decoded, dict) or not isinstance(decoded.get("command"), str):
                self._commands.admit(peer, session, "control")
                raise AntMediaRefusal(
                    "missing_command",
                    ErrorCode.INVALID_PAYLOAD,
                    'a frame must be a JSON object with a "command"',
                )
            request = decoded
            # Ant Media's SDKs send a token per stream with their commands: each adds to what the
            # connection may do (signaling.security.guard).
            token = decoded.get("token")
            return await self._commands.run(
                peer,
                session,
                decoded["command"],
                (decoded,),
                _unknown,
                token=token if isinstance(token, str) else None,
            )
        except SignalingError as error:
            return [self._refuse(peer, request, error)]
        except Exception:
            log.exception("peer=%s command %s failed", peer.peer_id, _command_name(request))
            failure = SignalingError(ErrorCode.INTERNAL_ERROR, "the server failed to handle this command")
            return [error_message(failure, request)]

    async def _withdraw(self, peer: AntMediaPeer, session: Session) -> None:
        """One of the connection's tokens expired: what the others do not cover ends, and the
        SDK hears of it as if it had asked for it."""
        withdrawn = await self._hub.withdraw(peer.peer_id, self._guard.allows(session))
        for room in withdrawn.rooms:
            membership = peer.rooms.pop(room, None)
            if membership is not None and membership.mode == "p2p":
                peer.write(notification("leaved", streamId=room))
            elif membership is not None:
                peer.write(notification("leavedFromRoom", room=room))
        for stream_id in withdrawn.published:
            peer.write(notification("publish_finished", streamId=stream_id))
        for stream_id in withdrawn.played:
            peer.write(notification("play_finished", streamId=stream_id))

    def _flooded(self, peer: AntMediaPeer) -> None:
        log.warning("peer=%s dropped: kept flooding after rate_limited errors", peer.peer_id)
        peer.write(CLOSE_POLICY)

    def _refuse(self, peer: AntMediaPeer, request: Message | None, error: SignalingError) -> Message:
        log.warning(
            "peer=%s command=%s refused: %s: %s",
            peer.peer_id,
            _command_name(request),
            error.code,
            error.message,
            extra={"code": error.code},
        )
        self._guard.refused("antmedia", error.code)
        return error_message(error, request)

    # Connection-level commands

    async def ping(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        return [{"command": "pong"}]

    async def get_ice_server_config(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        issued = self._ice.issue(peer.user)
        peer.ice_expires_at = issued.expires_at
        return [ice_server_config(issued.servers)]

    async def refresh_ice(self) -> None:
        """Send fresh credentials to SDKs whose TURN credentials are about to expire (the SDK uses
        them for the peer connections it opens afterwards)."""
        for peer in list(self._peers.values()):
            if peer.ice_expires_at is not None and self._ice.due(peer.ice_expires_at):
                issued = self._ice.issue(peer.user)
                peer.ice_expires_at = issued.expires_at
                peer.write(ice_server_config(issued.servers))

    # Peer to peer

    async def join(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        room = request["streamId"]
        metadata = {"client": "antmedia", "mode": request["mode"] or "both"}
        await self._hub.join(peer.peer_id, room, metadata, capacity=P2P_ROOM_SIZE, mode="p2p")
        peer.rooms[room] = Membership("p2p")
        return [notification("joined", streamId=room)]

    async def leave(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        room = request["streamId"]
        await self._leave_room(peer, room)
        return [notification("leaved", streamId=room)]

    async def _leave_room(self, peer: AntMediaPeer, room: str) -> None:
        await self._hub.leave(peer.peer_id, room)
        peer.rooms.pop(room, None)

    async def take_configuration(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        stream_id = request["streamId"]
        description = SessionDescription(request["type"], request["sdp"])
        _, plays = await self._hub.relay_through(peer.peer_id, stream_id, description)
        # A player's answer completes its side of the negotiation: what Ant Media calls play_started.
        if request["type"] == "answer" and plays:
            return [notification("play_started", streamId=stream_id)]
        return []

    async def take_candidate(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        candidate = Candidate(request["candidate"], request["id"], request["label"])
        await self._hub.relay_through(peer.peer_id, request["streamId"], IceCandidate(candidate))
        return []

    async def peer_message(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        message = PeerMessage(request["definition"], request["data"])
        await self._hub.relay_through(peer.peer_id, request["streamId"], message)
        return []

    # Publish / play

    async def publish(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        stream_id = request["streamId"]
        if peer.mode(stream_id) == "p2p":
            raise SignalingError(ErrorCode.STREAM_IN_USE, f"{stream_id!r} is the name of your P2P call")
        room = next((r for r, m in peer.rooms.items() if m.stream_id == stream_id), None)
        if room is None and peer.mode(request["mainTrack"] or "") == "conference":
            room = request["mainTrack"]
        if not await self._hub.is_published(stream_id, room):
            # The SDK opens a peer connection on publish() and, when nobody answers it within 3 s,
            # tears it down and publishes again, forever: without a media server nobody answers
            # until a viewer plays. Closing it now stops that loop; `start` opens a fresh one per
            # viewer. Queued before the stream exists, so no viewer's `start` can overtake it.
            peer.write({"command": "stop", "streamId": stream_id})
        await self._hub.publish(peer.peer_id, stream_id, room=room, max_viewers=SDK_VIEWER_LIMIT)
        return [notification("publish_started", streamId=stream_id)]

    async def play(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        await self._hub.play(peer.peer_id, request["streamId"])
        return []  # the publisher is told to offer; its offer is what the player waits for

    async def stop(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        stream_id = request["streamId"]
        if peer.mode(stream_id) == "p2p":
            return await self.leave(peer, request)
        ended = await self._hub.stop(peer.peer_id, stream_id)
        return [
            notification("publish_finished" if ended == "published" else "play_finished", streamId=stream_id)
        ]

    async def get_stream_info(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        stream = await self._hub.stream(peer.peer_id, request["streamId"])  # a room's: its members only
        if stream is None:
            raise SignalingError(ErrorCode.NO_SUCH_STREAM, f"no stream {request['streamId']!r} is published")
        # No media passes through this server, so there are no resolutions or bitrates to report.
        return [{"command": "streamInformation", "streamId": stream.stream_id, "streamInfo": []}]

    # Conference

    async def join_room(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        room = request["room"]
        stream_id = request.get("streamId") or f"{room[:40]}-{secrets.token_hex(6)}"
        metadata = {"client": "antmedia", "streamId": stream_id}
        await self._hub.join(peer.peer_id, room, metadata, mode="conference")
        peer.rooms[room] = Membership("conference", stream_id)
        streams = [s.stream_id for s in await self._hub.room_streams(room)]
        return [
            notification(
                "joinedTheRoom",
                room=room,
                streamId=stream_id,
                streams=streams,
                streamList=_stream_list(streams),
            )
        ]

    async def leave_from_room(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        room = request["room"]
        await self._leave_room(peer, room)
        return [notification("leavedFromRoom", room=room)]

    async def get_room_info(self, peer: AntMediaPeer, request: Message) -> list[Message]:
        room = request["room"]
        if peer.mode(room) is None:
            # A room's stream list is for its members only.
            raise SignalingError(ErrorCode.NOT_IN_ROOM, f"not in room {room!r}")
        asker = request.get("streamId")
        streams = [s.stream_id for s in await self._hub.room_streams(room) if s.stream_id != asker]
        return [
            {
                "command": "roomInformation",
                "room": room,
                "streams": streams,
                "streamList": _stream_list(streams),
            }
        ]

    # Every command a client may send: one row each (see signaling.transports.events); its schema
    # is the one of that name in signaling.transports.antmedia_schemas.
    COMMANDS: tuple[Event[AntMediaTransport, AntMediaPeer, list[Message]], ...] = (
        Event("ping", ping, kind="query", access="open", fields=False),
        Event("getIceServerConfig", get_ice_server_config, kind="query", fields=False),
        Event("join", join, access=("rooms", "streamId")),
        Event("leave", leave, access="open"),
        Event("takeConfiguration", take_configuration, kind="relay"),
        Event("takeCandidate", take_candidate, kind="relay"),
        Event("peerMessageCommand", peer_message, kind="relay"),
        Event("publish", publish, access=("publish", "streamId")),
        Event("play", play, access=("play", "streamId")),
        Event("stop", stop, access="open"),
        Event("joinRoom", join_room, access=("rooms", "room")),
        Event("leaveFromRoom", leave_from_room, access="open"),
        Event("getRoomInfo", get_room_info, kind="query", access=("rooms", "room")),
        Event("getStreamInfo", get_stream_info, kind="query", access=("play", "streamId")),
    )


BINARY_REFUSAL = AntMediaRefusal(
    "binary_not_supported", ErrorCode.INVALID_PAYLOAD, "binary frames are not supported; send JSON text"
)


def _unknown(name: str) -> SignalingError:
    if name in MEDIA_SERVER_COMMANDS:
        return AntMediaRefusal(
            "not_supported", ErrorCode.UNKNOWN_EVENT, f"{name} needs a media server; this server only signals"
        )
    return AntMediaRefusal("unknown_command", ErrorCode.UNKNOWN_EVENT, f"unknown command {name[:64]!r}")


def _stream_list(stream_ids: list[str]) -> list[Message]:
    return [{"streamId": stream_id} for stream_id in stream_ids]


def _command_name(request: Message | None) -> str:
    return str(request.get("command"))[:64] if request is not None else "?"


def ice_server_config(servers: list[dict[str, Any]]) -> Message:
    """Ant Media's single-server form: the first TURN server if any (it carries credentials),
    otherwise the first STUN URL. The SDK adds a default STUN server beside a TURN one."""
    urls = [(url, server) for server in servers for url in _urls(server)]
    turn = next(((u, s) for u, s in urls if u.startswith(("turn:", "turns:"))), None)
    if turn is not None:
        url, server = turn
        return {
            "command": "iceServerConfig",
            "stunServerUri": url,
            "turnServerUsername": server.get("username", ""),
            "turnServerCredential": server.get("credential", ""),
        }
    stun = next((u for u, _ in urls if u.startswith(("stun:", "stuns:"))), "")
    return {
        "command": "iceServerConfig",
        "stunServerUri": stun,
        "turnServerUsername": "",
        "turnServerCredential": "",
    }


def _urls(server: dict[str, Any]) -> list[str]:
    urls = server.get("urls", [])
    return [urls] if isinstance(urls, str) else list(urls)
