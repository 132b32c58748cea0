"""Publish/play (one to many) and peer messages over socket.io, against a real server."""

from __future__ import annotations

import pytest

from signaling.client import RequestFailed
from tests.helpers import CANDIDATE, SDP_ANSWER, SDP_OFFER, ConnectPeer, joined_pair


async def test_publisher_serves_each_viewer_on_its_own_connection(connect: ConnectPeer) -> None:
    publisher = await connect()
    ice = [{"urls": "stun:127.0.0.1:3478"}]
    assert await publisher.publish("show") == {
        "ok": True,
        "streamId": "show",
        "room": None,
        "iceServers": ice,
    }
    viewers = [await connect() for _ in range(3)]
    for viewer in viewers:
        reply = await viewer.play("show")
        assert reply == {
            "ok": True,
            "streamId": "show",
            "publisher": publisher.peer_id,
            "room": None,
            "iceServers": ice,
        }
        joined = await publisher.next("viewer-joined")
        viewer_id = joined["viewerId"]
        assert joined == {"streamId": "show", "viewerId": viewer.peer_id}
        await publisher.offer(viewer_id, SDP_OFFER, stream_id="show")
        offer = await viewer.next("offer")
        assert offer == {
            "from": publisher.peer_id,
            "target": viewer_id,
            "streamId": "show",
            "sdp": SDP_OFFER,
        }
        await viewer.answer(offer["from"], SDP_ANSWER)  # the stream is found without naming it
        assert (await publisher.next("answer"))["streamId"] == "show"
        await viewer.ice_candidate(offer["from"], CANDIDATE, stream_id="show")
        assert (await publisher.next("ice-candidate"))["candidate"] == CANDIDATE

    # Viewers of one stream cannot reach each other through it.
    second = viewers[1].peer_id or ""
    with pytest.raises(RequestFailed) as refused:
        await viewers[0].offer(second, SDP_OFFER, stream_id="show")
    assert refused.value.code == "unknown_target"

    assert await viewers[0].stop("show") == {"ok": True, "streamId": "show", "stopped": "played"}
    left = await publisher.next("viewer-left")
    assert left == {"streamId": "show", "viewerId": viewers[0].peer_id, "reason": "stopped"}
    assert (await publisher.stop("show"))["stopped"] == "published"
    for viewer in viewers[1:]:
        assert await viewer.next("stream-ended") == {"streamId": "show", "reason": "stopped"}
    assert viewers[0].pending() == {}


async def test_stream_errors(connect: ConnectPeer) -> None:
    publisher = await connect()
    other = await connect()
    await publisher.publish("solo", max_viewers=1)
    cases = [
        (other.publish("solo"), "stream_in_use"),
        (publisher.publish("solo"), "already_publishing"),
        (other.play("missing"), "no_such_stream"),
        (publisher.play("solo"), "already_publishing"),
        (other.stop("solo"), "not_streaming"),
        (other.publish("cam", room="not-joined"), "not_in_room"),
    ]
    for request, code in cases:
        with pytest.raises(RequestFailed) as refused:
            await request
        assert refused.value.code == code
    await other.play("solo")
    third = await connect()
    with pytest.raises(RequestFailed) as limited:
        await third.play("solo")
    assert limited.value.code == "viewer_limit_reached"


async def test_room_streams_are_announced_to_the_room(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect, "conf")
    await alice.publish("alice-cam", room="conf")
    published = await bob.next("stream-published")
    assert published == {"room": "conf", "streamId": "alice-cam", "peerId": alice.peer_id}
    await bob.play("alice-cam")
    await alice.next("viewer-joined")
    await alice.close()
    assert await bob.next("stream-ended") == {"streamId": "alice-cam", "reason": "disconnected"}
    assert (await bob.next("stream-unpublished"))["streamId"] == "alice-cam"
    assert (await bob.next("peer-left"))["reason"] == "disconnected"


async def test_viewer_disconnect_tells_the_publisher(connect: ConnectPeer) -> None:
    publisher = await connect()
    await publisher.publish("show")
    viewer = await connect()
    await viewer.play("show")
    viewer_id = (await publisher.next("viewer-joined"))["viewerId"]
    await viewer.close()
    assert await publisher.next("viewer-left") == {
        "streamId": "show",
        "viewerId": viewer_id,
        "reason": "disconnected",
    }


async def test_peer_messages(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect)
    assert bob.peer_id
    await alice.peer_message(bob.peer_id, {"text": "hi", "n": [1, 2]}, definition="chat")
    assert await bob.next("peer-message") == {
        "from": alice.peer_id,
        "target": bob.peer_id,
        "room": "pair",
        "definition": "chat",
        "data": {"text": "hi", "n": [1, 2]},
    }
    refused = await alice.request("peer-message", {"target": bob.peer_id, "data": "x" * 20000})
    assert refused["error"]["code"] == "validation_failed"
    both = await alice.request(
        "peer-message", {"target": bob.peer_id, "data": 1, "room": "pair", "streamId": "s"}
    )
    assert "streamId" in both["error"]["fields"]
