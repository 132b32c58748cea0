"""The session core without a network: holding, keeping, resuming, ending, rebuilding."""

from __future__ import annotations

from signaling.core.hub import Hub, LocalDelivery
from signaling.core.messages import IceCandidate, PeerLeft, PeerMessage, Relayed, SessionDescription
from signaling.core.sessions import Claims, MemorySessions, PlayingClaim, RoomClaim, message_size
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
    assert (await sessions.resume("b")).previous  # attached again: a resume now takes it over


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
    sessions = MemorySessions(grace=30, buffer_bytes=message_size(relayed(0)) * 2, clock=Clock())
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


def test_sizes_count_what_is_kept() -> None:
    assert message_size(Relayed("a", "b", Route(room="r"), SessionDescription("offer", "x" * 1000))) > 1000
    assert message_size(Relayed("a", "b", Route(room="r"), IceCandidate(None))) > 0


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
    resumed = await hub.resume("a", a, claims_a)
    assert resumed.how == "restored" and resumed.lost_rooms == [] and resumed.lost_streams == []
    assert [m.peer_id for m in await hub.members("r")] == ["a", "b"]
    await hub.relay("a", "b", SessionDescription("answer", "v=0"), stream_id="cam")  # kept for b
    claims_b = Claims(rooms=(RoomClaim("r", {"n": "b"}, ("a",)),))
    resumed_b = await hub.resume("b", b, claims_b)
    assert resumed_b.how == "restored" and len(resumed_b.messages) == 1
    # b did not claim to publish "cam": it ends, and a, who believed otherwise, is told.
    assert any(type(m).__name__ == "StreamEnded" for m in a.messages)
    assert {m.peer_id: m.metadata for m in await hub.members("r")} == {"a": {"n": "a"}, "b": {"n": "b"}}
    clock.now += 31
    await hub.sweep()
    assert [m.peer_id for m in await hub.members("r")] == ["a", "b"]  # both came back: nobody leaves
