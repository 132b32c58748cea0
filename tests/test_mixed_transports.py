"""An Ant Media peer and a socket.io peer sharing calls, streams and rooms on one server."""

from __future__ import annotations

import pytest

from signaling.client import RequestFailed
from tests.conftest import ConnectAntMedia
from tests.helpers import CANDIDATE, SDP_ANSWER, SDP_OFFER, ConnectPeer

CANDIDATE_LINE = CANDIDATE["candidate"]


async def test_p2p_antmedia_first(antmedia: ConnectAntMedia, connect: ConnectPeer) -> None:
    am = await antmedia()
    await am.request("join", "notification:joined", streamId="mixed")
    sio = await connect()
    joined = await sio.join("mixed")
    am_id = joined["peers"][0]["peerId"]
    assert joined["peers"][0]["metadata"] == {"client": "antmedia", "mode": "both"}
    # The peer that was there first offers: the SDK is told to start.
    assert await am.next("start") == {"command": "start", "streamId": "mixed"}

    await am.send("takeConfiguration", streamId="mixed", type="offer", sdp=SDP_OFFER)
    assert await sio.next("offer") == {
        "from": am_id,
        "target": sio.peer_id,
        "room": "mixed",
        "sdp": SDP_OFFER,
    }
    assert sio.peer_id
    await sio.answer(am_id, SDP_ANSWER)
    answer = await am.next("takeConfiguration")
    assert answer == {
        "command": "takeConfiguration",
        "streamId": "mixed",
        "type": "answer",
        "sdp": SDP_ANSWER,
        "idMapping": {},
    }

    await sio.ice_candidate(am_id, {**CANDIDATE, "sdpMid": "1", "sdpMLineIndex": 1})
    assert await am.next("takeCandidate") == {
        "command": "takeCandidate",
        "streamId": "mixed",
        "label": 1,
        "id": "1",
        "candidate": CANDIDATE_LINE,
    }
    await am.send("takeCandidate", streamId="mixed", label=0, id="0", candidate=CANDIDATE_LINE)
    assert (await sio.next("ice-candidate"))["candidate"] == {
        "candidate": CANDIDATE_LINE,
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }

    await am.send("peerMessageCommand", streamId="mixed", definition="chat", data="from am")
    assert (await sio.next("peer-message"))["data"] == "from am"
    await sio.peer_message(am_id, "from sio", definition="chat")
    assert (await am.next("peerMessageCommand"))["data"] == "from sio"

    # Still a two-peer call for socket.io joiners.
    third = await connect()
    with pytest.raises(RequestFailed) as full:
        await third.join("mixed")
    assert full.value.code == "room_full"

    await am.request("leave", "notification:leaved", streamId="mixed")
    assert await sio.next("peer-left") == {"room": "mixed", "peerId": am_id, "reason": "left"}


async def test_p2p_socketio_first(antmedia: ConnectAntMedia, connect: ConnectPeer) -> None:
    sio = await connect()
    await sio.join("mixed")
    am = await antmedia()
    await am.request("join", "notification:joined", streamId="mixed")
    am_id = (await sio.next("peer-joined"))["peerId"]
    assert "start" not in am.pending()  # the socket.io peer, there first, makes the offer

    await sio.offer(am_id, SDP_OFFER)
    assert (await am.next("takeConfiguration"))["type"] == "offer"
    await am.send("takeConfiguration", streamId="mixed", type="answer", sdp=SDP_ANSWER)
    assert (await sio.next("answer"))["sdp"] == SDP_ANSWER

    extra = await antmedia()
    assert (await extra.request("join", "error", streamId="mixed"))["definition"] == "NoSpaceForNewPeer"
    await sio.close()
    assert await am.next("stop") == {"command": "stop", "streamId": "mixed"}


