"""Every kind of bad input gets a structured error, one warning line, and disturbs nobody else."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from signaling.client import SignalingClient
from tests.conftest import RunningServer, StartServer
from tests.helpers import CANDIDATE, SDP_OFFER, ConnectPeer, joined_pair


async def expect_error(client: SignalingClient, code: str, event: str, *args: Any) -> dict[str, Any]:
    reply = await client.request(event, *args)
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    return dict(reply["error"])


@pytest.mark.parametrize("event", ["join", "leave", "offer", "answer", "ice-candidate"])
@pytest.mark.parametrize(
    ("payload", "described"),
    [("a string", "a string"), (42, "a number"), (["list"], "an array"), (True, "a boolean")],
)
async def test_non_object_payloads(connect: ConnectPeer, event: str, payload: Any, described: str) -> None:
    alice = await connect()
    error = await expect_error(alice, "invalid_payload", event, payload)
    assert described in error["message"]


@pytest.mark.parametrize("event", ["join", "offer", "ice-candidate"])
async def test_binary_payloads(connect: ConnectPeer, event: str) -> None:
    alice = await connect()
    error = await expect_error(alice, "invalid_payload", event, b"\x00\x01binary")
    assert "binary" in error["message"]


async def test_binary_inside_an_object_is_refused(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect)
    error = await expect_error(alice, "invalid_payload", "offer", {"target": bob.peer_id, "sdp": b"v=0"})
    assert "binary" in error["message"]
    error = await expect_error(alice, "invalid_payload", "join", {"room": "x", "metadata": {"k": b"1"}})
    assert "binary" in error["message"]
    assert bob.pending() == {}
    # The connection carries on normally after refused binary packets and their attachments.
    assert bob.peer_id
    await alice.offer(bob.peer_id, SDP_OFFER)
    assert (await bob.next("offer"))["sdp"] == SDP_OFFER


async def test_missing_and_extra_arguments(connect: ConnectPeer) -> None:
    alice = await connect()
    await expect_error(alice, "invalid_payload", "join")
    error = await expect_error(alice, "invalid_payload", "join", {"room": "a"}, {"room": "b"})
    assert "2 arguments" in error["message"]


@pytest.mark.parametrize(
    ("event", "payload", "field"),
    [
        ("join", {}, "room"),
        ("join", {"room": ""}, "room"),
        ("join", {"room": "x" * 65}, "room"),
        ("join", {"room": "no spaces"}, "room"),
        ("join", {"room": "ok", "colour": "red"}, "colour"),
        ("join", {"room": 5}, "room"),
        ("join", {"room": "ok", "metadata": "name"}, "metadata"),
        ("join", {"room": "ok", "metadata": {"big": "x" * 5000}}, "metadata"),
        ("leave", {}, "room"),
        ("offer", {"sdp": SDP_OFFER}, "target"),
        ("offer", {"target": "p"}, "sdp"),
        ("offer", {"target": "p", "sdp": ""}, "sdp"),
        # An RTCSessionDescriptionInit is checked as closely as the text: its type is the event's,
        # its SDP as long as the text may be, nothing else in it.
        ("offer", {"target": "p", "sdp": {"type": "answer", "sdp": SDP_OFFER}}, "sdp"),
        ("offer", {"target": "p", "sdp": {"type": "pranswer", "sdp": SDP_OFFER}}, "sdp"),
        ("offer", {"target": "p", "sdp": {"sdp": SDP_OFFER}}, "sdp"),
        ("answer", {"target": "p", "sdp": {"type": "answer", "sdp": "v" * 70000}}, "sdp"),
        ("answer", {"target": "p", "sdp": {"type": "answer", "sdp": ""}}, "sdp"),
        ("answer", {"target": "p", "sdp": {"type": "answer", "sdp": SDP_OFFER, "x": 1}}, "sdp"),
        ("offer", {"target": "p", "sdp": ["offer", SDP_OFFER]}, "sdp"),
        ("offer", {"target": 7, "sdp": SDP_OFFER}, "target"),
        ("answer", {"target": "p", "sdp": "v" * 70000}, "sdp"),
        ("answer", {"target": "p", "sdp": SDP_OFFER, "type": "answer"}, "type"),
        ("ice-candidate", {"target": "p"}, "candidate"),
        ("ice-candidate", {"target": "p", "candidate": "candidate:1 1 udp"}, "candidate"),
        ("ice-candidate", {"target": "p", "candidate": {**CANDIDATE, "sdpMLineIndex": "0"}}, "candidate"),
        ("ice-candidate", {"target": "p", "candidate": {**CANDIDATE, "sdpMLineIndex": 1.5}}, "candidate"),
        ("ice-candidate", {"target": "p", "candidate": {**CANDIDATE, "candidate": "c" * 3000}}, "candidate"),
        (
            "ice-candidate",
            {"target": "p", "candidate": {"candidate": "candidate:1 1 udp 1 h 1 typ host"}},
            "candidate",
        ),
        ("ice-candidate", {"target": "p", "candidate": {**CANDIDATE, "extra": 1}}, "candidate"),
    ],
)
async def test_invalid_fields(connect: ConnectPeer, event: str, payload: dict[str, Any], field: str) -> None:
    alice = await connect()
    error = await expect_error(alice, "validation_failed", event, payload)
    assert field in error["fields"], error
    assert field in error["message"]
    json.dumps(error)  # the body must survive any JSON encoder a client uses


async def test_unknown_fields_are_refused_with_where_app_data_goes(connect: ConnectPeer) -> None:
    # Classic relays pass along whatever the sender adds; here the refusal points to the place for it.
    alice, bob = await joined_pair(connect)
    error = await expect_error(
        alice, "validation_failed", "offer", {"target": bob.peer_id, "sdp": SDP_OFFER, "caller": "ada"}
    )
    assert list(error["fields"]) == ["caller"]
    assert "peer-message" in error["message"] and "metadata" in error["message"], error
    error = await expect_error(
        alice, "validation_failed", "ice-candidate", {"target": bob.peer_id, "candidate": None, "call": 1}
    )
    assert "peer-message" in error["message"]
    error = await expect_error(alice, "validation_failed", "join", {"room": "other", "name": "ada"})
    assert "`metadata`" in error["message"]
    assert bob.pending() == {}


async def test_unknown_events(connect: ConnectPeer) -> None:
    alice = await connect()
    error = await expect_error(alice, "unknown_event", "shout", {"text": "hi"})
    assert "shout" in error["message"] and "offer" in error["message"]


@pytest.mark.parametrize("event", ["disconnect", "connect"])
async def test_reserved_event_names_cannot_be_spoofed(connect: ConnectPeer, event: str) -> None:
    alice, bob = await joined_pair(connect)
    await expect_error(alice, "unknown_event", event, "spoofed")
    assert bob.peer_id
    await alice.offer(bob.peer_id, SDP_OFFER)
    assert (await bob.next("offer"))["from"] == alice.peer_id
    assert bob.pending() == {}  # in particular, no peer-left for alice


async def test_relay_before_join(connect: ConnectPeer) -> None:
    alice = await connect()
    bob = await connect()
    await bob.join("lobby")
    assert bob.peer_id
    await expect_error(alice, "not_joined", "offer", {"target": bob.peer_id, "sdp": SDP_OFFER})
    await expect_error(alice, "not_joined", "ice-candidate", {"target": bob.peer_id, "candidate": None})
    assert bob.pending() == {}


async def test_unknown_target_and_self_target(connect: ConnectPeer) -> None:
    alice, _bob = await joined_pair(connect)
    await expect_error(alice, "unknown_target", "offer", {"target": "nobody", "sdp": SDP_OFFER})
    error = await expect_error(alice, "unknown_target", "offer", {"target": alice.peer_id, "sdp": SDP_OFFER})
    assert "yourself" in error["message"]


async def test_leaving_a_room_one_is_not_in(connect: ConnectPeer) -> None:
    alice = await connect()
    await expect_error(alice, "not_in_room", "leave", {"room": "elsewhere"})


async def test_without_ack_the_error_arrives_as_an_error_event(connect: ConnectPeer) -> None:
    alice = await connect()
    await alice.emit("offer", {"target": "nobody"})
    error = await alice.next("error")
    assert error["code"] == "validation_failed"
    assert "sdp" in error["fields"]
    await alice.emit("nonsense")
    assert (await alice.next("error"))["code"] == "unknown_event"
    # A request that succeeds without an ack sends nothing back.
    await alice.emit("join", {"room": "quiet"})
    assert (await alice.request("leave", {"room": "quiet"}))["ok"] is True
    assert alice.pending() == {}


async def test_refusals_log_one_warning_without_traceback(
    connect: ConnectPeer, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await connect()
    with caplog.at_level(logging.WARNING, logger="signaling"):
        await expect_error(alice, "validation_failed", "join", {"room": "bad room"})
    records = [r for r in caplog.records if r.name.startswith("signaling")]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].exc_info is None
    assert (alice.peer_id or "") in records[0].getMessage()
    assert "validation_failed" in records[0].getMessage()


class RawSocket:
    """A socket.io client speaking the wire protocol by hand, to send what no library would."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def receive_text(self) -> str:
        while True:
            message = await self.ws.receive(timeout=10)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            if message.data == "2":  # engine.io ping
                await self.ws.send_str("3")
                continue
            return str(message.data)


