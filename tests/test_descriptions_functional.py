"""Clients written for the classic relay send the description object itself (`sdp:
pc.localDescription`) and hand what arrives to `pc.setRemoteDescription(data.sdp)`: each
description reaches its recipient in the form its sender used, text or object, checked as closely
either way."""

from __future__ import annotations

from typing import Any

from tests.cluster_support import StartNodes
from tests.conftest import ConnectAntMedia
from tests.helpers import SDP_ANSWER, SDP_OFFER, ConnectPeer, joined_pair


def described(kind: str, sdp: str) -> dict[str, str]:
    """An RTCSessionDescriptionInit, as `JSON.stringify(pc.localDescription)` writes it."""
    return {"type": kind, "sdp": sdp}


async def test_a_description_object_arrives_as_an_object(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect)
    assert alice.peer_id and bob.peer_id
    # As a tutorial sends it: no ack.
    await alice.emit("offer", {"target": bob.peer_id, "sdp": described("offer", SDP_OFFER)})
    assert await bob.next("offer") == {
        "from": alice.peer_id,
        "target": bob.peer_id,
        "room": "pair",
        "sdp": described("offer", SDP_OFFER),
    }
    reply = await bob.request("answer", {"target": alice.peer_id, "sdp": described("answer", SDP_ANSWER)})
    assert reply == {"ok": True, "room": "pair"}
    assert (await alice.next("answer"))["sdp"] == described("answer", SDP_ANSWER)
    assert alice.pending() == {} and bob.pending() == {}  # in particular, no error events


async def test_each_sender_is_delivered_in_its_own_form(connect: ConnectPeer) -> None:
    # A peer sending text gets text, whatever the other sends: each side reads what it writes.
    alice, bob = await joined_pair(connect)
    assert alice.peer_id and bob.peer_id
    await alice.request("offer", {"target": bob.peer_id, "sdp": described("offer", SDP_OFFER)})
    assert (await bob.next("offer"))["sdp"] == described("offer", SDP_OFFER)
    await bob.answer(alice.peer_id, SDP_ANSWER)
    assert (await alice.next("answer"))["sdp"] == SDP_ANSWER
    await bob.offer(alice.peer_id, SDP_OFFER)
    assert (await alice.next("offer"))["sdp"] == SDP_OFFER


async def test_description_objects_through_a_stream(connect: ConnectPeer) -> None:
    publisher = await connect()
    await publisher.publish("cam")
    viewer = await connect()
    await viewer.play("cam")
    viewer_id = (await publisher.next("viewer-joined"))["viewerId"]
    await publisher.request(
        "offer", {"target": viewer_id, "streamId": "cam", "sdp": described("offer", SDP_OFFER)}
    )
    offer = await viewer.next("offer")
    assert offer["streamId"] == "cam" and offer["sdp"] == described("offer", SDP_OFFER)
    reply = await viewer.request(
        "answer", {"target": offer["from"], "streamId": "cam", "sdp": described("answer", SDP_ANSWER)}
    )
    assert reply == {"ok": True, "streamId": "cam"}
    assert (await publisher.next("answer"))["sdp"] == described("answer", SDP_ANSWER)


async def test_the_form_survives_a_relay_between_nodes(start_nodes: StartNodes, connect: ConnectPeer) -> None:
    a, b = await start_nodes(2)
    alice = await connect(a.url)
    await alice.join("cross")
    bob = await connect(b.url)
    await bob.join("cross")
    await alice.next("peer-joined")
    assert alice.peer_id and bob.peer_id
    await alice.request("offer", {"target": bob.peer_id, "sdp": described("offer", SDP_OFFER)})
    assert (await bob.next("offer"))["sdp"] == described("offer", SDP_OFFER)
    await bob.answer(alice.peer_id, SDP_ANSWER)
    assert (await alice.next("answer"))["sdp"] == SDP_ANSWER


async def test_antmedia_peers_get_their_own_format(antmedia: ConnectAntMedia, connect: ConnectPeer) -> None:
    am = await antmedia()
    await am.request("join", "notification:joined", streamId="mixed")
    sio = await connect()
    am_id = (await sio.join("mixed"))["peers"][0]["peerId"]
    await am.next("start")
    await sio.request("offer", {"target": am_id, "sdp": described("offer", SDP_OFFER)})
    assert await am.next("takeConfiguration") == {
        "command": "takeConfiguration",
        "streamId": "mixed",
        "type": "offer",
        "sdp": SDP_OFFER,
        "idMapping": {},
    }


async def refused(client: Any, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply = await client.request(event, payload)
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == "validation_failed", reply
    return dict(reply["error"])


async def test_description_objects_are_checked_as_closely_as_text(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect)
    target = bob.peer_id
    error = await refused(alice, "offer", {"target": target, "sdp": described("answer", SDP_OFFER)})
    assert error["fields"] == {"sdp": {"type": ["Must be 'offer', the event's own type."]}}
    error = await refused(alice, "answer", {"target": target, "sdp": described("answer", "v" * 70000)})
    assert "65536" in error["message"]
    error = await refused(alice, "answer", {"target": target, "sdp": {**described("answer", "v=0"), "x": 1}})
    assert error["fields"] == {"sdp": {"x": ["Unknown field."]}}
    await refused(alice, "offer", {"target": target, "sdp": {"sdp": SDP_OFFER}})
    assert bob.pending() == {}


async def test_the_python_client_sends_either_form(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect)
    assert alice.peer_id and bob.peer_id
    await alice.offer(bob.peer_id, described("offer", SDP_OFFER))
    assert (await bob.next("offer"))["sdp"] == described("offer", SDP_OFFER)
    await bob.answer(alice.peer_id, SDP_ANSWER)
    assert (await alice.next("answer"))["sdp"] == SDP_ANSWER
