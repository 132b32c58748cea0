"""The session core without a network: holding, keeping, resuming, ending, rebuilding."""

from __future__ import annotations

import pickle

from signaling.core.hub import Hub, LocalDelivery
from signaling.core.messages import PeerLeft, PeerMessage, Relayed, SessionDescription
from signaling.core.sessions import Claims, MemorySessions, PlayingClaim, RoomClaim
from signaling.core.store import MemoryStore, Route
from tests.test_hub import Recorder


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def relayed(n: int) -> Relayed:
    return Relayed("a", "b", Route(room="r"), PeerMessage(None, n))


async def test_a_held_session_keeps_messages_in_order_and_gives_them_back_once() -> None:
    sessions = MemorySessions(grace=30, buffer_bytes=10_000, clock=Clock())
    await sessions.open("b")
    assert await sessions.keep("b", relayed(0)) is False  # attached: its sink has it
    assert await sessions.hold("b")
    for n in range(3):
        assert await sessions.keep("b", relayed(n))
    found = await sessions.resume("b")
    assert found.found == "kept" and found.messages == tuple(relayed(n) for n in range(3))
    assert (await sessions.resume("b")).found == "kept"  # attached again: a resume takes it over


async def test_the_grace_ends_a_held_session_once() -> None:
    clock = Clock()
    sessions = MemorySessions(grace=30, buffer_bytes=10_000, clock=clock)
    await sessions.open("b")
    await sessions.hold("b")
    clock.now += 29
    assert await sessions.due() == []
    clock.now += 2
    assert await sessions.due() == [("b", "expired")]
    assert await sessions.due() == []
    assert (await sessions.resume("b")).found == "expired"
    clock.now += 31  # the ended session is forgotten after another grace
    await sessions.due()
    assert (await sessions.resume("b")).found == "unknown"


async def test_overflow_ends_the_session_at_the_next_sweep() -> None:
    sessions = MemorySessions(
        grace=30, buffer_bytes=len(pickle.dumps(relayed(0), pickle.HIGHEST_PROTOCOL)) * 2, clock=Clock()
    )
    await sessions.open("b")
    await sessions.hold("b")
    for n in range(3):
        assert await sessions.keep("b", relayed(n))
    assert (await sessions.resume("b")).found == "overflow"
    assert await sessions.due() == [("b", "overflow")]


async def test_the_first_reason_to_end_stands_and_grace_zero_holds_nothing() -> None:
    sessions = MemorySessions(grace=30, buffer_bytes=100, clock=Clock())
    await sessions.open("b")
    await sessions.end("b", "kicked")
    await sessions.end("b", "closed")
    assert (await sessions.resume("b")).found == "kicked"
    none = MemorySessions(grace=0, buffer_bytes=100, clock=Clock())
    await none.open("c")
    assert not await none.hold("c")


async def test_unknown_sessions_are_rebuilt_only_while_the_store_is_younger_than_the_grace() -> None:
    clock = Clock()
    sessions = MemorySessions(grace=30, buffer_bytes=100, clock=clock)
    assert await sessions.placeholder("x")
    assert await sessions.placeholder("x")  # still one
    await sessions.open("live")
    assert not await sessions.placeholder("live")
    assert await sessions.restore("mine")
    clock.now += 31
    assert not await sessions.restore("late")
    assert not await sessions.placeholder("y")


async def test_what_is_kept_is_counted_in_the_bytes_it_takes() -> None:
    # Parsed JSON can take many times its size in objects: kept as bytes, it takes what it counts.
    data: list[dict[str, int]] = [{} for _ in range(5000)]
    sessions = MemorySessions(grace=30, buffer_bytes=100_000, clock=Clock())
    await sessions.open("b")
    await sessions.hold("b")
    for _ in range(5):
        await sessions.keep("b", Relayed("a", "b", Route(room="r"), PeerMessage(None, data)))
    found = await sessions.resume("b")
    assert found.found == "kept" and len(found.messages) == 5
    assert found.messages[0].signal.data == data  # type: ignore[union-attr]


async def make() -> tuple[Hub, MemorySessions, Clock]:
    clock = Clock()
    sessions = MemorySessions(grace=30, buffer_bytes=100_000, clock=clock)
    return Hub(MemoryStore(), LocalDelivery(sessions), room_capacity=4), sessions, clock


async def test_a_dropped_peer_is_held_quietly_and_leaves_after_the_grace() -> None:
    hub, _, clock = await make()
    a, b = Recorder(), Recorder()
    await hub.connect("a", a)
    await hub.connect("b", b)
    await hub.join("a", "r", {})
    await hub.join("b", "r", {})
    a.messages.clear()
    assert await hub.dropped("b")
    await hub.relay("a", "b", SessionDescription("offer", "v=0"))  # kept for b
    assert a.messages == []
    clock.now += 31
    await hub.sweep()
    assert a.messages == [PeerLeft("r", "b", "disconnected")]


async def test_a_restore_seats_the_peers_it_names_and_they_take_their_seats() -> None:
    hub, _, clock = await make()
    a, b = Recorder(), Recorder()
    claims_a = Claims(rooms=(RoomClaim("r", {"n": "a"}, ("b",)),), playing=(PlayingClaim("cam", "r", "b"),))
    resumed = await hub.resume("a", a, claims_a, placeholders=10)
    assert resumed.how == "restored" and resumed.lost_rooms == [] and resumed.lost_streams == []
    assert [m.peer_id for m in await hub.members("r")] == ["a", "b"]
    await hub.relay("a", "b", SessionDescription("answer", "v=0"), stream_id="cam")  # kept for b
    claims_b = Claims(rooms=(RoomClaim("r", {"n": "b"}, ("a",)),))
    resumed_b = await hub.resume("b", b, claims_b, placeholders=10)
    assert resumed_b.how == "restored" and len(resumed_b.messages) == 1
    # b did not claim to publish "cam": it ends, and a, who believed otherwise, is told.
    assert any(type(m).__name__ == "StreamEnded" for m in a.messages)
    assert {m.peer_id: m.metadata for m in await hub.members("r")} == {"a": {"n": "a"}, "b": {"n": "b"}}
    clock.now += 31
    await hub.sweep()
    assert [m.peer_id for m in await hub.members("r")] == ["a", "b"]  # both came back: nobody leaves
