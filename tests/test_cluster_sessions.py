"""Sessions across nodes (issue 13, item 4): a session resumes on any node, after a drop, after its
node was killed with kill -9, and after Redis restarted empty. Real node processes, a real
redis-server, real socket.io clients."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import redis.asyncio as redis

from signaling.client import SignalingClient
from signaling.cluster import codec
from signaling.cluster.redis_sessions import RedisSessions
from signaling.cluster.redis_store import as_text
from signaling.core.messages import PeerMessage, Relayed, SessionDescription
from signaling.core.store import Route
from tests.cluster_support import StartNodes, channel_clients, wait_until
from tests.helpers import SDP_ANSWER, SDP_OFFER, ConnectPeer, joined_pair
from tests.redis_support import RedisServer


async def drop(client: SignalingClient) -> None:
    """Lose the connection without a goodbye: the WebSocket closes, no socket.io DISCONNECT."""
    assert client.sio.eio.ws is not None
    await client.sio.eio.ws.close()
    await client.next("disconnect")


async def test_a_session_resumes_on_another_node_with_what_was_sent_meanwhile(
    start_nodes: StartNodes, connect: ConnectPeer, tmp_path: Path
) -> None:
    # Each node with a key file of its own: they agree on one key through Redis.
    (a,) = await start_nodes(1, SESSION_KEY_FILE=str(tmp_path / "a.key"))
    (b,) = await start_nodes(1, SESSION_KEY_FILE=str(tmp_path / "b.key"))
    alice, bob = await joined_pair(connect, "roaming", a.url, b.url)
    bob_id = bob.peer_id or ""
    await drop(bob)
    await alice.offer(bob_id, SDP_OFFER)  # bob is held on b: kept for him

    back = await connect(a.url)  # the load balancer sends him to the other node
    reply = await back.resume(bob.session, bob.claims())
    assert reply["resumed"] == "kept" and reply["peerId"] == bob_id
    assert reply["rooms"] == [{"room": "roaming", "peers": [{"peerId": alice.peer_id, "metadata": {}}]}]
    assert (await back.next("offer"))["from"] == alice.peer_id
    await back.answer(alice.peer_id or "", SDP_ANSWER)
    assert (await alice.next("answer"))["from"] == bob_id
    await alice.offer(bob_id, SDP_OFFER)
    assert (await back.next("offer"))["from"] == alice.peer_id
    assert "peer-left" not in alice.pending()


async def test_a_session_outlives_its_node_killed_with_kill_9(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    survivor, doomed = await start_nodes(2)
    alice, bob = await joined_pair(connect, "doomed", survivor.url, doomed.url)
    bob_id = bob.peer_id or ""
    doomed.kill()
    await bob.next("disconnect")
    # Once nobody listens on its node's channel (what was published there in the instant it
    # died is lost with it, like what was in its buffers), yet before anyone knows the node is
    # dead: not acked and lost, but kept for bob's resume.
    spy = redis.Redis.from_url(redis_server.url)
    channel = f"sig:node:{doomed.node_id}:inbox"
    await wait_until(lambda: _listeners(spy, channel, 0), "Redis to see the dead node's subscription closed")
    await spy.aclose()
    await alice.offer(bob_id, SDP_OFFER)
    back = await connect(survivor.url)
    reply = await back.resume(bob.session, bob.claims())
    assert reply["resumed"] == "kept" and reply["peerId"] == bob_id
    assert (await back.next("offer"))["from"] == alice.peer_id
    await back.answer(alice.peer_id or "", SDP_ANSWER)
    assert (await alice.next("answer"))["from"] == bob_id
    await alice.offer(bob_id, SDP_OFFER)  # bob is on his new node now
    assert (await back.next("offer"))["from"] == alice.peer_id
    assert "peer-left" not in alice.pending()


async def _listeners(client: redis.Redis, channel: str, count: int) -> bool:
    return bool((await client.pubsub_numsub(channel))[0][1] == count)


async def test_sessions_are_rebuilt_after_redis_restarted_empty(
    start_nodes: StartNodes, redis_server: RedisServer
) -> None:
    a, b = await start_nodes(2)
    alice, bob = SignalingClient(reconnect=True), SignalingClient(reconnect=True)
    try:
        await alice.connect(a.url)
        await bob.connect(b.url)
        await alice.join("amnesia")
        await bob.join("amnesia")
        await alice.next("peer-joined")
        ids = (alice.peer_id, bob.peer_id)

        redis_server.stop()
        redis_server.start()  # back, and empty: the nodes send their clients away to resume

        for client in (alice, bob):
            resumed = await client.next("resumed", timeout=30)
            assert resumed["resumed"] == "restored"
        assert (alice.peer_id, bob.peer_id) == ids
        await alice.offer(bob.peer_id or "", SDP_OFFER)
        assert (await bob.next("offer"))["from"] == alice.peer_id
        assert "peer-left" not in alice.pending() and "peer-left" not in bob.pending()
        check = redis.Redis.from_url(redis_server.url)
        assert {as_text(m) for m in await check.hkeys("sig:room:amnesia")} == set(ids)
        await check.aclose()
    finally:
        await alice.close()
        await bob.close()


async def test_a_drained_nodes_sessions_resume_elsewhere(
    start_nodes: StartNodes, connect: ConnectPeer
) -> None:
    staying, leaving = await start_nodes(2)
    alice, bob = await joined_pair(connect, "rolling", staying.url, leaving.url)
    bob_id = bob.peer_id or ""
    leaving.process.send_signal(signal.SIGTERM)  # a rolling deploy
    await bob.next("disconnect")
    assert await asyncio.wait_for(leaving.process.wait(), 30) == 0
    await alice.offer(bob_id, SDP_OFFER)
    back = await connect(staying.url)
    reply = await back.resume(bob.session, bob.claims())
    assert reply["resumed"] == "kept" and reply["peerId"] == bob_id
    assert (await back.next("offer"))["from"] == alice.peer_id
    assert "peer-left" not in alice.pending()


async def test_a_relay_to_a_node_cut_off_without_a_goodbye_is_kept_once_it_is_reaped(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    """A host lost without closing its connections (power loss, a partition; here SIGSTOP) still
    holds its subscription open in Redis's eyes: once it is reaped, the others must stop
    publishing for its peers there and keep what is sent to them for their resume."""
    survivor, lost = await start_nodes(2)
    alice, bob = await joined_pair(connect, "cut-off", survivor.url, lost.url)
    bob_id = bob.peer_id or ""
    lost.process.send_signal(signal.SIGSTOP)
    spy = redis.Redis.from_url(redis_server.url)

    async def reaped() -> bool:
        return bool(await spy.hget(f"sig:session:{bob_id}", "node") == b"")

    await wait_until(reaped, "the survivor to reap the node")
    assert await _listeners(spy, f"sig:node:{lost.node_id}:inbox", 1)  # Redis still thinks it listens
    await alice.offer(bob_id, SDP_OFFER)
    assert await spy.llen(f"sig:session:{bob_id}:kept") == 1
    lost.kill()
    await lost.process.wait()
    back = await connect(survivor.url)
    reply = await back.resume(bob.session, bob.claims())
    assert reply["resumed"] == "kept"
    assert (await back.next("offer"))["from"] == alice.peer_id
    await spy.aclose()


async def test_what_was_kept_while_a_nodes_channel_was_down_reaches_its_connected_peer(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    """A message published on a node's channel while the node reconnects it (nobody listens) is
    kept in its peer's session; the peer, still connected there, makes no resume to fetch it: the
    node hands it over once it listens again."""
    a, b = await start_nodes(2)
    alice, bob = await joined_pair(connect, "blip", a.url, b.url)
    alice_id, bob_id = alice.peer_id or "", bob.peer_id or ""
    spy = redis.Redis.from_url(redis_server.url)
    # What the session's DELIVER script keeps for bob when nobody listens on b's channel.
    kept = Relayed(alice_id, bob_id, Route(room="blip"), SessionDescription("offer", SDP_OFFER))
    await spy.rpush(f"sig:session:{bob_id}:kept", codec.encode(bob_id, kept))
    inbox = [c for c in await channel_clients(spy, b.node_id) if c["cmd"] == "subscribe"]
    assert len(inbox) == 1, inbox
    await spy.client_kill_filter(_id=inbox[0]["id"])
    offer = await bob.next("offer")
    assert offer["from"] == alice_id and offer["sdp"] == SDP_OFFER
    assert await spy.llen(f"sig:session:{bob_id}:kept") == 0
    await spy.aclose()


async def test_an_attached_session_overflowing_while_its_node_does_not_listen_does_not_end(
    redis_client: redis.Redis,
) -> None:
    """Kept for a peer still connected to a node that is not listening for a moment, more than
    the buffer holds is dropped, but the session is its connection's: no sweep ends it."""
    sessions = RedisSessions(redis_client, node_id="n1", grace=30, buffer_bytes=400, prefix="t:")
    await sessions.open("b")
    big = Relayed("a", "b", Route(room="r"), PeerMessage(None, "x" * 300))
    small = Relayed("a", "b", Route(room="r"), PeerMessage(None, 1))
    assert await sessions.keep("b", big)  # nobody listens on n1's channel: kept
    assert await sessions.keep("b", big)  # past the buffer: what was kept is dropped
    assert await sessions.due() == []
    assert await sessions.reclaim(["b"]) == []  # n1 listening again finds nothing kept...
    assert await sessions.keep("b", small)  # ...and keeps again from there
    assert await sessions.reclaim(["b"]) == [("b", small)]
    await sessions.hold("b")
    assert (await sessions.resume("b")).found == "kept"
