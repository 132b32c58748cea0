"""Core messages to bytes and back, for delivery to a peer held by another node."""

from __future__ import annotations

from typing import Any, get_args

import orjson

from signaling.core.messages import (
    Candidate,
    IceCandidate,
    Outbound,
    PeerMessage,
    Relayed,
    SessionDescription,
    Signal,
)
from signaling.core.store import Route

# Every outbound kind but Relayed (read from the Outbound union, so a new kind needs nothing
# here) is flat: every field is JSON as it stands.
FLAT: dict[str, type[Any]] = {cls.__name__: cls for cls in get_args(Outbound) if cls is not Relayed}


MOVED = "Moved"


def encode(peer_id: str, message: Outbound) -> bytes:
    if isinstance(message, Relayed):
        body: dict[str, Any] = {
            "sender": message.sender,
            "target": message.target,
            "room": message.route.room,
            "stream": message.route.stream_id,
            "signal": _encode_signal(message.signal),
        }
    else:
        body = dict(vars(message))
    return orjson.dumps({"to": peer_id, "type": type(message).__name__, "body": body})


def encode_moved(peer_id: str) -> bytes:
    """To the node a session was attached to: it was resumed elsewhere, let its connection go."""
    return orjson.dumps({"to": peer_id, "type": MOVED, "body": {}})


def decode(data: bytes) -> tuple[str, Outbound | None]:
    """The recipient and its message; None for a session that moved (see `encode_moved`).
    Raises ValueError (or KeyError, TypeError) for anything else."""
    envelope = orjson.loads(data)
    kind, body = envelope["type"], envelope["body"]
    if kind == MOVED:
        return envelope["to"], None
    if kind == "Relayed":
        message: Outbound = Relayed(
            body["sender"],
            body["target"],
            Route(body["room"], body["stream"]),
            _decode_signal(body["signal"]),
        )
    else:
        message = FLAT[kind](**body)
    return envelope["to"], message


def _encode_signal(signal: Signal) -> dict[str, Any]:
    match signal:
        case SessionDescription(type=kind, sdp=sdp):
            return {"kind": "description", "type": kind, "sdp": sdp}
        case IceCandidate(candidate=None):
            return {"kind": "candidate", "candidate": None}
        case IceCandidate(candidate=Candidate() as candidate):
            return {"kind": "candidate", "candidate": candidate._asdict()}
        case PeerMessage(definition=definition, data=data):
            return {"kind": "message", "definition": definition, "data": data}
    raise TypeError(f"cannot encode {signal!r}")


def _decode_signal(raw: dict[str, Any]) -> Signal:
    match raw["kind"]:
        case "description":
            return SessionDescription(raw["type"], raw["sdp"])
        case "candidate":
            return IceCandidate(None if raw["candidate"] is None else Candidate(**raw["candidate"]))
        case "message":
            return PeerMessage(raw["definition"], raw["data"])
    raise ValueError(f"unknown signal kind {raw['kind']!r}")
