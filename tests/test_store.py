"""MemoryStore: membership, streams and routing decisions, no network."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as redis

from signaling.cluster.redis_store import RedisStore
from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.store import (
    DEFAULT_LIMITS,
    Counterparts,
    Departure,
    Member,
    MemoryStore,
    PeerLimits,
    Removal,
    Route,
    Store,
    Stream,
)

MakeStore = Callable[..., Store]


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    """Every test runs against both stores: they must make the same decisions. (Redis is asked
    for only by the Redis runs, so that the memory runs need no redis-server.)"""
    if request.param == "memory":
        yield lambda limits=DEFAULT_LIMITS: MemoryStore(limits)
    else:
        client: redis.Redis = request.getfixturevalue("redis_client")
        yield lambda limits=DEFAULT_LIMITS: RedisStore(client, limits=limits)


async def empty(store: Store) -> bool:
    """Nothing held: no room, peer or stream left behind."""
    if isinstance(store, MemoryStore):
        return store.is_empty()
    assert isinstance(store, RedisStore)
    keys = [key.decode() async for key in store.client.scan_iter(f"{store.prefix}*")]
    return [key for key in keys if key != f"{store.prefix}seq" and not key.endswith(":peers")] == []


async def refused(code: ErrorCode, awaitable: object) -> SignalingError:
    with pytest.raises(SignalingError) as caught:
        await awaitable  # type: ignore[misc]
    assert caught.value.code == code
    return caught.value


async def test_join_returns_earlier_members_in_join_order(make_store: MakeStore) -> None:
    store = make_store()
    assert await store.join("r", "a", {"n": 1}, 10) == []
    assert await store.join("r", "b", {}, 10) == [Member("a", {"n": 1})]
    assert await store.join("r", "c", {}, 10) == [Member("a", {"n": 1}), Member("b", {})]
    assert [m.peer_id for m in await store.members("r")] == ["a", "b", "c"]


async def test_capacity_and_double_join(make_store: MakeStore) -> None:
    store = make_store()
    await store.join("r", "a", {}, 2)
    await refused(ErrorCode.ALREADY_JOINED, store.join("r", "a", {}, 2))
    await store.join("r", "b", {}, 2)
    error = await refused(ErrorCode.ROOM_FULL, store.join("r", "c", {}, 2))
    assert "2 peers" in error.message
    assert await store.rooms_of("c") == []


async def test_leave_and_remove_peer_free_everything(make_store: MakeStore) -> None:
    store = make_store()
    await store.join("one", "a", {}, 5)
    await store.join("two", "a", {}, 5)
    await store.join("one", "b", {}, 5)
    assert await store.leave("one", "b") == ["a"]
    await refused(ErrorCode.NOT_IN_ROOM, store.leave("one", "b"))
    await store.join("two", "b", {}, 5)
    assert await store.remove_peer("a") == Removal([Departure("one", []), Departure("two", ["b"])], [], [])
    assert await store.remove_peer("a") == Removal([], [], [])
    assert await store.members("one") == []
    assert await store.leave("two", "b") == []
    assert await empty(store)


async def test_route_requires_a_shared_room(make_store: MakeStore) -> None:
    store = make_store()
    await refused(ErrorCode.NOT_JOINED, store.route("a", "b"))
    await store.join("one", "a", {}, 5)
    await store.join("two", "b", {}, 5)
    await refused(ErrorCode.UNKNOWN_TARGET, store.route("a", "b"))
    await refused(ErrorCode.UNKNOWN_TARGET, store.route("a", "a"))
    await refused(ErrorCode.NOT_IN_ROOM, store.route("a", "b", room="two"))
    await store.join("two", "a", {}, 5)
    assert await store.route("a", "b") == Route(room="two")
    await store.join("one", "b", {}, 5)
    assert await store.route("a", "b") == Route(room="one")  # the sender's earliest shared room
    assert await store.route("a", "b", room="two") == Route(room="two")


async def test_room_holds_the_smallest_capacity_of_its_members(make_store: MakeStore) -> None:
    store = make_store()
    await store.join("call", "a", {}, 50)
    await store.join("call", "b", {}, 2)
    error = await refused(ErrorCode.ROOM_FULL, store.join("call", "c", {}, 50))
    assert "2 peers" in error.message
    await store.leave("call", "b")
    await store.join("call", "c", {}, 50)
    await store.join("call", "d", {}, 50)


async def test_publish_play_and_limits(make_store: MakeStore) -> None:
    store = make_store()
    assert await store.publish("s", "pub", None, 1) == Stream("s", "pub", None, 1)
    await refused(ErrorCode.ALREADY_PUBLISHING, store.publish("s", "pub", None, 1))
    await refused(ErrorCode.STREAM_IN_USE, store.publish("s", "other", None, None))
    await refused(ErrorCode.NO_SUCH_STREAM, store.play("nothing", "v1"))
    await refused(ErrorCode.ALREADY_PUBLISHING, store.play("s", "pub"))
    assert (await store.play("s", "v1")).viewers == ("v1",)
    await refused(ErrorCode.ALREADY_PLAYING, store.play("s", "v1"))
    await refused(ErrorCode.VIEWER_LIMIT_REACHED, store.play("s", "v2"))
    assert (await store.stop_playing("s", "v1")).viewers == ("v1",)
    await refused(ErrorCode.NOT_STREAMING, store.stop_playing("s", "v1"))
    assert (await store.play("s", "v2")).viewers == ("v2",)
    await refused(ErrorCode.NOT_STREAMING, store.unpublish("s", "v2"))
    assert await store.unpublish("s", "pub") == Stream("s", "pub", None, 1, ("v2",))
    assert await store.stream("s") is None
    assert await empty(store)


async def test_unlimited_viewers_and_stream_routes(make_store: MakeStore) -> None:
    store = make_store()
    await store.publish("s", "pub", None, None)
    for viewer in ("v1", "v2", "v3"):
        await store.play("s", viewer)
    assert await store.route("pub", "v2") == Route(stream_id="s")
    assert await store.route("v2", "pub", stream_id="s") == Route(stream_id="s")
    # Viewers of one stream are not linked to each other.
    await refused(ErrorCode.UNKNOWN_TARGET, store.route("v1", "v2"))
    await refused(ErrorCode.UNKNOWN_TARGET, store.route("v1", "v2", stream_id="s"))
    assert await store.peer_streams("pub") == (["s"], [])
    assert await store.peer_streams("v1") == ([], ["s"])


async def test_room_streams_need_membership(make_store: MakeStore) -> None:
    store = make_store()
    await refused(ErrorCode.NOT_IN_ROOM, store.publish("s", "a", "conf", None))
    await store.join("conf", "a", {}, 5)
    await store.publish("s", "a", "conf", None)
    await store.publish("loose", "a", None, None)
    assert [s.stream_id for s in await store.room_streams("conf")] == ["s"]


async def test_remove_peer_releases_streams_and_plays(make_store: MakeStore) -> None:
    store = make_store()
    await store.join("conf", "a", {}, 5)
    await store.join("conf", "b", {}, 5)
    await store.publish("a-cam", "a", "conf", None)
    await store.publish("b-cam", "b", None, None)
    await store.play("b-cam", "a")
    await store.play("a-cam", "b")
    removal = await store.remove_peer("a")
    assert removal.published == [Stream("a-cam", "a", "conf", None, ("b",))]
    assert removal.played == [Stream("b-cam", "b", None, None, ("a",))]
    assert removal.rooms == [Departure("conf", ["b"])]
    assert await store.peer_streams("b") == (["b-cam"], [])
    await store.remove_peer("b")
    assert await empty(store)


async def test_per_peer_limits(make_store: MakeStore) -> None:
    store = make_store(PeerLimits(rooms=2, streams=2))
    await store.join("a", "p", {}, 5)
    await store.join("b", "p", {}, 5)
    await refused(ErrorCode.TOO_MANY_ROOMS, store.join("c", "p", {}, 5))
    await store.publish("s1", "p", None, None)
    await store.publish("other", "q", None, None)
    await store.play("other", "p")
    await refused(ErrorCode.TOO_MANY_STREAMS, store.publish("s2", "p", None, None))
    await store.leave("a", "p")
    await store.join("c", "p", {}, 5)


async def test_room_modes_do_not_mix(make_store: MakeStore) -> None:
    store = make_store()
    await store.join("call", "a", {}, 2, "p2p")
    await refused(ErrorCode.ROOM_MODE_CONFLICT, store.join("call", "b", {}, 50, "conference"))
    await store.join("call", "b", {}, 50)  # no mode: joins anything
    await store.join("conf", "c", {}, 50, "conference")
    await refused(ErrorCode.ROOM_MODE_CONFLICT, store.join("conf", "d", {}, 2, "p2p"))


async def test_room_streams_are_for_members(make_store: MakeStore) -> None:
    store = make_store()
    await store.join("conf", "pub", {"n": 1}, 5)
    await store.publish("cam", "pub", "conf", None)
    await refused(ErrorCode.NO_SUCH_STREAM, store.play("cam", "outsider"))
    await store.join("conf", "member", {}, 5)
    assert (await store.play("cam", "member")).viewers == ("member",)
    assert await store.members("conf") == [Member("pub", {"n": 1}), Member("member", {})]
    assert await store.rooms_of("member") == ["conf"]


async def test_stats_count_rooms_and_peers_that_hold_something(make_store: MakeStore) -> None:
    store = make_store()
    if isinstance(store, RedisStore):  # peers are counted per registered node
        await store.client.sadd(f"{store.prefix}nodes", "n")
    await store.join("r1", "n~a", {}, 5)
    await store.join("r1", "n~b", {}, 5)
    await store.publish("s", "n~c", None, None)
    assert await store.stats() == (1, 3)
    assert await store.room_names() == ["r1"]
    await store.leave("r1", "n~a")
    await store.unpublish("s", "n~c")
    assert await store.stats() == (1, 1)
    await store.leave("r1", "n~b")
    assert await store.stats() == (0, 0)
    assert await store.room_names() == []


async def test_counterparts_by_name_in_one_call(make_store: MakeStore) -> None:
    store = make_store()
    await store.join("call", "a", {}, 2, "p2p")
    assert await store.counterparts("a", "call") == Counterparts([], Route(room="call"), False)
    await store.join("call", "b", {}, 2, "p2p")
    assert await store.counterparts("a", "call") == Counterparts(["b"], Route(room="call"), False)
    await store.join("conf", "a", {}, 5)
    await store.publish("conf/cam", "a", "conf", 1)  # a room's stream, held by its store key
    await store.join("conf", "v", {}, 5)
    await store.play("conf/cam", "v")
    assert await store.counterparts("a", "cam") == Counterparts(["v"], Route(stream_id="conf/cam"), False)
    assert await store.counterparts("v", "cam") == Counterparts(["a"], Route(stream_id="conf/cam"), True)
    assert await store.counterparts("v", "nothing") is None
    assert await store.counterparts("nobody", "call") is None
