"""MemoryStore: membership, streams and routing decisions, no network."""

from __future__ import annotations

import pytest

from signaling.errors import ErrorCode, SignalingError
from signaling.store import Departure, Member, MemoryStore, Removal, Route, Stream


async def refused(code: ErrorCode, awaitable: object) -> SignalingError:
    with pytest.raises(SignalingError) as caught:
        await awaitable  # type: ignore[misc]
    assert caught.value.code == code
    return caught.value


async def test_join_returns_earlier_members_in_join_order() -> None:
    store = MemoryStore()
    assert await store.join("r", "a", {"n": 1}, 10) == []
    assert await store.join("r", "b", {}, 10) == [Member("a", {"n": 1})]
    assert await store.join("r", "c", {}, 10) == [Member("a", {"n": 1}), Member("b", {})]
    assert [m.peer_id for m in await store.members("r")] == ["a", "b", "c"]


async def test_capacity_and_double_join() -> None:
    store = MemoryStore()
    await store.join("r", "a", {}, 2)
    await refused(ErrorCode.ALREADY_JOINED, store.join("r", "a", {}, 2))
    await store.join("r", "b", {}, 2)
    error = await refused(ErrorCode.ROOM_FULL, store.join("r", "c", {}, 2))
    assert "2 peers" in error.message
    assert await store.rooms_of("c") == []


async def test_leave_and_remove_peer_free_everything() -> None:
    store = MemoryStore()
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
    assert store.is_empty()


async def test_route_requires_a_shared_room() -> None:
    store = MemoryStore()
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


async def test_room_holds_the_smallest_capacity_of_its_members() -> None:
    store = MemoryStore()
    await store.join("call", "a", {}, 50)
    await store.join("call", "b", {}, 2)
    error = await refused(ErrorCode.ROOM_FULL, store.join("call", "c", {}, 50))
    assert "2 peers" in error.message
    await store.leave("call", "b")
    await store.join("call", "c", {}, 50)
    await store.join("call", "d", {}, 50)


async def test_publish_play_and_limits() -> None:
    store = MemoryStore()
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
    assert store.is_empty()


async def test_unlimited_viewers_and_stream_routes() -> None:
    store = MemoryStore()
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


async def test_room_streams_need_membership() -> None:
    store = MemoryStore()
    await refused(ErrorCode.NOT_IN_ROOM, store.publish("s", "a", "conf", None))
    await store.join("conf", "a", {}, 5)
    await store.publish("s", "a", "conf", None)
    await store.publish("loose", "a", None, None)
    assert [s.stream_id for s in await store.room_streams("conf")] == ["s"]


async def test_remove_peer_releases_streams_and_plays() -> None:
    store = MemoryStore()
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
    assert store.is_empty()
