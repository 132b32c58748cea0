"""The socket.io protocol against a real server on a loopback port, with real socket.io clients."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from signaling.client import RequestFailed
from tests.conftest import RunningServer, StartServer
from tests.helpers import CANDIDATE, SDP_ANSWER, SDP_OFFER, ConnectPeer, joined_pair


async def test_join_ack_lists_existing_peers_and_ice_servers(connect: ConnectPeer) -> None:
    alice = await connect()
    first = await alice.join("lobby", {"name": "alice"})
    assert first == {
        "ok": True,
        "peerId": alice.peer_id,
        "room": "lobby",
        "peers": [],
        "streams": [],
        "iceServers": [{"urls": "stun:127.0.0.1:3478"}],
    }
    bob = await connect()
    second = await bob.join("lobby", {"name": "bob"})
    assert second["peers"] == [{"peerId": first["peerId"], "metadata": {"name": "alice"}}]
    assert await alice.next("peer-joined") == {
        "room": "lobby",
        "peerId": second["peerId"],
        "metadata": {"name": "bob"},
    }


async def test_join_without_metadata_defaults_to_empty_object(connect: ConnectPeer) -> None:
    alice = await connect()
    await alice.join("lobby")
    bob = await connect()
    reply = await bob.join("lobby")
    assert reply["peers"] == [{"peerId": alice.peer_id, "metadata": {}}]


async def test_full_offer_answer_candidate_exchange(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect)
    assert bob.peer_id and alice.peer_id

    assert await alice.offer(bob.peer_id, SDP_OFFER) == {"ok": True, "room": "pair"}
    offer = await bob.next("offer")
    assert offer == {"from": alice.peer_id, "target": bob.peer_id, "room": "pair", "sdp": SDP_OFFER}

    await bob.answer(offer["from"], SDP_ANSWER)
    assert (await alice.next("answer"))["sdp"] == SDP_ANSWER

    await alice.ice_candidate(bob.peer_id, CANDIDATE)
    await bob.ice_candidate(alice.peer_id, CANDIDATE)
    assert (await bob.next("ice-candidate"))["candidate"] == CANDIDATE
    got = await alice.next("ice-candidate")
    assert got == {"from": bob.peer_id, "target": alice.peer_id, "room": "pair", "candidate": CANDIDATE}


async def test_end_of_candidates_is_relayed(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect)
    assert bob.peer_id
    await alice.ice_candidate(bob.peer_id, None)
    assert (await bob.next("ice-candidate"))["candidate"] is None
    end_of_generation = {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
    await alice.ice_candidate(bob.peer_id, end_of_generation)
    assert (await bob.next("ice-candidate"))["candidate"] == end_of_generation


async def test_from_is_set_by_the_server_not_the_client(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect)
    reply = await alice.request("offer", {"target": bob.peer_id, "sdp": SDP_OFFER, "from": bob.peer_id})
    assert reply["ok"] is False
    assert reply["error"]["code"] == "validation_failed"
    assert "from" in reply["error"]["fields"]
    assert bob.pending() == {}


async def test_rooms_are_isolated(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect, "room-a")
    mallory = await connect()
    await mallory.join("room-b")
    carol = await connect()
    await carol.join("room-b")
    await mallory.next("peer-joined")
    assert alice.peer_id and bob.peer_id and carol.peer_id

    # Naming a peer of another room as target is refused and delivers nothing anywhere.
    with pytest.raises(RequestFailed) as refused:
        await mallory.offer(alice.peer_id, SDP_OFFER)
    assert refused.value.code == "unknown_target"
    with pytest.raises(RequestFailed):
        await mallory.ice_candidate(bob.peer_id, CANDIDATE, room="room-b")

    # Traffic inside room A never reaches room B, and a later message in A proves the refused ones
    # would have arrived first had they been delivered.
    await alice.offer(bob.peer_id, SDP_OFFER)
    assert (await bob.next("offer"))["from"] == alice.peer_id
    await mallory.offer(carol.peer_id, SDP_OFFER)
    assert (await carol.next("offer"))["from"] == mallory.peer_id
    assert alice.pending() == {}
    assert bob.pending() == {}
    assert mallory.pending() == {}
    assert carol.pending() == {}


async def test_leave_tells_the_others_and_stops_relay(connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect)
    assert alice.peer_id and bob.peer_id
    assert await bob.leave("pair") == {"ok": True, "room": "pair"}
    assert await alice.next("peer-left") == {"room": "pair", "peerId": bob.peer_id, "reason": "left"}
    with pytest.raises(RequestFailed) as refused:
        await alice.offer(bob.peer_id, SDP_OFFER)
    assert refused.value.code == "unknown_target"
    with pytest.raises(RequestFailed) as not_joined:
        await bob.offer(alice.peer_id, SDP_OFFER)
    assert not_joined.value.code == "not_joined"


async def test_disconnect_leaves_every_room_and_forgets_the_peer(
    connect: ConnectPeer, server: RunningServer
) -> None:
    alice = await connect()
    bob = await connect()
    carol = await connect()
    await alice.join("one")
    await alice.join("two")
    await bob.join("one")
    await carol.join("two")
    assert (await alice.next("peer-joined"))["room"] == "one"
    assert (await alice.next("peer-joined"))["room"] == "two"
    leaving = alice.peer_id

    await alice.close()
    assert await bob.next("peer-left") == {"room": "one", "peerId": leaving, "reason": "disconnected"}
    assert await carol.next("peer-left") == {"room": "two", "peerId": leaving, "reason": "disconnected"}
    assert leaving not in [m.peer_id for m in await server.store.members("one")]
    assert await server.store.rooms_of(leaving or "") == []

    await bob.close()
    await carol.close()
    await _wait_until_empty(server)
    assert server.store.is_empty()
    assert server.hub.delivery.connected() == 0


async def _wait_until_empty(server: RunningServer) -> None:
    # The server notices a closed socket asynchronously; wait for that, bounded.
    for _ in range(200):
        if server.store.is_empty() and server.hub.delivery.connected() == 0:
            return
        await asyncio.sleep(0.01)


async def test_peer_in_several_rooms_relays_through_the_named_room(connect: ConnectPeer) -> None:
    alice = await connect()
    bob = await connect()
    for room in ("one", "two"):
        await alice.join(room)
        await bob.join(room)
    assert bob.peer_id
    assert (await alice.offer(bob.peer_id, SDP_OFFER))["room"] == "one"
    assert (await bob.next("offer"))["room"] == "one"
    assert (await alice.offer(bob.peer_id, SDP_OFFER, room="two"))["room"] == "two"
    assert (await bob.next("offer"))["room"] == "two"
    await bob.leave("one")
    assert (await alice.offer(bob.peer_id, SDP_OFFER))["room"] == "two"
    with pytest.raises(RequestFailed) as refused:
        await alice.offer(bob.peer_id, SDP_OFFER, room="one")
    assert refused.value.code == "unknown_target"
    with pytest.raises(RequestFailed) as outside:
        await alice.offer(bob.peer_id, SDP_OFFER, room="three")
    assert outside.value.code == "not_in_room"


async def test_room_cap(start_server: StartServer, connect: ConnectPeer) -> None:
    small = await start_server(room_capacity=2)
    alice = await connect(small.url)
    bob = await connect(small.url)
    carol = await connect(small.url)
    await alice.join("duo")
    await bob.join("duo")
    with pytest.raises(RequestFailed) as full:
        await carol.join("duo")
    assert full.value.code == "room_full"
    assert "2" in full.value.error["message"]
    # The refused joiner is nowhere, and a seat freed by a leaver can be taken.
    assert [m.peer_id for m in await small.store.members("duo")] == [alice.peer_id, bob.peer_id]
    await bob.leave("duo")
    assert (await carol.join("duo"))["peers"] == [{"peerId": alice.peer_id, "metadata": {}}]


async def test_joining_twice_is_refused(connect: ConnectPeer) -> None:
    alice = await connect()
    await alice.join("lobby")
    with pytest.raises(RequestFailed) as twice:
        await alice.join("lobby")
    assert twice.value.code == "already_joined"


async def test_polling_transport_works_too(start_server: StartServer, connect: ConnectPeer) -> None:
    # A closing polling client waits for its pending long-poll to return, which the server does
    # at the next heartbeat: a short interval keeps teardown fast.
    polled = await start_server(ping_interval=0.5, ping_timeout=2)
    alice = await connect(polled.url, transports=["polling"])
    await alice.join("lobby")
    bob = await connect(polled.url, transports=["polling"])
    await bob.join("lobby")
    assert bob.peer_id
    await alice.offer(bob.peer_id, SDP_OFFER)
    assert (await bob.next("offer"))["sdp"] == SDP_OFFER


async def test_healthz_and_client_files(server: RunningServer) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok", "node": None}
        async with http.get(f"{server.url}/readyz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ready"}
        async with http.get(f"{server.url}/client/signaling-client.js") as response:
            assert response.status == 200
            assert "export function connect" in await response.text()


async def test_a_client_path_too_long_for_the_file_system_is_not_found(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/client/{'x' * 300}") as response:
        assert response.status == 404
