"""What one client must not be able to do to the server or to others: stall them by not reading,
grow server state without bound, reach into rooms it is not in, or confuse the adapter's state."""

from __future__ import annotations

import asyncio
import random

import aiohttp
import pytest

from signaling.client import RequestFailed, SignalingClient
from signaling.core.store import MemoryStore, Route
from tests.conftest import ConnectAntMedia, RunningServer, StartServer
from tests.helpers import CANDIDATE, SDP_OFFER, ConnectPeer

BIG_SDP = "v=0\r\n" + "a=x-filler:" + "x" * 60000 + "\r\n"


async def wait_for(condition: object, what: str, seconds: float = 10) -> None:
    # Server-side effects of a closed socket happen asynchronously; poll them, bounded.
    for _ in range(int(seconds / 0.02)):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def flood_until_dropped(sender: SignalingClient, target: str) -> None:
    """Far more than socket buffers hold: every request must still be answered promptly, first
    delivered, then refused once the silent target has been cut off."""
    outcomes = set()
    for _ in range(400):
        reply = await asyncio.wait_for(sender.request("offer", {"target": target, "sdp": BIG_SDP}), 5)
        outcomes.add(reply["ok"] or reply["error"]["code"])
    assert outcomes == {True, "unknown_target"}, outcomes


