"""Sessions outlive their connections (issue 13): held, resumed, refused, rebuilt after a restart.

Every test runs a real server on a loopback port with real socket.io clients. A connection lost
without a goodbye is made by the server cutting it, as it does for a network failure it notices.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from signaling.client import RequestFailed, SignalingClient
from tests.conftest import RunningServer, StartServer
from tests.helpers import CANDIDATE, SDP_ANSWER, SDP_OFFER, ConnectPeer, joined_pair


async def lose_connection(server: RunningServer, client: SignalingClient) -> None:
    """Cut the client's connection as a network failure would: no goodbye."""
    sid = client.sio.get_sid()
    assert sid is not None
    server.sio.drop(sid, "test: the network went away")
    await client.next("disconnect")


async def reconnect(server: RunningServer, connect: ConnectPeer, old: SignalingClient, **claims: Any) -> Any:
    """A new connection resuming `old`'s session; returns it and the resume ack."""
    new = await connect(server.url)
    assert old.session is not None
    reply = await new.resume(old.session, claims.get("claims", old.claims()))
    return new, reply


async def test_a_dropped_peer_is_held_then_resumed_with_what_was_sent_meanwhile(
    server: RunningServer, connect: ConnectPeer
) -> None:
    alice, bob = await joined_pair(connect, "held")
    bob_id = bob.peer_id
    await lose_connection(server, bob)
    # Nobody is told; what is sent to bob meanwhile is kept, in order.
    await alice.offer(bob_id or "", SDP_OFFER)
    await alice.ice_candidate(bob_id or "", CANDIDATE)
    await alice.peer_message(bob_id or "", {"n": 1})
    assert alice.pending() == {}

    back, reply = await reconnect(server, connect, bob)
    assert reply["peerId"] == bob_id and reply["resumed"] == "kept"
    assert reply["rooms"] == [{"room": "held", "peers": [{"peerId": alice.peer_id, "metadata": {}}]}]
    assert reply["lost"] == {"rooms": [], "streams": []}
    assert (await back.next("offer"))["sdp"] == SDP_OFFER
    assert (await back.next("ice-candidate"))["candidate"] == CANDIDATE
    assert (await back.next("peer-message"))["data"] == {"n": 1}
    # And it carries on as that peer, both ways; alice never heard it leave.
    await back.answer(alice.peer_id or "", SDP_ANSWER)
    assert (await alice.next("answer"))["from"] == bob_id
    await alice.offer(bob_id or "", SDP_OFFER)
    assert (await back.next("offer"))["from"] == alice.peer_id
    assert "peer-left" not in alice.pending()


async def test_held_messages_come_before_anything_new(server: RunningServer, connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect, "order")
    await lose_connection(server, bob)
    for n in range(20):
        await alice.peer_message(bob.peer_id or "", n)
    back = await connect()
    assert bob.session is not None
    resuming = asyncio.create_task(back.resume(bob.session))
    for n in range(20, 40):  # sent while the resume is answered
        await alice.peer_message(bob.peer_id or "", n)
    await resuming
    received = [(await back.next("peer-message"))["data"] for _ in range(40)]
    assert received == list(range(40))


