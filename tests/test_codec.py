"""Core messages survive the trip to another node: encode, then decode, gives the same message."""

from __future__ import annotations

import logging
from typing import get_args

import orjson
import pytest

from signaling.cluster import codec
from signaling.cluster.nodes import inbox_skips
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
from signaling.core.view import Notice, StreamState
from signaling.transports.antmedia import RENDERERS
from signaling.transports.socketio import render


def state(body: str) -> bytes:
    return b'{"v": 1, "to": "", "type": "State", "body": ' + body.encode() + b"}"


MESSAGES: list[Outbound] = [
    Relayed("a", "b", Route(room="r"), SessionDescription("offer", "v=0\r\n")),
    Relayed("a", "b", Route(stream_id="s"), SessionDescription("answer", "v=0\r\n")),
    Relayed("a", "b", Route(room="r"), SessionDescription("offer", "v=0\r\n", as_object=True)),
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


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not_json"),
        (b"{truncated", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "malformed"),
        (b"42", "malformed"),
        (b'{"v": 1, "to": "p"}', "malformed"),
        (b'{"v": 1, "to": 5, "type": "Kicked", "body": {"reason": "x"}}', "malformed"),
        (b'{"v": 1, "to": "p", "type": "Kicked", "body": []}', "malformed"),
        (b'{"v": 1, "to": "p", "type": "Relayed", "body": {"sender": "a"}}', "malformed"),
        (
            b'{"v": 1, "to": "p", "type": "Relayed", "body": {"sender": "a", "target": "p", "room": "r", '
            b'"stream": null, "signal": {"kind": "hologram"}}}',
            "unknown_kind",
        ),
        (b'{"v": 1, "to": "p", "type": "Teleported", "body": {}}', "unknown_kind"),
        (b'{"v": 1, "to": "p", "type": ["Kicked"], "body": {}}', "unknown_kind"),
        (b'{"v": 2, "to": "p", "type": "Kicked", "body": {"reason": "x"}}', "unknown_version"),
        (b'{"v": 1, "to": "p", "type": "PeerLeft", "body": {"room": "r"}}', "malformed"),
        # State notices are checked to the last field: a view built from a wrong one misroutes.
        (
            state('{"seq": "1", "rooms": {}, "streams": {}}'),
            "malformed_notice",
        ),
        (
            state('{"seq": 1, "rooms": {"r": [["a"]]}, "streams": {}}'),
            "malformed_notice",
        ),
        (
            state('{"seq": 1, "rooms": {"r": {"a": "n"}}, "streams": {}}'),
            "malformed_notice",
        ),
        (
            state('{"seq": 1, "rooms": {"r": [[1, "n"]]}, "streams": {}}'),
            "malformed_notice",
        ),
        (
            state('{"seq": 1, "rooms": {}, "streams": {"s": {"room": ""}}}'),
            "malformed_notice",
        ),
        (state('{"seq": 1, "rooms": [], "streams": {}}'), "malformed_notice"),
        (
            state(
                '{"seq": 1, "rooms": {}, "streams": {"s": {"publisher": ["a", "n"], "room": "", '
                '"maxv": 1e+14, "viewers": {}}}}'
            ),
            "malformed_notice",
        ),
    ],
)
def test_what_a_node_cannot_read_is_refused_with_a_reason(data: bytes, why: str) -> None:
    with pytest.raises(codec.Undecodable) as refused:
        codec.decode_any(data)
    assert refused.value.why == why


def test_state_notices_as_the_scripts_write_them() -> None:
    # Lua's cjson writes an empty list as {}, and a stream that ended as false.
    data = orjson.dumps(
        {
            "v": 1,
            "to": "",
            "type": "State",
            "body": {
                "seq": 7,
                "rooms": {"r": [["a", "n1"], ["b", ""]], "empty": {}},
                "streams": {
                    "r/cam": {"publisher": ["a", "n1"], "room": "r", "maxv": "0", "viewers": {}},
                    "gone": False,
                },
                "later": "ignored",
            },
        }
    )
    assert codec.decode_any(data) == Notice(
        7,
        {"r": [("a", "n1"), ("b", "")], "empty": []},
        {"r/cam": StreamState(("a", "n1"), "r", None, []), "gone": None},
    )
    with pytest.raises(codec.Undecodable):
        codec.decode(data)  # where a peer's message is expected


def test_how_a_description_was_sent_survives_the_trip_and_older_nodes_still_read_it() -> None:
    # Sent as an RTCSessionDescriptionInit, it is delivered as one on the recipient's node too.
    sent = Relayed("a", "b", Route(room="r"), SessionDescription("answer", "v=0\r\n", as_object=True))
    assert codec.decode(codec.encode("p", sent)) == ("p", sent)
    assert render(sent) == (
        "answer",
        {"from": "a", "target": "b", "room": "r", "sdp": {"type": "answer", "sdp": "v=0\r\n"}},
    )
    # One field added, none changed: a node of the previous version reads the rest as before
    # (its peers get the text), and text descriptions are encoded exactly as they were.
    signal = orjson.loads(codec.encode("p", sent))["body"]["signal"]
    assert signal == {"kind": "description", "type": "answer", "sdp": "v=0\r\n", "object": True}
    text = sent._replace(signal=SessionDescription("answer", "v=0\r\n"))
    assert orjson.loads(codec.encode("p", text))["body"]["signal"] == {
        "kind": "description",
        "type": "answer",
        "sdp": "v=0\r\n",
    }
    # And what such a node sends (no `object`) is text.
    assert codec.decode(codec.encode("p", text)) == ("p", text)


def test_fields_a_newer_node_adds_are_ignored() -> None:
    envelope = orjson.loads(codec.encode("p", PeerLeft("r", "x", "left")))
    envelope["body"]["since"] = 12
    envelope["extra"] = True
    assert codec.decode(orjson.dumps(envelope)) == ("p", PeerLeft("r", "x", "left"))
    assert codec.decode(codec.encode_moved("p")) == ("p", None)


def test_skipped_envelopes_are_logged_a_few_times_not_once_each(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    skips = inbox_skips(interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="signaling.cluster.nodes"):
        for second in range(30):
            now[0] = float(second)
            for _ in range(1000):
                skips.skipped("not_json", "garbage")
    assert len(caplog.records) == 5  # the first of each 10 s, and the counts held back before it
    assert "skipped 9999 more" in caplog.records[1].getMessage()