async def test_antmedia_publisher_socketio_viewer(antmedia: ConnectAntMedia, connect: ConnectPeer) -> None:
    publisher = await antmedia()
    await publisher.request("publish", "notification:publish_started", streamId="am-show")
    await publisher.next("stop")
    viewer = await connect()
    played = await viewer.play("am-show")
    assert await publisher.next("start") == {"command": "start", "streamId": "am-show"}

    await publisher.send("takeConfiguration", streamId="am-show", type="offer", sdp=SDP_OFFER)
    offer = await viewer.next("offer")
    assert offer == {
        "from": played["publisher"],
        "target": viewer.peer_id,
        "streamId": "am-show",
        "sdp": SDP_OFFER,
    }
    await viewer.answer(offer["from"], SDP_ANSWER, stream_id="am-show")
    assert (await publisher.next("takeConfiguration"))["type"] == "answer"
    await viewer.ice_candidate(offer["from"], CANDIDATE)
    assert (await publisher.next("takeCandidate"))["streamId"] == "am-show"

    second = await connect()
    with pytest.raises(RequestFailed) as limited:
        await second.play("am-show")
    assert limited.value.code == "viewer_limit_reached"

    await viewer.stop("am-show")
    assert await publisher.next("stop") == {"command": "stop", "streamId": "am-show"}


async def test_socketio_publisher_serves_many_antmedia_viewers(
    antmedia: ConnectAntMedia, connect: ConnectPeer
) -> None:
    publisher = await connect()
    await publisher.publish("sio-show")
    viewers = [await antmedia() for _ in range(3)]
    for viewer in viewers:
        await viewer.send("play", streamId="sio-show")
        viewer_id = (await publisher.next("viewer-joined"))["viewerId"]
        await publisher.offer(viewer_id, SDP_OFFER, stream_id="sio-show")
        assert (await viewer.next("takeConfiguration"))["idMapping"] == {}
        await viewer.send("takeConfiguration", streamId="sio-show", type="answer", sdp=SDP_ANSWER)
        answer = await publisher.next("answer")
        assert answer["from"] == viewer_id and answer["streamId"] == "sio-show"
        assert (await viewer.next("notification:play_started"))["streamId"] == "sio-show"
        await viewer.send("takeCandidate", streamId="sio-show", label=0, id="0", candidate=CANDIDATE_LINE)
        assert (await publisher.next("ice-candidate"))["from"] == viewer_id

    await publisher.close()
    for viewer in viewers:
        assert await viewer.next("stop") == {"command": "stop", "streamId": "sio-show"}
        await viewer.next("notification:play_finished")


async def test_conference_with_both_transports(antmedia: ConnectAntMedia, connect: ConnectPeer) -> None:
    am = await antmedia()
    joined = await am.request("joinRoom", "notification:joinedTheRoom", room="conf")
    am_stream = joined["streamId"]
    sio = await connect()
    reply = await sio.join("conf")
    assert reply["peers"][0]["metadata"] == {"client": "antmedia", "streamId": am_stream}

    await sio.publish("sio-cam", room="conf")
    assert (await am.next("notification:streamJoined"))["streamId"] == "sio-cam"
    await am.request("publish", "notification:publish_started", streamId=am_stream, mainTrack="conf")
    published = await sio.next("stream-published")
    assert published["streamId"] == am_stream and published["room"] == "conf"

    # Each plays the other's stream.
    await sio.play(am_stream)
    assert await am.next("start") == {"command": "start", "streamId": am_stream}
    await am.send("play", streamId="sio-cam", room="conf")
    assert (await sio.next("viewer-joined"))["streamId"] == "sio-cam"

    await sio.leave("conf")
    assert (await am.next("notification:streamLeaved"))["streamId"] == "sio-cam"
    assert (await am.next("notification:play_finished"))["streamId"] == "sio-cam"

    # Leaving the room also ended the socket.io peer's play of the Ant Media stream.
    assert await am.next("stop") == {"command": "stop", "streamId": am_stream}