async def test_antmedia_peer_that_stops_reading_is_dropped_not_waited_for(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    small = await start_server(max_unread_bytes=65536)
    async with aiohttp.ClientSession() as http:
        # Joins a call, then never reads another byte.
        ws = await http.ws_connect(small.url.replace("http", "ws") + "/WebRTCAppEE/websocket")
        await ws.send_str('{"command":"join","streamId":"stall"}')
        sender = await connect(small.url)
        await sender.join("stall")
        target = next(iter(set(small.store._peer_rooms) - {sender.peer_id}))  # the silent peer's id
        await flood_until_dropped(sender, target)
        await wait_for(lambda: target not in small.store._peer_rooms, "the silent peer to be dropped")
        assert sender.sio.connected
        await ws.close()


async def test_socketio_peer_that_stops_reading_is_dropped(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    # Without sessions (grace 0): a dropped peer is unknown at once, not held.
    small = await start_server(max_unread_bytes=65536, session_grace=0)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(small.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket")
        await ws.receive(timeout=5)
        await ws.send_str("40")
        await ws.receive(timeout=5)
        await ws.send_str('42["join",{"room":"stall"}]')
        sender = await connect(small.url)
        joined = await sender.join("stall")
        target = joined["peers"][0]["peerId"]
        await flood_until_dropped(sender, target)
        assert sender.sio.connected
        await ws.close()


async def test_rooms_and_streams_per_peer_are_capped(start_server: StartServer, connect: ConnectPeer) -> None:
    tight = await start_server(max_rooms_per_peer=3, max_streams_per_peer=2)
    client = await connect(tight.url)
    for room in ("a", "b", "c"):
        await client.join(room)
    with pytest.raises(RequestFailed) as rooms:
        await client.join("d")
    assert rooms.value.code == "too_many_rooms"
    await client.publish("s1")
    await client.publish("s2")
    with pytest.raises(RequestFailed) as streams:
        await client.publish("s3")
    assert streams.value.code == "too_many_streams"
    other = await connect(tight.url)
    await other.publish("o1")
    with pytest.raises(RequestFailed) as plays:
        await client.play("o1")
    assert plays.value.code == "too_many_streams"


async def test_room_streams_are_only_for_room_members(
    connect: ConnectPeer, antmedia: ConnectAntMedia
) -> None:
    member = await antmedia()
    joined = await member.request("joinRoom", "notification:joinedTheRoom", room="secret")
    await member.request("publish", "notification:publish_started", streamId=joined["streamId"])

    outsider = await antmedia()
    refused = await outsider.request("getRoomInfo", "error", room="secret")
    assert refused["definition"] == "not_in_room"
    assert joined["streamId"] not in str(refused)
    missing = await outsider.request("play", "error", streamId=joined["streamId"])
    assert missing["definition"] == "no_stream_exist"
    sio_outsider = await connect()
    with pytest.raises(RequestFailed) as refused_play:
        await sio_outsider.play(joined["streamId"])
    assert refused_play.value.code == "no_such_stream"
    assert "start" not in member.pending()  # the publisher was never asked to offer to outsiders


async def test_a_rooms_stream_ids_are_its_own_and_no_oracle(
    connect: ConnectPeer, antmedia: ConnectAntMedia, server: RunningServer
) -> None:
    member = await connect()
    await member.join("secret")
    await member.publish("cam", room="secret")
    viewer = await connect()
    await viewer.join("secret")
    # From outside the room the id is free: publishing it succeeds, so it tells nothing (it
    # answered stream_in_use while play said no_such_stream).
    outsider = await connect()
    await outsider.join("lobby")
    for name in ("cam", "nothing-there"):  # naming the room answers the same, whatever it holds
        refused = await outsider.request("publish", {"streamId": name, "room": "secret"})
        assert refused["error"]["code"] == "not_in_room" and "secret/" not in refused["error"]["message"]
    assert (await outsider.publish("cam"))["room"] is None
    other_room = await connect()
    await other_room.join("elsewhere")
    await other_room.publish("cam", room="elsewhere")
    # Each finds the stream of its own room first, then the one in no room.
    assert (await viewer.play("cam"))["publisher"] == member.peer_id
    passer_by = await connect()
    assert (await passer_by.play("cam"))["publisher"] == outsider.peer_id
    offer = await member.request("offer", {"target": viewer.peer_id, "sdp": "v=0", "streamId": "cam"})
    assert offer == {"ok": True, "streamId": "cam"}
    assert (await viewer.next("offer"))["streamId"] == "cam"
    await member.stop("cam")
    assert (await viewer.next("stream-ended"))["streamId"] == "cam"
    assert (await passer_by.stop("cam"))["stopped"] == "played"
    sdk = await antmedia()
    started = await sdk.request("publish", "notification:publish_started", streamId="cam2")
    assert started["streamId"] == "cam2"
    conference = await antmedia()
    joined = await conference.request("joinRoom", "notification:joinedTheRoom", room="conf", streamId="cam2")
    await conference.request("publish", "notification:publish_started", streamId=joined["streamId"])
    assert {s.stream_id for s in await server.hub.room_streams("conf")} == {"cam2"}


async def test_p2p_calls_and_conferences_do_not_mix(connect: ConnectPeer, antmedia: ConnectAntMedia) -> None:
    host = await antmedia()
    await host.request("joinRoom", "notification:joinedTheRoom", room="meeting")
    caller = await antmedia()
    assert (await caller.request("join", "error", streamId="meeting"))["definition"] == "room_mode_conflict"
    await caller.request("join", "notification:joined", streamId="call")
    joiner = await antmedia()
    assert (await joiner.request("joinRoom", "error", room="call"))["definition"] == "room_mode_conflict"
    # socket.io peers may join either, within its size.
    sio = await connect()
    await sio.join("meeting")
    await sio.join("call")


async def test_antmedia_state_follows_the_core(antmedia: ConnectAntMedia) -> None:
    peer = await antmedia()
    # A P2P call left with leaveFromRoom is gone; the same name can become a conference.
    await peer.request("join", "notification:joined", streamId="s1")
    await peer.request("leaveFromRoom", "notification:leavedFromRoom", room="s1")
    joined = await peer.request("joinRoom", "notification:joinedTheRoom", room="s1")
    other = await antmedia()
    await other.request("joinRoom", "notification:joinedTheRoom", room="s1")
    assert "start" not in peer.pending()  # no P2P offer is asked of a conference member
    # A conference left with leave: publishing the id it was given is a plain publish now.
    await peer.request("leave", "notification:leaved", streamId="s1")
    started = await peer.request("publish", "notification:publish_started", streamId=joined["streamId"])
    assert started["streamId"] == joined["streamId"]
    # A P2P call's name cannot be published by the same connection.
    await peer.request("join", "notification:joined", streamId="s5")
    assert (await peer.request("publish", "error", streamId="s5"))["definition"] == "streamIdInUse"


async def test_candidates_without_an_mline_are_refused_on_both_protocols(
    connect: ConnectPeer, antmedia: ConnectAntMedia
) -> None:
    am = await antmedia()
    refused = await am.request("takeCandidate", "error", streamId="x", candidate=CANDIDATE["candidate"])
    assert refused["definition"] == "invalidParameter"
    assert "label" in refused["fields"]
    sio = await connect()
    reply = await sio.request(
        "ice-candidate", {"target": "x", "candidate": {"candidate": CANDIDATE["candidate"]}}
    )
    assert reply["error"]["code"] == "validation_failed"


async def test_client_is_a_valid_antmedia_app_name(antmedia: ConnectAntMedia) -> None:
    client = await antmedia(app="client")
    await client.sync()


class YieldingStore(MemoryStore):
    """A store that pauses a random moment on every route decision, as a networked one would."""

    async def route(
        self, sender: str, target: str, *, room: str | None = None, stream_id: str | None = None
    ) -> Route:
        await asyncio.sleep(random.uniform(0, 0.003))
        return await super().route(sender, target, room=room, stream_id=stream_id)


async def test_order_is_kept_even_when_handling_pauses(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    paused = await start_server(store=YieldingStore())
    alice = await connect(paused.url)
    bob = await connect(paused.url)
    await alice.join("ordered")
    await bob.join("ordered")
    assert bob.peer_id
    for i in range(100):
        await alice.emit(
            "ice-candidate", {"target": bob.peer_id, "candidate": {**CANDIDATE, "sdpMid": str(i)}}
        )
    received = [(await bob.next("ice-candidate"))["candidate"]["sdpMid"] for _ in range(100)]
    assert received == [str(i) for i in range(100)]


async def test_join_ack_lists_the_rooms_streams(connect: ConnectPeer, server: RunningServer) -> None:
    publisher = await connect()
    await publisher.join("conf")
    await publisher.publish("cam", room="conf")
    late = await connect()
    reply = await late.join("conf")
    assert reply["streams"] == [{"streamId": "cam", "peerId": publisher.peer_id}]
    await late.play("cam")
    await late.offer(publisher.peer_id or "", SDP_OFFER, stream_id="cam")
