"""What the core sends to peers, independent of any transport's wire format.

Each transport renders these into its own events (socket.io `offer`, Ant Media
`takeConfiguration`, ...) in one place, so the core never knows a protocol's names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from signaling.rooms import Metadata

LeaveReason = Literal["left", "disconnected"]
DescriptionType = Literal["offer", "answer"]


@dataclass(frozen=True)
class Candidate:
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    username_fragment: str | None = None


@dataclass(frozen=True)
class SessionDescription:
    type: DescriptionType
    sdp: str


@dataclass(frozen=True)
class IceCandidate:
    """A trickled candidate; `None` marks the end of candidates and is relayed as such."""

    candidate: Candidate | None


Signal = SessionDescription | IceCandidate


@dataclass(frozen=True)
class Relayed:
    sender: str
    target: str
    room: str
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


Outbound = Relayed | PeerJoined | PeerLeft


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
