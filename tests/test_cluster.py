"""Scale-out: real server processes sharing a real redis-server, with socket.io and Ant Media
clients spread over them."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
import redis.asyncio as redis

from signaling.client import RequestFailed, SignalingClient
from signaling.cluster.redis_store import RedisStore
from signaling.core import peers
from tests.antmedia_client import AntMediaClient
from tests.cluster_support import LEASE_SECONDS, StartNodes, channel_clients, get_json, wait_until
from tests.conftest import ConnectAntMedia
from tests.helpers import CANDIDATE, SDP_ANSWER, SDP_OFFER, ConnectPeer, joined_pair
from tests.redis_support import RedisServer


def node_of(peer_id: str | None) -> str:
    assert peer_id is not None
    return peers.node_of(peer_id)


async def test_socketio_call_across_nodes(start_nodes: StartNodes, connect: ConnectPeer) -> None:
    a, b = await start_nodes(2)
    alice = await connect(a.url)
    await alice.join("cross")
    bob = await connect(b.url)
    joined = await bob.join("cross")
    assert node_of(alice.peer_id) == a.node_id and node_of(bob.peer_id) == b.node_id
    assert joined["peers"] == [{"peerId": alice.peer_id, "metadata": {}}]
    assert (await alice.next("peer-joined"))["peerId"] == bob.peer_id
    assert alice.peer_id and bob.peer_id

    await alice.offer(bob.peer_id, SDP_OFFER)
    assert await bob.next("offer") == {
        "from": alice.peer_id,
        "target": bob.peer_id,
        "room": "cross",
        "sdp": SDP_OFFER,
    }
    await bob.answer(alice.peer_id, SDP_ANSWER)
    assert (await alice.next("answer"))["sdp"] == SDP_ANSWER
    for i in range(50):
        await alice.emit(
            "ice-candidate", {"target": bob.peer_id, "candidate": {**CANDIDATE, "sdpMid": str(i)}}
        )
    assert [(await bob.next("ice-candidate"))["candidate"]["sdpMid"] for _ in range(50)] == [
        str(i) for i in range(50)
    ]

    await bob.leave("cross")
    assert (await alice.next("peer-left"))["reason"] == "left"
    await bob.join("cross")
    await alice.next("peer-joined")
    await bob.close()
    assert await alice.next("peer-left") == {"room": "cross", "peerId": bob.peer_id, "reason": "disconnected"}


async def test_antmedia_p2p_across_nodes_and_transports(
    start_nodes: StartNodes, antmedia: ConnectAntMedia, connect: ConnectPeer
) -> None:
    a, b = await start_nodes(2)
    first = await antmedia(a.url)
    await first.request("join", "notification:joined", streamId="amcall")
    second = await antmedia(b.url)
    await second.request("join", "notification:joined", streamId="amcall")
    assert await first.next("start") == {"command": "start", "streamId": "amcall"}
    await first.send("takeConfiguration", streamId="amcall", type="offer", sdp=SDP_OFFER)
    assert (await second.next("takeConfiguration"))["idMapping"] == {}
    await second.send("takeCandidate", streamId="amcall", label=0, id="0", candidate=CANDIDATE["candidate"])
    assert (await first.next("takeCandidate"))["label"] == 0
    third = await antmedia(a.url)
    assert (await third.request("join", "error", streamId="amcall"))["definition"] == "NoSpaceForNewPeer"
    await second.request("leave", "notification:leaved", streamId="amcall")
    assert await first.next("stop") == {"command": "stop", "streamId": "amcall"}

    # A socket.io peer on the other node takes the free seat.
    sio = await connect(b.url)
    joined = await sio.join("amcall")
    assert await first.next("start") == {"command": "start", "streamId": "amcall"}
    await first.send("takeConfiguration", streamId="amcall", type="offer", sdp=SDP_OFFER)
    offer = await sio.next("offer")
    assert offer["from"] == joined["peers"][0]["peerId"]
    await sio.answer(offer["from"], SDP_ANSWER)
    assert (await first.next("takeConfiguration"))["type"] == "answer"


async def test_publish_play_across_nodes(
    start_nodes: StartNodes, antmedia: ConnectAntMedia, connect: ConnectPeer
) -> None:
    a, b, c = await start_nodes(3)
    # An Ant Media publisher on one node, a socket.io viewer on another.
    publisher = await antmedia(a.url)
    await publisher.request("publish", "notification:publish_started", streamId="show")
    viewer = await connect(b.url)
    played = await viewer.play("show")
    assert await publisher.next("start") == {"command": "start", "streamId": "show"}
    await publisher.send("takeConfiguration", streamId="show", type="offer", sdp=SDP_OFFER)
    offer = await viewer.next("offer")
    assert offer["from"] == played["publisher"] and offer["streamId"] == "show"
    await viewer.answer(offer["from"], SDP_ANSWER, stream_id="show")
    assert (await publisher.next("takeConfiguration"))["type"] == "answer"
    late = await connect(c.url)
    with pytest.raises(RequestFailed) as limited:
        await late.play("show")
    assert limited.value.code == "viewer_limit_reached"

    # A socket.io publisher serving Ant Media viewers on two other nodes.
    caster = await connect(a.url)
    await caster.publish("cast")
    for node in (b, c):
        watcher = await antmedia(node.url)
        await watcher.send("play", streamId="cast")
        viewer_id = (await caster.next("viewer-joined"))["viewerId"]
        assert node_of(viewer_id) == node.node_id
        await caster.offer(viewer_id, SDP_OFFER, stream_id="cast")
        assert (await watcher.next("takeConfiguration"))["type"] == "offer"
        await watcher.send("takeConfiguration", streamId="cast", type="answer", sdp=SDP_ANSWER)
        assert (await caster.next("answer"))["from"] == viewer_id
        await watcher.next("notification:play_started")


async def test_conference_across_nodes(
    start_nodes: StartNodes, antmedia: ConnectAntMedia, connect: ConnectPeer
) -> None:
    a, b = await start_nodes(2)
    alice = await antmedia(a.url)
    joined = await alice.request("joinRoom", "notification:joinedTheRoom", room="meet")
    await alice.request("publish", "notification:publish_started", streamId=joined["streamId"])
    bob = await antmedia(b.url)
    bob_joined = await bob.request("joinRoom", "notification:joinedTheRoom", room="meet")
    assert bob_joined["streams"] == [joined["streamId"]]
    await bob.request("publish", "notification:publish_started", streamId=bob_joined["streamId"])
    assert (await alice.next("notification:streamJoined"))["streamId"] == bob_joined["streamId"]
    sio = await connect(b.url)
    reply = await sio.join("meet")
    assert {s["streamId"] for s in reply["streams"]} == {joined["streamId"], bob_joined["streamId"]}
    await sio.play(joined["streamId"])
    assert await alice.next("start") == {"command": "start", "streamId": joined["streamId"]}
    await bob.request("leaveFromRoom", "notification:leavedFromRoom", room="meet")
    assert (await alice.next("notification:streamLeaved"))["streamId"] == bob_joined["streamId"]


async def test_simultaneous_joins_never_overfill(start_nodes: StartNodes, antmedia: ConnectAntMedia) -> None:
    nodes = await start_nodes(3)
    for attempt in range(30):
        room = f"race{attempt}"
        host = await antmedia(nodes[0].url)
        await host.request("join", "notification:joined", streamId=room)
        rivals = [await antmedia(nodes[1].url), await antmedia(nodes[2].url)]
        await asyncio.gather(*(rival.send("join", streamId=room) for rival in rivals))
        outcomes = [(await rival.first_of("notification:joined", "error"))["definition"] for rival in rivals]
        assert sorted(outcomes) == ["NoSpaceForNewPeer", "joined"], outcomes
        for client in [host, *rivals]:
            await client.close()


async def test_simultaneous_publishes_of_one_stream(
    start_nodes: StartNodes, antmedia: ConnectAntMedia
) -> None:
    a, b = await start_nodes(2)
    for attempt in range(30):
        stream = f"dup{attempt}"
        rivals = [await antmedia(a.url), await antmedia(b.url)]
        await asyncio.gather(*(rival.send("publish", streamId=stream) for rival in rivals))
        outcomes = [
            (await rival.first_of("notification:publish_started", "error"))["definition"] for rival in rivals
        ]
        assert sorted(outcomes) == ["publish_started", "streamIdInUse"], outcomes
        for client in rivals:
            await client.close()


async def test_killed_node_is_noticed_and_its_peers_freed(
    start_nodes: StartNodes, antmedia: ConnectAntMedia, connect: ConnectPeer
) -> None:
    # bob's session is held for him for the grace (1 s here), then he is announced lost with his node.
    survivor, doomed = await start_nodes(2, SESSION_GRACE="1")
    alice, bob = await joined_pair(connect, "fragile", survivor.url, doomed.url)
    publisher = await antmedia(doomed.url)
    await publisher.request("publish", "notification:publish_started", streamId="doomed-show")
    viewer = await antmedia(survivor.url)
    await viewer.send("play", streamId="doomed-show")
    caller = await antmedia(survivor.url)
    await caller.request("join", "notification:joined", streamId="p2p-fragile")
    callee = await antmedia(doomed.url)
    await callee.request("join", "notification:joined", streamId="p2p-fragile")
    await caller.next("start")

    killed_at = time.monotonic()
    doomed.kill()
    left = await alice.next("peer-left", timeout=15)
    noticed_after = time.monotonic() - killed_at
    assert left == {"room": "fragile", "peerId": bob.peer_id, "reason": "node_lost"}
    assert noticed_after < LEASE_SECONDS + 1 + 5, noticed_after
    assert await viewer.next("stop") == {"command": "stop", "streamId": "doomed-show"}
    await viewer.next("notification:play_finished")
    assert await caller.next("stop") == {"command": "stop", "streamId": "p2p-fragile"}
    # The dead node's seats and streams are free again.
    replacement = await antmedia(survivor.url)
    await replacement.request("join", "notification:joined", streamId="p2p-fragile")
    await replacement.request("publish", "notification:publish_started", streamId="doomed-show")
    assert (await get_json(f"{survivor.url}/readyz"))[0] == 200


async def test_redis_outage_and_recovery(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    a, b = await start_nodes(2)
    alice = await connect(a.url)
    await alice.join("outage")
    disconnected = asyncio.ensure_future(alice.next("disconnect", timeout=30))

    redis_server.stop()

    async def unready() -> bool:
        return [(await get_json(f"{node.url}/readyz"))[0] for node in (a, b)] == [503, 503]

    await wait_until(unready, "both nodes to report not ready")
    refused = await alice.request("join", {"room": "while-down"})
    assert refused["error"]["code"] == "service_unavailable"
    assert alice.sio.connected  # a clear error, not a dropped connection

    redis_server.start()  # back, and empty

    async def ready() -> bool:
        return [(await get_json(f"{node.url}/readyz"))[0] for node in (a, b)] == [200, 200]

    await wait_until(ready, "both nodes to be ready again")
    # Its state was lost with Redis: the node sent its client away to rejoin.
    await disconnected
    carol = await connect(a.url)
    await carol.join("after")
    dave = await connect(b.url)
    await dave.join("after")
    assert dave.peer_id
    await carol.offer(dave.peer_id, SDP_OFFER)
    assert (await dave.next("offer"))["from"] == carol.peer_id


async def test_workers_share_one_port(start_nodes: StartNodes) -> None:
    (server,) = await start_nodes(1, "--workers", "2")
    seen: dict[str, SignalingClient] = {}
    spare: list[SignalingClient] = []
    for _ in range(40):
        client = SignalingClient()
        await client.connect(server.url)
        await client.join("shared-port")
        node = node_of(client.peer_id)
        if node in seen:
            spare.append(client)
        else:
            seen[node] = client
        if len(seen) == 2:
            break
    assert len(seen) == 2, "both workers should accept connections on the one port"
    first, second = seen.values()
    assert second.peer_id
    await first.offer(second.peer_id, SDP_OFFER)
    assert (await second.next("offer"))["from"] == first.peer_id
    for client in [*seen.values(), *spare]:
        await client.close()


async def test_one_recipient_costs_one_node_delivery(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    a, b, _ = await start_nodes(3)
    alice, bob = await joined_pair(connect, "costly", a.url, b.url)
    assert bob.peer_id
    spy = redis.Redis.from_url(redis_server.url)
    seen: list[str] = []
    async with spy.pubsub() as pubsub:
        await pubsub.psubscribe("sig:node:*:inbox")
        await pubsub.get_message(timeout=1)  # the subscription confirmation
        for _ in range(20):  # one at a time: each alone, as no batch would gather it
            await alice.offer(bob.peer_id, SDP_OFFER)
            await bob.next("offer")
        while (message := await pubsub.get_message(timeout=0.5)) is not None:
            if message["type"] == "pmessage":
                seen.append(message["channel"].decode())
    await spy.aclose()
    # 20 messages for one peer: 20 publications, all to its node alone, whatever the node count.
    assert seen == [f"sig:node:{b.node_id}:inbox"] * 20


async def test_a_node_removes_peers_it_no_longer_holds(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    # What a removal that failed during a Redis blip leaves behind: a seat held in the shared
    # state by a peer the node no longer has. The node's reconciliation frees it.
    (node,) = await start_nodes(1)
    store = RedisStore(redis.Redis.from_url(redis_server.url))
    ghost = f"{node.node_id}~gone"
    await store.join("haunted", ghost, {}, 2)
    alice = await connect(node.url)
    await alice.join("haunted")

    async def freed() -> bool:
        return [m.peer_id for m in await store.members("haunted")] == [alice.peer_id]

    await wait_until(freed, "the node to free the seat of a peer it does not hold")
    assert await alice.next("peer-left") == {"room": "haunted", "peerId": ghost, "reason": "disconnected"}
    await store.client.aclose()


async def test_a_draining_node_frees_everything_it_held(
    start_nodes: StartNodes, redis_server: RedisServer
) -> None:
    (node,) = await start_nodes(1, MAX_CONNECTIONS_PER_IP="1000")
    async with aiohttp.ClientSession() as http:
        clients = []
        for index in range(300):  # more removals at once than the Redis pool has connections
            client = AntMediaClient(await http.ws_connect(f"{node.ws_url}/WebRTCAppEE/websocket"))
            await client.request("joinRoom", "notification:joinedTheRoom", room=f"conf-{index % 20}")
            clients.append(client)
        node.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(node.process.wait(), 30) == 0
        for client in clients:
            await client.close()
    check = redis.Redis.from_url(redis_server.url)
    keys = [key.decode() async for key in check.scan_iter("sig:*")]
    held = [key for key in keys if ":room:" in key or key.endswith(f"{node.node_id}:peers")]
    assert held == [], held[:5]
    assert node.node_id.encode() not in await check.smembers("sig:nodes")
    await check.aclose()


async def test_node_channels_survive_anything_published_on_them(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    """What a newer node's unknown message kind, or any stray publish, puts on a node's channel is
    counted and skipped: the node goes on delivering, stays ready, and logs a few lines at most."""
    a, b = await start_nodes(2, LOG_LEVEL="WARNING")
    alice, bob = await joined_pair(connect, "garbage", a.url, b.url)
    spy = redis.Redis.from_url(redis_server.url)
    garbage = [
        b"",
        b"{truncated",
        b"\xff\xfe\x00",
        b"[1, 2, 3]",
        b'"just a string"',
        b'{"v": 1, "to": "x", "type": "Teleported", "body": {}}',
        b'{"v": 99, "to": "x", "type": "Kicked", "body": {"reason": "x"}}',
        b'{"v": 1, "to": "x", "type": "Relayed", "body": {"sender": 1}}',
        b'{"v": 1, "to": 7, "type": "Kicked", "body": null}',
        b'{"v": 1, "to": "", "type": "State", "body": {"seq": "x", "rooms": [], "streams": 1}}',
    ]
    for _ in range(50):  # a flood of it
        for data in garbage:
            await spy.publish(f"sig:node:{b.node_id}:inbox", data)
    for _ in range(5):
        await alice.offer(bob.peer_id or "", SDP_OFFER)
        assert (await bob.next("offer"))["from"] == alice.peer_id
    assert (await get_json(f"{b.url}/readyz"))[0] == 200
    async with aiohttp.ClientSession() as http, http.get(f"{b.url}/metrics") as response:
        metrics = await response.text()
    # A notice it cannot read is a change its view missed: rebuilt.
    await wait_until(lambda: view_synced(b.url), "the view rebuilt")
    skipped = {
        line.split('why="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("signaling_cluster_envelopes_skipped_total{")
    }
    assert sum(skipped.values()) == 50 * len(garbage), skipped
    assert set(skipped) == {"not_json", "malformed", "unknown_kind", "unknown_version", "malformed_notice"}
    await spy.aclose()


async def test_a_nodes_publishing_connection_breaking_takes_its_channels_down_and_back(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    """Either channel connection breaking takes the other with it (a node must not publish
    without listening, or listen without publishing): both come back, and relays with them."""
    a, b = await start_nodes(2)
    alice, bob = await joined_pair(connect, "snapped", a.url, b.url)
    await wait_until(lambda: view_synced(a.url), "a's view")
    spy = redis.Redis.from_url(redis_server.url)
    clients = await channel_clients(spy, a.node_id)
    assert len(clients) == 2 and any(c["cmd"] == "subscribe" for c in clients), clients
    publishing = next(c for c in clients if c["cmd"] != "subscribe")
    await spy.client_kill_filter(_id=publishing["id"])

    async def reconnected() -> bool:
        fresh = {c["id"] for c in await channel_clients(spy, a.node_id)}
        return len(fresh) == 2 and not fresh & {c["id"] for c in clients}

    await wait_until(reconnected, "both of a's channel connections opened again")
    await wait_until(lambda: view_synced(a.url), "a's view rebuilt")
    assert (await get_json(f"{a.url}/readyz"))[0] == 200
    for _ in range(5):
        await alice.offer(bob.peer_id or "", SDP_OFFER)
        assert (await bob.next("offer"))["from"] == alice.peer_id
        await bob.answer(alice.peer_id or "", SDP_ANSWER)
        assert (await alice.next("answer"))["from"] == bob.peer_id
    await spy.aclose()


async def test_a_burst_across_nodes_arrives_whole_and_in_order_in_few_publishes(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    """200 candidates sent at once: they gather into batches, and bob gets every one, in order."""
    a, b = await start_nodes(2)
    alice, bob = await joined_pair(connect, "burst", a.url, b.url)
    await wait_until(lambda: view_synced(a.url), "a's view")
    spy = redis.Redis.from_url(redis_server.url)
    before = await commandstats(spy)
    candidates = [
        {**CANDIDATE, "candidate": str(CANDIDATE["candidate"]).replace("candidate:1 ", f"candidate:{n} ")}
        for n in range(200)
    ]
    await asyncio.gather(*(alice.ice_candidate(bob.peer_id or "", c) for c in candidates))
    received = [(await bob.next("ice-candidate"))["candidate"]["candidate"] for _ in candidates]
    assert received == [c["candidate"] for c in candidates]
    publishes = (await commandstats(spy)).get("publish", 0) - before.get("publish", 0)
    assert 1 <= publishes < 100, publishes
    await spy.aclose()


async def commandstats(client: redis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def view_synced(node_url: str) -> bool:
    async with aiohttp.ClientSession() as http, http.get(f"{node_url}/metrics") as response:
        return "signaling_cluster_view_synced 1.0" in await response.text()


async def test_a_relay_costs_no_redis_command_on_one_node_and_one_across_two(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    """Counted by Redis itself (INFO commandstats, commands inside scripts included). With the
    lease this long, the only other traffic is each node's once-a-second sweep of held sessions,
    one EVALSHA and the ZRANGEBYSCORE in it: taken off exactly."""
    a, b = await start_nodes(2, NODE_LEASE_SECONDS="3600")
    alice, carol = await connect(a.url), await connect(a.url)
    bob = await connect(b.url)
    for client in (alice, carol, bob):
        await client.join("cheap")
    alice_id, bob_id = alice.peer_id or "", bob.peer_id or ""
    for node in (a, b):
        await wait_until(lambda node=node: view_synced(node.url), "the nodes' views")  # type: ignore[misc]
    spy = redis.Redis.from_url(redis_server.url)

    async def cost(
        relays: int, send: Callable[[], Awaitable[object]], received: Callable[[], Awaitable[object]]
    ) -> dict[str, int]:
        before = await commandstats(spy)
        for _ in range(relays):  # one at a time: each alone, as no batch would gather it
            await send()
            await received()
        after = await commandstats(spy)
        delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        sweeps = delta.get("zrangebyscore", 0)
        delta["evalsha"] = delta.get("evalsha", 0) - sweeps
        delta["zrangebyscore"] = 0
        delta["info"] = delta.get("info", 0) - 1  # the reading itself
        return {name: calls for name, calls in delta.items() if calls}

    same_node = await cost(20, lambda: carol.offer(alice_id, SDP_OFFER), lambda: alice.next("offer"))
    assert same_node == {}, same_node
    across = await cost(20, lambda: alice.offer(bob_id, SDP_OFFER), lambda: bob.next("offer"))
    assert across == {"publish": 20}, across
    # Through a stream as well: its publisher on one node, its viewer on the other.
    await alice.publish("cam")
    await bob.play("cam")
    await alice.next("viewer-joined")
    streamed = await cost(
        20, lambda: alice.offer(bob_id, SDP_OFFER, stream_id="cam"), lambda: bob.next("offer")
    )
    assert streamed == {"publish": 20}, streamed
    back = await cost(
        20,
        lambda: bob.ice_candidate(alice_id, CANDIDATE),
        lambda: alice.next("ice-candidate"),
    )
    assert back == {"publish": 20}, back
    await spy.aclose()


async def test_a_node_of_an_older_version_turns_views_off_until_it_is_gone(
    start_nodes: StartNodes, connect: ConnectPeer, redis_server: RedisServer
) -> None:
    """An older node (a rolling deploy) changes links without sending notices: while one is
    alive, the others route through Redis, and relays keep working."""
    a, b = await start_nodes(2)
    alice, bob = await connect(a.url), await connect(b.url)
    await alice.join("mixed")
    await bob.join("mixed")
    for node in (a, b):
        await wait_until(lambda node=node: view_synced(node.url), "the views")  # type: ignore[misc]
    spy = redis.Redis.from_url(redis_server.url)
    await spy.sadd("sig:nodes", "elder")
    await spy.set("sig:node:elder:alive", "1", px=60_000)  # what nodes before views write
    for node in (a, b):
        await wait_until(lambda node=node: _not(view_synced(node.url)), "views off")  # type: ignore[misc]
    await alice.offer(bob.peer_id or "", SDP_OFFER)
    assert (await bob.next("offer"))["from"] == alice.peer_id
    await spy.delete("sig:node:elder:alive")  # gone: reaped, and the views come back
    for node in (a, b):
        await wait_until(lambda node=node: view_synced(node.url), "views on again")  # type: ignore[misc]
    await bob.answer(alice.peer_id or "", SDP_ANSWER)
    assert (await alice.next("answer"))["from"] == bob.peer_id
    await spy.aclose()


async def _not(check: Awaitable[bool]) -> bool:
    return not await check
