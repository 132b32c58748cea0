"""Core messages to bytes and back, for delivery to a peer held by another node.

Besides messages for peers, a node's channel carries `State` notices (`{"v": 1, "to": "",
"type": "State", "body": {"seq": n, "rooms": {...}, "streams": {...}}}`), which the shared store's
scripts write (signaling.cluster.redis_lua) for the node's view (signaling.core.view).

Envelopes are versioned for rolling deploys, where nodes of two adjacent versions share a
cluster: `{"v": 1, "to": peer, "type": kind, "body": {...}}`. A node reads every envelope of a
`v` it knows, ignores body fields it does not know, and refuses (`Undecodable`) kinds it does not
know, which the node counts and skips: a newer node's new kind of message is lost to an older
node's peers, never its inbox. A change older nodes could not read bumps `v`, and nodes keep
reading the previous `v` for one release.
"""

from __future__ import annotations

from dataclasses import fields
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
from signaling.core.view import Notice, Placed, StreamState

VERSION = 1
READS = frozenset({VERSION})  # the envelope versions this node reads

# Every outbound kind but Relayed (read from the Outbound union, so a new kind needs nothing
# here) is flat: every field is JSON as it stands.
FLAT: dict[str, type[Any]] = {cls.__name__: cls for cls in get_args(Outbound) if cls is not Relayed}
FLAT_FIELDS = {name: frozenset(f.name for f in fields(cls)) for name, cls in FLAT.items()}

MOVED = "Moved"
STATE = "State"


class Undecodable(ValueError):
    """Not an envelope this node reads; `why` is a short label for metrics."""

    def __init__(self, why: str, detail: str) -> None:
        super().__init__(f"{why}: {detail}")
        self.why = why


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
    return orjson.dumps({"v": VERSION, "to": peer_id, "type": type(message).__name__, "body": body})


def encode_moved(peer_id: str) -> bytes:
    """To the node a session was attached to: it was resumed elsewhere, let its connection go."""
    return orjson.dumps({"v": VERSION, "to": peer_id, "type": MOVED, "body": {}})


def decode(data: bytes) -> tuple[str, Outbound | None]:
    """The recipient and its message; None for a session that moved (see `encode_moved`).
    Raises `Undecodable` for anything else, whatever its shape."""
    read = decode_any(data)
    if isinstance(read, Notice):
        raise Undecodable("unexpected_kind", "a State notice where a message was expected")
    return read


def decode_any(data: bytes) -> tuple[str, Outbound | None] | Notice:
    """What a node's channel carries: a message for a peer (see `decode`) or a State notice."""
    try:
        envelope = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Undecodable("not_json", str(exc)) from None
    if not isinstance(envelope, dict):
        raise Undecodable("malformed", f"a JSON {type(envelope).__name__}, not an object")
    if envelope.get("v", VERSION) not in READS:
        raise Undecodable("unknown_version", repr(envelope.get("v"))[:32])
    kind, body, to = envelope.get("type"), envelope.get("body"), envelope.get("to")
    if not isinstance(to, str) or not isinstance(body, dict):
        raise Undecodable("malformed", "no recipient or no body")
    if kind == MOVED:
        return to, None
    try:
        if kind == STATE:
            try:
                return _notice(body)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise Undecodable("malformed_notice", f"{type(exc).__name__}: {exc}"[:200]) from None
        if kind == "Relayed":
            message: Outbound = Relayed(
                body["sender"],
                body["target"],
                Route(body["room"], body["stream"]),
                _decode_signal(body["signal"]),
            )
        elif isinstance(kind, str) and kind in FLAT:
            message = FLAT[kind](**{k: v for k, v in body.items() if k in FLAT_FIELDS[kind]})
        else:
            raise Undecodable("unknown_kind", repr(kind)[:64])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, Undecodable):
            raise
        raise Undecodable("malformed", f"{type(exc).__name__}: {exc}"[:200]) from None
    return to, message


def _notice(body: dict[str, Any]) -> Notice:
    """Checked to the last field: a view built from a wrong notice would route wrongly."""
    seq, rooms, streams = body["seq"], body["rooms"], body["streams"]
    if not isinstance(seq, int) or not isinstance(rooms, dict) or not isinstance(streams, dict):
        raise TypeError("seq, rooms or streams of the wrong type")
    return Notice(
        seq,
        {_text(room): _placed_list(members) for room, members in rooms.items()},
        {_text(key): None if stream is False else _stream_state(stream) for key, stream in streams.items()},
    )


def _stream_state(raw: dict[str, Any]) -> StreamState:
    room, max_viewers = raw["room"], raw["maxv"]
    if not isinstance(room, str) or not isinstance(max_viewers, str) or not max_viewers.isdigit():
        raise TypeError("stream room or maxv of the wrong type")
    return StreamState(
        _placed(raw["publisher"]), room or None, int(max_viewers) or None, _placed_list(raw["viewers"])
    )


def _placed_list(raw: Any) -> list[Placed]:
    # Lua's cjson writes an empty list as {}.
    if raw == {}:
        return []
    if not isinstance(raw, list):
        raise TypeError("a list of peers expected")
    return [_placed(item) for item in raw]


def _placed(raw: Any) -> Placed:
    if not isinstance(raw, list) or len(raw) != 2:
        raise TypeError("a [peer, node] pair expected")
    return _text(raw[0]), _text(raw[1])


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"text expected, not {type(value).__name__}")
    return value


def _encode_signal(signal: Signal) -> dict[str, Any]:
    match signal:
        case SessionDescription(type=kind, sdp=sdp, as_object=as_object):
            # `object` was added in a compatible way: only written when true, and older nodes
            # ignore it (their peers get the text, which they always could read).
            described = {"kind": "description", "type": kind, "sdp": sdp}
            return {**described, "object": True} if as_object else described
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
            return SessionDescription(raw["type"], raw["sdp"], raw.get("object") is True)
        case "candidate":
            candidate = raw["candidate"]
            if candidate is None:
                return IceCandidate(None)
            return IceCandidate(Candidate(**{k: v for k, v in candidate.items() if k in Candidate._fields}))
        case "message":
            return PeerMessage(raw["definition"], raw["data"])
    raise Undecodable("unknown_kind", f"signal {raw['kind']!r}"[:64])
