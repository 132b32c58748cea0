"""The hub decides who hears what; tested with recording sinks instead of a network."""

from __future__ import annotations

import pytest

from signaling.errors import ErrorCode, SignalingError
from signaling.hub import Hub, LocalDelivery
from signaling.messages import (
    Candidate,
    IceCandidate,
    Outbound,
    PeerJoined,
    PeerLeft,
    Relayed,
    SessionDescription,
)
from signaling.rooms import MemoryRoomStore


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Outbound] = []

    async def send(self, message: Outbound) -> None:
        self.messages.append(message)


class Broken:
    async def send(self, message: Outbound) -> None:
        raise ConnectionResetError("socket went away")


def make_hub(*peer_ids: str) -> tuple[Hub, dict[str, Recorder]]:
    hub = Hub(MemoryRoomStore(), LocalDelivery(), room_capacity=3)
    sinks = {peer_id: Recorder() for peer_id in peer_ids}
    for peer_id, sink in sinks.items():
        hub.connect(peer_id, sink)
    return hub, sinks


async def test_join_tells_existing_members_only() -> None:
    hub, sinks = make_hub("a", "b", "c")
    await hub.join("a", "r", {"x": 1})
    await hub.join("b", "r", {"y": 2})
    assert sinks["a"].messages == [PeerJoined("r", "b", {"y": 2})]
    assert sinks["b"].messages == []
    assert sinks["c"].messages == []


async def test_relay_reaches_the_target_only() -> None:
    hub, sinks = make_hub("a", "b", "c")
    for peer in "abc":
        await hub.join(peer, "r", {})
    for sink in sinks.values():
        sink.messages.clear()
    offer = SessionDescription("offer", "v=0")
    assert await hub.relay("a", "b", offer) == "r"
    candidate = IceCandidate(Candidate("candidate:1", "0", 0))
    await hub.relay("a", "b", candidate)
    assert sinks["b"].messages == [Relayed("a", "b", "r", offer), Relayed("a", "b", "r", candidate)]
    assert sinks["a"].messages == [] and sinks["c"].messages == []


async def test_refused_relay_delivers_nothing() -> None:
    hub, sinks = make_hub("a", "b")
    await hub.join("a", "one", {})
    await hub.join("b", "two", {})
    with pytest.raises(SignalingError) as caught:
        await hub.relay("a", "b", SessionDescription("offer", "v=0"))
    assert caught.value.code == ErrorCode.UNKNOWN_TARGET
    assert sinks["a"].messages == [] and sinks["b"].messages == []


async def test_leave_and_disconnect_reasons() -> None:
    hub, sinks = make_hub("a", "b", "c")
    for peer in "abc":
        await hub.join(peer, "r", {})
    await hub.leave("c", "r")
    await hub.disconnect("b")
    assert sinks["a"].messages[-2:] == [PeerLeft("r", "c", "left"), PeerLeft("r", "b", "disconnected")]
    assert await hub.store.members("r") != []
    await hub.disconnect("a")
    assert isinstance(hub.store, MemoryRoomStore) and hub.store.is_empty()
    assert hub.delivery.connected() == 1  # only c, which left the room but is still connected


async def test_room_capacity_default_and_override() -> None:
    hub, _ = make_hub("a", "b", "c", "d")
    for peer in "abc":
        await hub.join(peer, "r", {})
    with pytest.raises(SignalingError) as caught:
        await hub.join("d", "r", {})
    assert caught.value.code == ErrorCode.ROOM_FULL
    await hub.join("a", "pair", {}, capacity=2)
    await hub.join("b", "pair", {}, capacity=2)
    with pytest.raises(SignalingError):
        await hub.join("c", "pair", {}, capacity=2)


async def test_a_failing_receiver_does_not_fail_the_sender_or_others() -> None:
    hub, sinks = make_hub("a", "c")
    hub.connect("b", Broken())
    for peer in "abc":
        await hub.join(peer, "r", {})
    await hub.relay("a", "b", SessionDescription("offer", "v=0"))
    await hub.disconnect("a")
    assert sinks["c"].messages[-1] == PeerLeft("r", "a", "disconnected")