@pytest.fixture
async def raw(server: RunningServer) -> AsyncIterator[RawSocket]:
    async with aiohttp.ClientSession() as http:
        url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with http.ws_connect(url) as ws:
            sock = RawSocket(ws)
            assert (await sock.receive_text()).startswith("0")
            await sock.send("40")
            assert (await sock.receive_text()).startswith("40")
            assert (await sock.receive_text()).startswith('42["session"')
            yield sock


@pytest.mark.parametrize(
    "packet",
    [
        "42",  # no event at all
        "42[]",  # empty event array
        "42[7,{}]",  # event name that is not a string
        '42{"not":"an array"}',
        '42["join",{"room":',  # truncated JSON
        "4-",  # unknown packet type
        "45-",  # binary event with no attachment count
        '42["join",' + "[" * 50000 + "]" * 50000 + "]",  # nesting deeper than the JSON decoder's stack
        '451-1["offer",{"_placeholder":true,"num":5}]',  # attachment reference out of range
        '451-["offer",{"_placeholder":true,"num":"a"}]',  # attachment reference of the wrong type
    ],
)
async def test_malformed_packets_do_not_disturb_others(
    raw: RawSocket, connect: ConnectPeer, packet: str, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = await joined_pair(connect)
    with caplog.at_level(logging.WARNING):
        await raw.send(packet)
        if packet.startswith("451"):
            await raw.ws.send_bytes(b"\x00attachment")
        # The raw connection still works: an ack'd request after the bad packet is answered.
        await raw.send('429["join",{"room":"raw"}]')
        reply = await _next_ack(raw, 9)
    assert reply[0]["ok"] is True
    assert bob.peer_id
    await alice.offer(bob.peer_id, SDP_OFFER)
    assert (await bob.next("offer"))["sdp"] == SDP_OFFER
    assert all(r.exc_info is None for r in caplog.records)


async def _next_ack(raw: RawSocket, ack_id: int) -> Any:
    """The arguments of the ack with this id; other packets (error events, ...) are skipped."""
    prefix = f"43{ack_id}["
    while True:
        text = await raw.receive_text()
        if text.startswith(prefix):
            return json.loads(text[len(prefix) - 1 :])


async def test_non_finite_numbers_are_refused(raw: RawSocket) -> None:
    # Sent raw: JSON libraries differ on NaN, and a peer must never be handed one to parse.
    await raw.send('421["join",{"room":"ok","metadata":{"n":NaN}}]')
    reply = await _next_ack(raw, 1)
    assert reply[0]["error"]["code"] == "validation_failed"
    assert "metadata" in reply[0]["error"]["fields"]


async def test_binary_packets_are_refused_without_buffering(raw: RawSocket) -> None:
    # Declares three attachments: all three are dropped as they come, then the connection goes on.
    await raw.send('453-7["offer",{"target":"x","sdp":{"_placeholder":true,"num":0}}]')
    reply = await _next_ack(raw, 7)
    assert reply[0]["error"]["code"] == "invalid_payload"
    for _ in range(3):
        await raw.ws.send_bytes(b"\x01" * 1000)
    await raw.send('428["join",{"room":"after-binary"}]')
    assert (await _next_ack(raw, 8))[0]["ok"] is True


async def test_non_string_event_name_gets_structured_error(raw: RawSocket) -> None:
    await raw.send("421[7,{}]")
    reply = await _next_ack(raw, 1)
    assert reply[0]["ok"] is False
    assert reply[0]["error"]["code"] == "unknown_event"


async def test_oversized_message_closes_only_that_connection(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    small = await start_server(max_message_bytes=4096, max_sdp_chars=2048)
    alice, bob = await joined_pair(lambda: connect(small.url))
    flooder = await connect(small.url)
    disconnected = flooder.next("disconnect")
    await flooder.emit("offer", {"target": alice.peer_id, "sdp": "v" * 10000})
    await disconnected
    assert not flooder.sio.connected
    assert alice.peer_id and bob.peer_id
    await bob.offer(alice.peer_id, SDP_OFFER[:2000])
    assert (await alice.next("offer"))["from"] == bob.peer_id


async def test_a_large_event_that_is_not_json_we_read_is_answered(server: RunningServer) -> None:
    # NaN is not JSON; orjson refuses it, and a large message is not handed to the slower parser
    # that would read it: still, the client gets its answer, not silence. (Raw frames: a Python
    # client in this process would write NaN as null, with the server's JSON.)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{server.url}/socket.io/?EIO=4&transport=websocket")
        await ws.receive(timeout=5)
        await ws.send_str("40")
        await ws.receive(timeout=5)
        await ws.receive(timeout=5)  # the session event
        await ws.send_str('421["offer",{"target":"x","sdp":"' + "x" * 9000 + '","n":NaN}]')
        answer = (await ws.receive(timeout=5)).data
        assert answer.startswith("431[") and '"invalid_payload"' in answer
        await ws.send_str('422["join",{"room":"still-served"}]')
        assert (await ws.receive(timeout=5)).data.startswith('432[{"ok":true')
        await ws.close()