async def test_a_session_not_resumed_within_the_grace_ends_and_the_others_are_told(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    server = await start_server(session_grace=0.3)
    alice, bob = await joined_pair(lambda: connect(server.url), "late")
    bob_id = bob.peer_id
    await lose_connection(server, bob)
    left = await alice.next("peer-left")
    assert left == {"room": "late", "peerId": bob_id, "reason": "disconnected"}
    assert await server.store.rooms_of(bob_id or "") == []
    back = await connect(server.url)
    with pytest.raises(RequestFailed) as refused:
        await back.resume(bob.session)
    assert refused.value.code == "session_expired"
    await back.join("late")  # the fallback: join afresh


async def test_a_wrong_secret_or_another_peers_id_is_refused(
    server: RunningServer, connect: ConnectPeer
) -> None:
    alice, bob = await joined_pair(connect, "mine")
    await lose_connection(server, bob)
    thief = await connect()
    assert bob.session is not None and alice.session is not None
    for session in (
        {**bob.session, "secret": "x" * 32},
        {**bob.session, "secret": alice.session["secret"]},  # a real secret, for another peer
        {"peerId": bob.peer_id, "secret": thief.session["secret"] if thief.session else ""},
    ):
        with pytest.raises(RequestFailed) as refused:
            await thief.resume(session, {})
        assert refused.value.code == "invalid_session"
    # The owner still can.
    _back, reply = await reconnect(server, connect, bob)
    assert reply["peerId"] == bob.peer_id


async def test_more_than_the_buffer_ends_the_session(start_server: StartServer, connect: ConnectPeer) -> None:
    server = await start_server(session_buffer_bytes=4096)
    alice, bob = await joined_pair(lambda: connect(server.url), "flooded")
    await lose_connection(server, bob)
    for _ in range(8):  # ~0.75 KB each to keep: more than 4 KB
        await alice.offer(bob.peer_id or "", SDP_OFFER)
    assert (await alice.next("peer-left"))["peerId"] == bob.peer_id
    back = await connect(server.url)
    with pytest.raises(RequestFailed) as refused:
        await back.resume(bob.session)
    assert refused.value.code == "session_overflow"


async def test_a_goodbye_ends_the_session_at_once(server: RunningServer, connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect, "bye")
    session = bob.session
    await bob.close()
    assert (await alice.next("peer-left"))["reason"] == "disconnected"
    back = await connect()
    with pytest.raises(RequestFailed) as refused:
        await back.resume(session, {})
    assert refused.value.code == "session_ended"


async def test_a_room_left_before_the_drop_is_not_given_back(
    server: RunningServer, connect: ConnectPeer
) -> None:
    _alice, bob = await joined_pair(connect, "stay")
    await bob.join("gone")
    await bob.leave("gone")
    await lose_connection(server, bob)
    _, reply = await reconnect(server, connect, bob)
    assert [room["room"] for room in reply["rooms"]] == ["stay"]


async def test_resume_comes_first_on_a_connection(server: RunningServer, connect: ConnectPeer) -> None:
    alice, bob = await joined_pair(connect, "first")
    await lose_connection(server, bob)
    busy = await connect()
    await busy.join("elsewhere")
    with pytest.raises(RequestFailed) as refused:
        await busy.resume(bob.session, {})
    assert refused.value.code == "session_in_use"
    with pytest.raises(RequestFailed) as refused:
        await alice.resume(alice.session, {})  # its own, live session
    assert refused.value.code == "session_in_use"


async def test_a_resume_takes_over_from_a_connection_not_yet_seen_dead(
    server: RunningServer, connect: ConnectPeer
) -> None:
    alice, bob = await joined_pair(connect, "takeover")
    back, reply = await reconnect(server, connect, bob)  # bob's old connection is still open
    assert reply["resumed"] == "kept"
    await bob.next("disconnect")  # the server closed the old one
    await alice.offer(bob.peer_id or "", SDP_OFFER)
    assert (await back.next("offer"))["from"] == alice.peer_id
    assert "peer-left" not in alice.pending()


async def test_a_kicked_peer_cannot_resume(start_server: StartServer, connect: ConnectPeer) -> None:
    server = await start_server(admin_token="admin")
    alice, bob = await joined_pair(lambda: connect(server.url), "kick")
    await server.hub.kick(bob.peer_id or "", "bye")
    assert (await alice.next("peer-left"))["reason"] == "kicked"
    back = await connect(server.url)
    with pytest.raises(RequestFailed) as refused:
        await back.resume(bob.session, {})
    assert refused.value.code == "session_ended"


async def test_a_resumed_session_still_needs_its_grant(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    server = await start_server(jwt_secret="s" * 32)

    def token(rooms: list[str]) -> str:
        return jwt.encode({"exp": int(time.time()) + 600, "rooms": rooms}, "s" * 32, algorithm="HS256")

    alice = await connect(server.url, auth={"token": token(["team"])})
    await alice.join("team")
    bob = await connect(server.url, auth={"token": token(["team"])})
    await bob.join("team")
    await alice.next("peer-joined")
    await lose_connection(server, bob)
    narrower = await connect(server.url, auth={"token": token(["other"])})
    with pytest.raises(RequestFailed) as refused:
        await narrower.resume(bob.session)
    assert refused.value.code == "forbidden"
    assert (await alice.next("peer-left"))["reason"] == "expired"  # the session ended with it
    again = await connect(server.url, auth={"token": token(["team"])})
    with pytest.raises(RequestFailed) as ended:
        await again.resume(bob.session)
    assert ended.value.code == "session_ended"


async def test_streams_are_held_and_resumed_too(server: RunningServer, connect: ConnectPeer) -> None:
    publisher = await connect()
    await publisher.publish("show")
    viewer = await connect()
    await viewer.play("show")
    await publisher.next("viewer-joined")
    await lose_connection(server, publisher)
    await viewer.answer(publisher.peer_id or "", SDP_ANSWER, stream_id="show")
    back, reply = await reconnect(server, connect, publisher)
    assert reply["published"] == ["show"]
    assert (await back.next("answer"))["streamId"] == "show"
    assert "stream-ended" not in viewer.pending()


async def test_the_python_client_resumes_by_itself(server: RunningServer, connect: ConnectPeer) -> None:
    alice = await connect()
    await alice.join("auto")
    bob = SignalingClient(reconnect=True)
    await bob.connect(server.url)
    try:
        await bob.join("auto")
        await alice.next("peer-joined")
        bob_id = bob.peer_id
        await lose_connection(server, bob)
        await alice.offer(bob_id or "", SDP_OFFER)
        resumed = await bob.next("resumed", timeout=15)
        assert resumed["peerId"] == bob_id == bob.peer_id
        assert (await bob.next("offer"))["from"] == alice.peer_id
    finally:
        await bob.close()
    assert (await alice.next("peer-left"))["peerId"] == bob_id


# Across a restart: the server process's memory is gone; the clients' claims rebuild their
# sessions under the same peer ids, provided the session key survived (here: the same setting).


async def restarted(start_server: StartServer, old: RunningServer, **settings: Any) -> RunningServer:
    await old.stop()
    return await start_server(**settings)


async def test_sessions_are_rebuilt_after_a_restart(start_server: StartServer, connect: ConnectPeer) -> None:
    first = await start_server()
    alice, bob = await joined_pair(lambda: connect(first.url), "call")
    await alice.publish("cam", room="call")
    await bob.next("stream-published")
    await bob.play("cam")
    await alice.next("viewer-joined")
    second = await restarted(start_server, first)
    await alice.next("disconnect")
    await bob.next("disconnect")

    alice2 = await connect(second.url)
    assert alice.session is not None
    reply = await alice2.resume(alice.session, alice.claims())
    assert reply["resumed"] == "restored" and reply["peerId"] == alice.peer_id
    # bob is not back yet: held for him, and what alice sends him waits for him.
    assert reply["rooms"] == [{"room": "call", "peers": [{"peerId": bob.peer_id, "metadata": {}}]}]
    assert reply["published"] == ["cam"]
    await alice2.offer(bob.peer_id or "", SDP_OFFER, room="call")

    bob2 = await connect(second.url)
    assert bob.session is not None
    reply = await bob2.resume(bob.session, bob.claims())
    assert reply["resumed"] == "restored" and reply["peerId"] == bob.peer_id
    assert reply["playing"] == ["cam"] and reply["lost"] == {"rooms": [], "streams": []}
    assert (await bob2.next("offer"))["from"] == alice.peer_id
    await bob2.answer(alice.peer_id or "", SDP_ANSWER, stream_id="cam")
    assert (await alice2.next("answer"))["from"] == bob.peer_id
    # Nobody heard anybody leave or join.
    for client in (alice2, bob2):
        assert not {"peer-left", "peer-joined", "stream-ended", "viewer-left"} & set(client.pending())


async def test_a_peer_that_does_not_come_back_after_a_restart_leaves_after_the_grace(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    first = await start_server(session_grace=1)
    alice, bob = await joined_pair(lambda: connect(first.url), "alone")
    second = await restarted(start_server, first, session_grace=1)
    alice2 = await connect(second.url)
    await alice2.resume(alice.session, alice.claims())
    left = await alice2.next("peer-left", timeout=10)
    assert left == {"room": "alone", "peerId": bob.peer_id, "reason": "disconnected"}


async def test_without_the_same_key_a_restart_refuses_resumes(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    first = await start_server()
    alice = await connect(first.url)
    await alice.join("keyless")
    second = await restarted(start_server, first, session_secret="another key")
    fresh = await connect(second.url)
    with pytest.raises(RequestFailed) as refused:
        await fresh.resume(alice.session, alice.claims())
    assert refused.value.code == "invalid_session"
    await fresh.join("keyless")


async def test_claims_cannot_seat_a_live_peer_elsewhere(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    first = await start_server()
    alice = await connect(first.url)
    await alice.join("mine")
    second = await restarted(start_server, first)
    carol = await connect(second.url)
    await carol.join("carols")
    alice2 = await connect(second.url)
    claims = {"rooms": [{"room": "mine", "peers": [carol.peer_id]}]}
    await alice2.resume(alice.session, claims)
    assert await second.store.rooms_of(carol.peer_id or "") == ["carols"]


async def test_with_no_setting_the_key_file_carries_sessions_across_a_restart(
    start_server: StartServer, connect: ConnectPeer, tmp_path: Path
) -> None:
    key_file = tmp_path / "session-key"
    first = await start_server(session_secret=None, session_key_file=str(key_file))
    alice = await connect(first.url)
    await alice.join("kept-key")
    assert key_file.stat().st_mode & 0o777 == 0o600  # made on first start, readable by its user only
    second = await restarted(start_server, first, session_secret=None, session_key_file=str(key_file))
    back = await connect(second.url)
    reply = await back.resume(alice.session, alice.claims())
    assert reply["resumed"] == "restored" and reply["peerId"] == alice.peer_id


async def test_a_lost_key_file_means_joining_afresh(
    start_server: StartServer, connect: ConnectPeer, tmp_path: Path
) -> None:
    # A platform whose file system does not survive a restart (Heroku without SESSION_SECRET).
    key_file = tmp_path / "session-key"
    first = await start_server(session_secret=None, session_key_file=str(key_file))
    alice = await connect(first.url)
    await alice.join("lost-key")
    await first.stop()
    key_file.unlink()
    second = await start_server(session_secret=None, session_key_file=str(key_file))
    back = await connect(second.url)
    with pytest.raises(RequestFailed) as refused:
        await back.resume(alice.session, alice.claims())
    assert refused.value.code == "invalid_session"


async def test_claims_get_nothing_outside_the_claimants_own_rooms(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    first = await start_server()
    mallory = await connect(first.url)
    await mallory.join("lobby")
    second = await restarted(start_server, first)
    back = await connect(second.url)
    claims = {
        "rooms": [{"room": "lobby"}],
        "playing": [{"streamId": f"s{n}", "room": "private", "publisher": f"ghost{n}"} for n in range(20)],
        "published": [{"streamId": "mine", "room": "private"}],
    }
    reply = await back.resume(mallory.session, claims)
    assert sorted(reply["lost"]["streams"]) == sorted([f"s{n}" for n in range(20)] + ["mine"])
    assert await second.store.members("private") == []


async def test_claims_hold_no_more_peers_than_the_address_may_hold_sessions(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    first = await start_server(max_connections_per_ip=5, room_capacity=50)
    mallory = await connect(first.url)
    await mallory.join("packed")
    second = await restarted(start_server, first, max_connections_per_ip=5, room_capacity=50)
    back = await connect(second.url)
    claims = {"rooms": [{"room": "packed", "peers": [f"ghost-{n}" for n in range(45)]}]}
    await back.resume(mallory.session, claims)
    members = await second.store.members("packed")
    assert 1 < len(members) <= 1 + 5  # mallory and at most its address's share of held sessions
    newcomer = await connect(second.url)
    await newcomer.join("packed")  # the room is not full of ghosts


async def test_claims_hold_nothing_for_ant_media_peers(
    start_server: StartServer, connect: ConnectPeer, antmedia: Any
) -> None:
    first = await start_server()
    alice = await connect(first.url)
    await alice.join("sdk-call")
    second = await restarted(start_server, first)
    back = await connect(second.url)
    sdk_peer = "am-old-sdk-connection"
    claims = {"rooms": [{"room": "sdk-call", "peers": [sdk_peer]}]}
    await back.resume(alice.session, claims)
    assert [m.peer_id for m in await second.store.members("sdk-call")] == [alice.peer_id]
    # The SDK comes back under a new id and takes its place in the call.
    sdk = await antmedia(second.url)
    await sdk.request("join", "notification:joined", streamId="sdk-call")
