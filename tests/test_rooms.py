"""MemoryRoomStore: membership and routing decisions, no network."""

from __future__ import annotations

import pytest

from signaling.errors import ErrorCode, SignalingError
from signaling.rooms import Departure, Member, MemoryRoomStore


async def refused(code: ErrorCode, awaitable: object) -> SignalingError:
    with pytest.raises(SignalingError) as caught:
        await awaitable  # type: ignore[misc]
    assert caught.value.code == code
    return caught.value


async def test_join_returns_earlier_members_in_join_order() -> None:
    store = MemoryRoomStore()
    assert await store.join("r", "a", {"n": 1}, 10) == []
    assert await store.join("r", "b", {}, 10) == [Member("a", {"n": 1})]
    assert await store.join("r", "c", {}, 10) == [Member("a", {"n": 1}), Member("b", {})]
    assert [m.peer_id for m in await store.members("r")] == ["a", "b", "c"]


async def test_capacity_and_double_join() -> None:
    store = MemoryRoomStore()
    await store.join("r", "a", {}, 2)
    await refused(ErrorCode.ALREADY_JOINED, store.join("r", "a", {}, 2))
    await store.join("r", "b", {}, 2)
    error = await refused(ErrorCode.ROOM_FULL, store.join("r", "c", {}, 2))
    assert "2 peers" in error.message
    assert await store.rooms_of("c") == []


async def test_leave_and_remove_peer_free_everything() -> None:
    store = MemoryRoomStore()
    await store.join("one", "a", {}, 5)
    await store.join("two", "a", {}, 5)
    await store.join("one", "b", {}, 5)
    assert await store.leave("one", "b") == ["a"]
    await refused(ErrorCode.NOT_IN_ROOM, store.leave("one", "b"))
    await store.join("two", "b", {}, 5)
    assert await store.remove_peer("a") == [Departure("one", []), Departure("two", ["b"])]
    assert await store.remove_peer("a") == []
    assert await store.members("one") == []
    assert await store.leave("two", "b") == []
    assert store.is_empty()


async def test_route_requires_a_shared_room() -> None:
    store = MemoryRoomStore()
    await refused(ErrorCode.NOT_JOINED, store.route("a", "b", None))
    await store.join("one", "a", {}, 5)
    await store.join("two", "b", {}, 5)
    await refused(ErrorCode.UNKNOWN_TARGET, store.route("a", "b", None))
    await refused(ErrorCode.UNKNOWN_TARGET, store.route("a", "a", None))
    await refused(ErrorCode.NOT_IN_ROOM, store.route("a", "b", "two"))
    await store.join("two", "a", {}, 5)
    assert await store.route("a", "b", None) == "two"
    await store.join("one", "b", {}, 5)
    assert await store.route("a", "b", None) == "one"  # the sender's earliest shared room
    assert await store.route("a", "b", "two") == "two"
