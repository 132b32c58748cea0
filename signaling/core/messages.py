"""What the core sends to peers, independent of any transport's wire format.

Each transport renders these into its own events (socket.io `offer`, Ant Media
`takeConfiguration`, ...) in one place, so the core never knows a protocol's names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from signaling.core.store import Metadata, Route

# "node_lost": the server process holding the peer died; another node announced it.
# "expired": the peer's token expired (or no longer granted it), so the server took it out.
LeaveReason = Literal["left", "disconnected", "node_lost", "kicked", "expired"]
EndReason = Literal["stopped", "disconnected", "node_lost", "kicked", "expired"]
GoneReason = Literal["disconnected", "node_lost", "kicked", "expired"]
DescriptionType = Literal["offer", "answer"]


# The messages of a relay are built for every signaling message that passes through: they are
# NamedTuples, as immutable as frozen dataclasses and four times cheaper to build.


class Candidate(NamedTuple):
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    username_fragment: str | None = None


class SessionDescription(NamedTuple):
    type: DescriptionType
    sdp: str
    # Sent as an RTCSessionDescriptionInit object ({type, sdp}) rather than as the SDP text: the
    # recipient gets it in the same form, so that a client passing descriptions along as they are
    # (`pc.setRemoteDescription(data.sdp)`) works with a peer of its own kind.
    as_object: bool = False


class IceCandidate(NamedTuple):
    """A trickled candidate; `None` marks the end of candidates and is relayed as such."""

    candidate: Candidate | None


class PeerMessage(NamedTuple):
    """Application data sent through the server (Ant Media's peerMessageCommand)."""

    definition: str | None
    data: Any


Signal = SessionDescription | IceCandidate | PeerMessage


class Relayed(NamedTuple):
    sender: str
    target: str
    route: Route
    signal: Signal


@dataclass(frozen=True)
class PeerJoined:
    room: str
    peer_id: str
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class PeerLeft:
    room: str
    peer_id: str
    reason: LeaveReason


@dataclass(frozen=True)
class StreamPublished:
    """To the other members of the room a stream was published in."""

    room: str
    stream_id: str
    publisher: str


@dataclass(frozen=True)
class StreamUnpublished:
    room: str
    stream_id: str
    publisher: str


@dataclass(frozen=True)
class ViewerJoined:
    """To a publisher: open a connection to this viewer and send it an offer."""

    stream_id: str
    viewer: str


@dataclass(frozen=True)
class ViewerLeft:
    """To a publisher: close the connection to this viewer."""

    stream_id: str
    viewer: str
    reason: EndReason


@dataclass(frozen=True)
class StreamEnded:
    """To a viewer: the stream it plays is gone."""

    stream_id: str
    reason: EndReason


@dataclass(frozen=True)
class Kicked:
    """To a peer an operator removed: it is told why, then disconnected."""

    reason: str


Outbound = (
    Relayed
    | PeerJoined
    | PeerLeft
    | StreamPublished
    | StreamUnpublished
    | ViewerJoined
    | ViewerLeft
    | StreamEnded
    | Kicked
)


def candidate_fields(candidate: Candidate) -> dict[str, Any]:
    """The W3C RTCIceCandidateInit shape, used by every transport that speaks it."""
    body: dict[str, Any] = {
        "candidate": candidate.candidate,
        "sdpMid": candidate.sdp_mid,
        "sdpMLineIndex": candidate.sdp_mline_index,
    }
    if candidate.username_fragment is not None:
        body["usernameFragment"] = candidate.username_fragment
    return body
