"""Core messages survive the trip to another node: encode, then decode, gives the same message."""

from __future__ import annotations

from typing import get_args

import pytest

from signaling.cluster import codec
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
from signaling.core.store import Route
from signaling.transports.antmedia import RENDERERS
from signaling.transports.socketio import render

MESSAGES: list[Outbound] = [
    Relayed("a", "b", Route(room="r"), SessionDescription("offer", "v=0\r\n")),
    Relayed("a", "b", Route(stream_id="s"), SessionDescription("answer", "v=0\r\n")),
    Relayed(
        "a", "b", Route(room="r"), IceCandidate(Candidate("candidate:1 1 udp 1 1.2.3.4 5 typ host", "0", 0))
    ),
    Relayed("a", "b", Route(room="r"), IceCandidate(Candidate("", None, None, "frag"))),
    Relayed("a", "b", Route(room="r"), IceCandidate(None)),
    Relayed("a", "b", Route(room="r"), PeerMessage("chat", {"text": "hi", "n": [1, 2]})),
    PeerJoined("r", "p", {"name": "x"}),
    PeerLeft("r", "p", "node_lost"),
    StreamPublished("r", "s", "p"),
    StreamUnpublished("r", "s", "p"),
    ViewerJoined("s", "v"),
    ViewerLeft("s", "v", "disconnected"),
    StreamEnded("s", "kicked"),
    Kicked("bye"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Outbound) -> None:
    peer, decoded = codec.decode(codec.encode("peer-1", message))
    assert (peer, decoded) == ("peer-1", message)
    # NamedTuples of equal fields compare equal across types: the types must match as well.
    assert type(decoded) is type(message)
    if isinstance(message, Relayed):
        assert isinstance(decoded, Relayed)
        assert type(decoded.signal) is type(message.signal)
        assert type(decoded.route) is type(message.route)


def test_every_outbound_kind_is_covered_here_and_rendered_by_both_transports() -> None:
    kinds = set(get_args(Outbound))
    assert {type(message) for message in MESSAGES} == kinds
    assert set(RENDERERS) == kinds  # Ant Media; socket.io's render raises on a kind it lacks
    for message in MESSAGES:
        if not isinstance(message, Kicked):  # sent as its own event, with a disconnect
            render(message)
