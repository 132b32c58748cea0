"""The Ant Media WebSocket protocol against a real server, with raw WebSocket clients."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from signaling.transports.antmedia import CLOSE_RECONNECT, AntMediaPeer, ice_server_config, notification
from tests.antmedia_client import AntMediaClient
from tests.conftest import ConnectAntMedia, RunningServer, StartServer
from tests.helpers import SDP_ANSWER, SDP_OFFER
from tests.test_robustness import wait_for

CANDIDATE_LINE = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0"


async def p2p_pair(antmedia: ConnectAntMedia, room: str = "call1") -> tuple[AntMediaClient, AntMediaClient]:
    alice = await antmedia()
    assert await alice.request("join", "notification:joined", streamId=room) == {
        "command": "notification",
        "definition": "joined",
        "streamId": room,
    }
    bob = await antmedia()
    await bob.request("join", "notification:joined", streamId=room, multiPeer=False, mode="both")
    assert await alice.next("start") == {"command": "start", "streamId": room}
    return alice, bob


async def test_ping_and_ice_servers(antmedia: ConnectAntMedia) -> None:
    client = await antmedia()
    assert await client.request("ping", "pong") == {"command": "pong"}
    assert await client.request("getIceServerConfig", "iceServerConfig") == {
        "command": "iceServerConfig",
        "stunServerUri": "stun:127.0.0.1:3478",
        "turnServerUsername": "",
        "turnServerCredential": "",
    }


def test_ice_server_config_prefers_turn_with_credentials() -> None:
    servers: list[dict[str, Any]] = [
        {"urls": "stun:stun.example:3478"},
        {"urls": ["turns:turn.example:5349", "turn:turn.example:3478"], "username": "u", "credential": "c"},
    ]
    assert ice_server_config(servers) == {
        "command": "iceServerConfig",
        "stunServerUri": "turns:turn.example:5349",
        "turnServerUsername": "u",
        "turnServerCredential": "c",
    }
    assert ice_server_config([])["stunServerUri"] == ""


async def test_any_app_name_is_served(antmedia: ConnectAntMedia) -> None:
    for app in ("WebRTCAppEE", "LiveApp", "my-app"):
        client = await antmedia(app=app)
        await client.sync()


async def test_p2p_call(antmedia: ConnectAntMedia) -> None:
    alice, bob = await p2p_pair(antmedia)
    await alice.send("takeConfiguration", streamId="call1", type="offer", sdp=SDP_OFFER)
    assert await bob.next("takeConfiguration") == {
        "command": "takeConfiguration",
        "streamId": "call1",
        "type": "offer",
        "sdp": SDP_OFFER,
        "idMapping": {},
    }
    await bob.send("takeConfiguration", streamId="call1", type="answer", sdp=SDP_ANSWER)
    assert (await alice.next("takeConfiguration"))["sdp"] == SDP_ANSWER
    await alice.send("takeCandidate", streamId="call1", label=0, id="0", candidate=CANDIDATE_LINE)
    assert await bob.next("takeCandidate") == {
        "command": "takeCandidate",
        "streamId": "call1",
        "label": 0,
        "id": "0",
        "candidate": CANDIDATE_LINE,
    }
    await bob.send("takeCandidate", streamId="call1", label=1, id="1", candidate=CANDIDATE_LINE)
    assert (await alice.next("takeCandidate"))["label"] == 1
    await alice.send("peerMessageCommand", streamId="call1", definition="chat", data="hello")
    assert await bob.next("peerMessageCommand") == {
        "command": "peerMessageCommand",
        "streamId": "call1",
        "definition": "chat",
        "data": "hello",
    }


async def test_p2p_third_joiner_and_leaving(antmedia: ConnectAntMedia) -> None:
    alice, bob = await p2p_pair(antmedia)
    carol = await antmedia()
    error = await carol.request("join", "error", streamId="call1")
    assert error["definition"] == "NoSpaceForNewPeer"

    assert await bob.request("leave", "notification:leaved", streamId="call1") == {
        "command": "notification",
        "definition": "leaved",
        "streamId": "call1",
    }
    assert await alice.next("stop") == {"command": "stop", "streamId": "call1"}
    refused = await alice.request("takeConfiguration", "error", streamId="call1", type="offer", sdp=SDP_OFFER)
    assert refused["definition"] == "no_peer_associated_before"

    # The peer that stayed gets a fresh start when someone joins again; a closed socket is a leave.
    await carol.request("join", "notification:joined", streamId="call1")
    assert await alice.next("start") == {"command": "start", "streamId": "call1"}
    await carol.close()
    assert await alice.next("stop") == {"command": "stop", "streamId": "call1"}
    assert alice.pending() == {} and bob.pending() == {}


async def test_relay_before_join_is_refused(antmedia: ConnectAntMedia) -> None:
    client = await antmedia()
    refused = await client.request(
        "takeCandidate", "error", streamId="nowhere", label=0, id="0", candidate="c"
    )
    assert refused["definition"] == "no_peer_associated_before"
    assert refused["streamId"] == "nowhere"


async def test_publish_and_play(antmedia: ConnectAntMedia) -> None:
    publisher = await antmedia()
    viewer = await antmedia()
    missing = await viewer.request("play", "error", streamId="show")
    assert missing["definition"] == "no_stream_exist"

    started = await publisher.request("publish", "notification:publish_started", streamId="show", video=True)
    assert started == {"command": "notification", "definition": "publish_started", "streamId": "show"}
    # The SDK's idle publish connection is closed until a viewer asks for an offer.
    assert await publisher.next("stop") == {"command": "stop", "streamId": "show"}
    await viewer.send("play", streamId="show", room="", trackList=[])
    assert await publisher.next("start") == {"command": "start", "streamId": "show"}
    await publisher.send("takeConfiguration", streamId="show", type="offer", sdp=SDP_OFFER)
    assert (await viewer.next("takeConfiguration"))["type"] == "offer"
    await viewer.send("takeConfiguration", streamId="show", type="answer", sdp=SDP_ANSWER)
    assert (await publisher.next("takeConfiguration"))["type"] == "answer"
    assert (await viewer.next("notification:play_started"))["streamId"] == "show"
    await viewer.send("takeCandidate", streamId="show", label=0, id="0", candidate=CANDIDATE_LINE)
    await publisher.send("takeCandidate", streamId="show", label=0, id="0", candidate=CANDIDATE_LINE)
    assert (await publisher.next("takeCandidate"))["streamId"] == "show"
    assert (await viewer.next("takeCandidate"))["streamId"] == "show"

    # The SDK publisher holds one connection per stream: a second viewer is refused clearly.
    second = await antmedia()
    assert (await second.request("play", "error", streamId="show"))["definition"] == "viewerLimitReached"
    intruder = await antmedia()
    assert (await intruder.request("publish", "error", streamId="show"))["definition"] == "streamIdInUse"
    assert (await publisher.request("publish", "error", streamId="show"))[
        "definition"
    ] == "already_publishing"

    # A viewer that stops frees the seat; the publisher's connection for it is closed.
    assert (await viewer.request("stop", "notification:play_finished", streamId="show"))["streamId"] == "show"
    assert await publisher.next("stop") == {"command": "stop", "streamId": "show"}
    await second.send("play", streamId="show")
    assert await publisher.next("start") == {"command": "start", "streamId": "show"}

    # The publisher stopping ends the play on the other side.
    finished = await publisher.request("stop", "notification:publish_finished", streamId="show")
    assert finished["streamId"] == "show"
    assert await second.next("stop") == {"command": "stop", "streamId": "show"}
    assert (await second.next("notification:play_finished"))["streamId"] == "show"


async def test_publisher_disconnect_stops_its_viewer(antmedia: ConnectAntMedia) -> None:
    publisher = await antmedia()
    await publisher.request("publish", "notification:publish_started", streamId="gone")
    viewer = await antmedia()
    await viewer.send("play", streamId="gone")
    await publisher.next("start")
    await publisher.close()
    assert await viewer.next("stop") == {"command": "stop", "streamId": "gone"}
    await viewer.next("notification:play_finished")


async def test_stream_info(antmedia: ConnectAntMedia) -> None:
    client = await antmedia()
    assert (await client.request("getStreamInfo", "error", streamId="nope"))[
        "definition"
    ] == "no_stream_exist"
    await client.request("publish", "notification:publish_started", streamId="cam")
    info = await client.request("getStreamInfo", "streamInformation", streamId="cam")
    assert info == {"command": "streamInformation", "streamId": "cam", "streamInfo": []}


async def test_conference(antmedia: ConnectAntMedia) -> None:
    alice = await antmedia()
    joined = await alice.request("joinRoom", "notification:joinedTheRoom", room="conf", mode="multitrack")
    alice_stream = joined["streamId"]
    assert joined["room"] == "conf" and joined["streams"] == [] and alice_stream.startswith("conf-")
    await alice.request("publish", "notification:publish_started", streamId=alice_stream, mainTrack="conf")

    bob = await antmedia()
    joined = await bob.request("joinRoom", "notification:joinedTheRoom", room="conf", streamId="bob-cam")
    assert joined["streamId"] == "bob-cam"
    assert joined["streams"] == [alice_stream]
    assert joined["streamList"] == [{"streamId": alice_stream}]
    await bob.request("publish", "notification:publish_started", streamId="bob-cam")
    assert await alice.next("notification:streamJoined") == {
        "command": "notification",
        "definition": "streamJoined",
        "streamId": "bob-cam",
        "room": "conf",
    }
    info = await alice.request("getRoomInfo", "roomInformation", room="conf", streamId=alice_stream)
    assert info["streams"] == ["bob-cam"]

    # Playing a member's stream works like publish/play.
    await bob.send("play", streamId=alice_stream, room="conf")
    assert await alice.next("start") == {"command": "start", "streamId": alice_stream}
    await alice.send("takeConfiguration", streamId=alice_stream, type="offer", sdp=SDP_OFFER)
    assert (await bob.next("takeConfiguration"))["streamId"] == alice_stream

    left = await bob.request("leaveFromRoom", "notification:leavedFromRoom", room="conf", streamId="bob-cam")
    assert left["room"] == "conf"
    assert (await alice.next("notification:streamLeaved"))["streamId"] == "bob-cam"
    assert await alice.next("stop") == {"command": "stop", "streamId": alice_stream}  # bob stopped playing

    # stop of the own stream leaves the room's stream list too.
    await alice.request("stop", "notification:publish_finished", streamId=alice_stream)
    assert (await alice.request("getRoomInfo", "roomInformation", room="conf"))["streams"] == []


@pytest.mark.parametrize(
    ("command", "fields", "definition"),
    [
        ("join", {}, "noStreamNameSpecified"),
        ("join", {"streamId": ""}, "noStreamNameSpecified"),
        ("publish", {"streamId": "bad id!"}, "invalidStreamName"),
        ("play", {"streamId": "a/b"}, "invalidStreamName"),
        ("takeConfiguration", {"streamId": "x", "type": "pranswer", "sdp": "v=0"}, "invalidParameter"),
        ("takeConfiguration", {"streamId": "x", "type": "offer"}, "missingParameter"),
        ("takeCandidate", {"streamId": "x", "label": "0", "candidate": "c"}, "invalidParameter"),
        ("joinRoom", {}, "no_room_specified"),
        ("joinRoom", {"room": "no spaces"}, "invalidRoomName"),
        ("bogusCommand", {}, "unknown_command"),
        ("getTrackList", {"streamId": "x"}, "not_supported"),
    ],
)
async def test_validation_errors(
    antmedia: ConnectAntMedia, command: str, fields: dict[str, object], definition: str
) -> None:
    client = await antmedia()
    error = await client.request(command, "error", **fields)
    assert error["definition"] == definition, error
    assert error["message"]
    await client.sync()  # the connection stays open


@pytest.mark.parametrize(
    ("frame", "definition"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "missing_command"),
        ('{"no": "command"}', "missing_command"),
        ('{"command": 5}', "missing_command"),
        ("[" * 5000 + "]" * 5000, "invalid_json"),
        (b"\x00\x01", "binary_not_supported"),
    ],
)
async def test_malformed_frames(antmedia: ConnectAntMedia, frame: str | bytes, definition: str) -> None:
    alice, bob = await p2p_pair(antmedia)
    await alice.send_raw(frame)
    error = await alice.next("error")
    assert error["definition"] == definition
    await alice.send("takeConfiguration", streamId="call1", type="offer", sdp=SDP_OFFER)
    assert (await bob.next("takeConfiguration"))["sdp"] == SDP_OFFER


async def test_oversized_frame_closes_with_1009(
    start_server: StartServer, antmedia: ConnectAntMedia, caplog: pytest.LogCaptureFixture
) -> None:
    small = await start_server(max_message_bytes=4096, max_sdp_chars=2048)
    alice, bob = await p2p_pair(lambda: antmedia(small.url))
    with caplog.at_level(logging.INFO, logger="signaling"):
        await alice.send("takeConfiguration", streamId="call1", type="offer", sdp="v" * 10000)
        assert await alice.closed == 1009
        assert await bob.next("stop") == {"command": "stop", "streamId": "call1"}
    assert "disconnected (close code 1009)" in caplog.text  # the one line, saying why
    await bob.sync()


async def test_everything_is_released_on_close(server: RunningServer, antmedia: ConnectAntMedia) -> None:
    alice, bob = await p2p_pair(antmedia)
    await alice.request("publish", "notification:publish_started", streamId="cam")
    await bob.send("play", streamId="cam")
    await alice.next("start")
    await bob.request("joinRoom", "notification:joinedTheRoom", room="conf")
    await alice.close()
    await bob.next("stop")
    await bob.close()
    assert server.store.is_empty()
    assert server.hub.delivery.connected() == 0


async def test_a_silent_connection_is_gone_and_frees_its_stream_id(
    start_server: StartServer, antmedia: ConnectAntMedia, caplog: pytest.LogCaptureFixture
) -> None:
    quick = await start_server(antmedia_idle_timeout=0.5)
    ghost = await antmedia(quick.url)  # answers the server's WebSocket pings, sends nothing else
    await ghost.request("publish", "notification:publish_started", streamId="cam")
    with caplog.at_level(logging.INFO, logger="signaling"):
        assert await asyncio.wait_for(ghost.closed, 5) is not None
    assert "silent for 0.5 s: gone" in caplog.text and "binary" not in caplog.text
    # The SDK coming back on a new connection gets its streamId at once.
    back = await antmedia(quick.url)
    started = await back.request("publish", "notification:publish_started", streamId="cam")
    assert started["streamId"] == "cam"


async def test_a_connection_leaves_aiohttp_once_open(
    server: RunningServer, antmedia: ConnectAntMedia
) -> None:
    """Held by a WebSocketLink, not by a request that never ends (see README, "Memory per idle
    connection"); its end is handled as before: the peer leaves what it was in."""
    bob = await antmedia()
    await bob.request("join", "notification:joined", streamId="call")
    alice = await antmedia()
    await alice.request("join", "notification:joined", streamId="call")
    await bob.next("start")  # the first one there makes the offer
    assert len(server.antmedia.links) == 2
    assert server.runner.server is not None and server.runner.server.connections == []
    await alice.close()
    await wait_for(lambda: len(server.antmedia.links) == 1, "alice's link to end")
    assert (await bob.next("stop"))["streamId"] == "call"


def test_a_peer_sent_away_while_its_handshake_is_answered_is_closed_once_attached() -> None:
    """A drain (or a kick) can reach a peer while the hub is still opening its session, before
    its connection has a link: the close is not lost, it is made as soon as there is one."""

    class Link:
        transport = None
        closed = False

        def __init__(self) -> None:
            self.closes: list[tuple[int, bytes]] = []

        def close(self, code: int, reason: bytes) -> None:
            self.closes.append((code, reason))

    peer = AntMediaPeer(None, "am-x", None, "127.0.0.1")  # type: ignore[arg-type]
    peer.write(notification("server_will_stop", message="going"))  # nowhere to write it yet
    peer.write(CLOSE_RECONNECT)
    assert peer.closing
    link = Link()
    peer.attach(link, 1 << 20)  # type: ignore[arg-type]
    assert link.closes == [(CLOSE_RECONNECT.code, CLOSE_RECONNECT.reason)]


async def test_a_connection_lost_without_a_close_logs_only_the_disconnect(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A client whose connection ends without a closing handshake (its network gone, the process
    killed): what ends the link is no frame of the client's, and must not be refused as one, and
    the peer leaves what it was in."""
    quick = await start_server()
    url = quick.url.replace("http", "ws") + "/WebRTCAppEE/websocket"
    async with aiohttp.ClientSession() as http:
        with caplog.at_level(logging.INFO, logger="signaling"):
            ws = await http.ws_connect(url, autoclose=False)
            await ws.send_str('{"command": "join", "streamId": "call"}')
            assert (await ws.receive_json())["definition"] == "joined"
            transport = ws._response.connection.transport  # type: ignore[union-attr]
            assert transport is not None
            transport.abort()
            await wait_for(
                lambda: any("left (disconnected)" in message for message in caplog.messages), "the leave"
            )
    lines = [
        record.getMessage().split(" ", 1)[1] for record in caplog.records if "peer=am-" in record.getMessage()
    ]
    assert lines == [
        "connected from 127.0.0.1 (app WebRTCAppEE)",
        "room=call joined (0 already there)",
        "disconnected (close code 1006)",
        "room=call left (disconnected)",
    ], caplog.text


async def test_the_sdks_reconnect_pattern_is_always_accepted(
    server: RunningServer, antmedia: ConnectAntMedia
) -> None:
    """Ant Media SDKs cannot resume: they `stop`, then `publish` or `join` the same streamId again,
    on the same connection or a new one. Sessions held for socket.io clients must never make that
    a `streamIdInUse` or `NoSpaceForNewPeer`."""
    sdk = await antmedia()
    await sdk.request("publish", "notification:publish_started", streamId="cam")
    await sdk.request("stop", "notification:publish_finished", streamId="cam")
    await sdk.request("publish", "notification:publish_started", streamId="cam")  # same connection
    await sdk.close()
    again = await antmedia()  # a new connection, right after the old one closed
    await again.request("publish", "notification:publish_started", streamId="cam")

    first, other = await antmedia(), await antmedia()
    await first.request("join", "notification:joined", streamId="call")
    await other.request("join", "notification:joined", streamId="call")
    await first.request("stop", "notification:leaved", streamId="call")
    await first.request("join", "notification:joined", streamId="call")
    await first.close()
    replacement = await antmedia()
    await replacement.request("join", "notification:joined", streamId="call")
