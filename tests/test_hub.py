"""The hub decides who hears what; tested with recording sinks instead of a network."""

from __future__ import annotations

import pytest

from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.hub import Hub, LocalDelivery, Withdrawn
from signaling.core.messages import (
    Candidate,
    IceCandidate,
    Outbound,
    PeerJoined,
    PeerLeft,
    Relayed,
    SessionDescription,
    StreamEnded,
    StreamPublished,
    StreamUnpublished,
    ViewerJoined,
    ViewerLeft,
)
from signaling.core.sessions import MemorySessions
from signaling.core.store import MemoryStore, Route


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Outbound] = []

    async def send(self, message: Outbound) -> None:
        self.messages.append(message)

    async def evict(self, reason: str) -> None:
        self.messages.clear()

    async def moved(self) -> None:
        self.messages.clear()


class Broken:
    async def send(self, message: Outbound) -> None:
        raise ConnectionResetError("socket went away")

    async def evict(self, reason: str) -> None:
        raise ConnectionResetError("socket went away")

    async def moved(self) -> None:
        raise ConnectionResetError("socket went away")


async def make_hub(*peer_ids: str, sessions: MemorySessions | None = None) -> tuple[Hub, dict[str, Recorder]]:
    delivery = LocalDelivery(sessions or MemorySessions(grace=0, buffer_bytes=65536))
    hub = Hub(MemoryStore(), delivery, room_capacity=3)
    sinks = {peer_id: Recorder() for peer_id in peer_ids}
    for peer_id, sink in sinks.items():
        await hub.connect(peer_id, sink)
    return hub, sinks


async def test_join_tells_existing_members_only() -> None:
    hub, sinks = await make_hub("a", "b", "c")
    await hub.join("a", "r", {"x": 1})
    await hub.join("b", "r", {"y": 2})
    assert sinks["a"].messages == [PeerJoined("r", "b", {"y": 2})]
    assert sinks["b"].messages == []
    assert sinks["c"].messages == []


async def test_relay_reaches_the_target_only() -> None:
    hub, sinks = await make_hub("a", "b", "c")
    for peer in "abc":
        await hub.join(peer, "r", {})
    for sink in sinks.values():
        sink.messages.clear()
    offer = SessionDescription("offer", "v=0")
    assert await hub.relay("a", "b", offer) == Route(room="r")
    candidate = IceCandidate(Candidate("candidate:1", "0", 0))
    await hub.relay("a", "b", candidate)
    via = Route(room="r")
    assert sinks["b"].messages == [Relayed("a", "b", via, offer), Relayed("a", "b", via, candidate)]
    assert sinks["a"].messages == [] and sinks["c"].messages == []


async def test_refused_relay_delivers_nothing() -> None:
    hub, sinks = await make_hub("a", "b")
    await hub.join("a", "one", {})
    await hub.join("b", "two", {})
    with pytest.raises(SignalingError) as caught:
        await hub.relay("a", "b", SessionDescription("offer", "v=0"))
    assert caught.value.code == ErrorCode.UNKNOWN_TARGET
    assert sinks["a"].messages == [] and sinks["b"].messages == []


async def test_a_connect_whose_session_cannot_be_opened_leaves_nothing_behind() -> None:
    class Unreachable(MemorySessions):
        async def open(self, peer_id: str, resumable: bool = True) -> None:
            raise SignalingError(ErrorCode.SERVICE_UNAVAILABLE, "the store is out of reach")

    delivery = LocalDelivery(Unreachable(grace=0, buffer_bytes=65536))
    hub = Hub(MemoryStore(), delivery, room_capacity=3)
    with pytest.raises(SignalingError):
        await hub.connect("alice", Recorder())
    assert not delivery.holds("alice") and delivery.connected() == 0


async def test_leave_and_disconnect_reasons() -> None:
    hub, sinks = await make_hub("a", "b", "c")
    for peer in "abc":
        await hub.join(peer, "r", {})
    await hub.leave("c", "r")
    await hub.disconnect("b")
    assert sinks["a"].messages[-2:] == [PeerLeft("r", "c", "left"), PeerLeft("r", "b", "disconnected")]
    assert await hub.store.members("r") != []
    await hub.disconnect("a")
    assert isinstance(hub.store, MemoryStore) and hub.store.is_empty()
    assert hub.delivery.connected() == 1  # only c, which left the room but is still connected


async def test_room_capacity_default_and_override() -> None:
    hub, _ = await make_hub("a", "b", "c", "d")
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
    hub, sinks = await make_hub("a", "c")
    await hub.connect("b", Broken())
    for peer in "abc":
        await hub.join(peer, "r", {})
    await hub.relay("a", "b", SessionDescription("offer", "v=0"))
    await hub.disconnect("a")
    assert sinks["c"].messages[-1] == PeerLeft("r", "a", "disconnected")


async def test_streams_tell_publisher_viewers_and_room() -> None:
    hub, sinks = await make_hub("pub", "v1", "v2", "member")
    hub.room_capacity = 10
    for peer in ("pub", "member", "v1", "v2"):
        await hub.join(peer, "conf", {})
    for sink in sinks.values():
        sink.messages.clear()
    await hub.publish("pub", "cam", room="conf")
    assert sinks["member"].messages[-1] == StreamPublished("conf", "cam", "pub")
    await hub.play("v1", "cam")
    await hub.play("v2", "cam")
    assert sinks["pub"].messages == [ViewerJoined("cam", "v1"), ViewerJoined("cam", "v2")]
    offer = SessionDescription("offer", "v=0")
    assert await hub.relay("pub", "v1", offer, stream_id="cam") == Route(stream_id="cam")
    assert await hub.stop("v1", "cam") == "played"
    assert sinks["pub"].messages[-1] == ViewerLeft("cam", "v1", "stopped")
    assert await hub.stop("pub", "cam") == "published"
    assert sinks["v2"].messages[-2:] == [
        StreamEnded("cam", "stopped"),
        StreamUnpublished("conf", "cam", "pub"),
    ]
    assert sinks["member"].messages[-1:] == [StreamUnpublished("conf", "cam", "pub")]
    assert sinks["v1"].messages == [
        StreamPublished("conf", "cam", "pub"),
        Relayed("pub", "v1", Route(stream_id="cam"), offer),
        StreamUnpublished("conf", "cam", "pub"),
    ]


async def test_publisher_disconnect_ends_its_streams_and_plays() -> None:
    hub, sinks = await make_hub("pub", "viewer", "member")
    await hub.join("pub", "conf", {})
    await hub.join("member", "conf", {})
    await hub.join("viewer", "conf", {})
    await hub.publish("pub", "cam", room="conf")
    await hub.publish("member", "other")
    await hub.play("viewer", "cam")
    await hub.play("pub", "other")
    sinks["member"].messages.clear()
    await hub.disconnect("pub")
    assert sinks["viewer"].messages[-3:] == [
        StreamEnded("cam", "disconnected"),
        StreamUnpublished("conf", "cam", "pub"),
        PeerLeft("conf", "pub", "disconnected"),
    ]
    assert sinks["member"].messages == [
        StreamUnpublished("conf", "cam", "pub"),
        ViewerLeft("other", "pub", "disconnected"),
        PeerLeft("conf", "pub", "disconnected"),
    ]


async def test_leaving_a_room_ends_the_streams_published_in_it() -> None:
    hub, sinks = await make_hub("a", "b")
    await hub.join("a", "conf", {})
    await hub.join("b", "conf", {})
    await hub.publish("a", "in-room", room="conf")
    await hub.publish("a", "elsewhere")
    await hub.leave("a", "conf")
    assert sinks["b"].messages[-2:] == [
        StreamUnpublished("conf", "in-room", "a"),
        PeerLeft("conf", "a", "left"),
    ]
    assert await hub.store.stream("in-room") is None
    assert await hub.store.stream("elsewhere") is not None


async def test_leaving_a_room_stops_playing_its_streams() -> None:
    hub, sinks = await make_hub("a", "b")
    await hub.join("a", "conf", {})
    await hub.join("b", "conf", {})
    await hub.publish("a", "a-cam", room="conf")
    await hub.play("b", "a-cam")
    await hub.leave("b", "conf")
    assert sinks["a"].messages[-2:] == [ViewerLeft("a-cam", "b", "stopped"), PeerLeft("conf", "b", "left")]
    with pytest.raises(SignalingError) as caught:
        await hub.leave("b", "conf")
    assert caught.value.code == ErrorCode.NOT_IN_ROOM


async def test_withdrawing_a_room_ends_its_streams_as_expired_and_says_so() -> None:
    hub, sinks = await make_hub("pub", "viewer", "mate")
    for peer in ("pub", "viewer", "mate"):
        await hub.join(peer, "r", {})
    await hub.join("pub", "kept", {})
    await hub.publish("pub", "s", room="r")
    await hub.publish("pub", "global")
    await hub.play("viewer", "s")
    await hub.play("viewer", "global")
    withdrawn = await hub.withdraw("viewer", lambda action, name: name != "r")
    assert withdrawn == Withdrawn(["r"], [], ["s"])  # the room's stream, though "play s" is granted
    assert sinks["pub"].messages[-2:] == [
        ViewerLeft("s", "viewer", "expired"),
        PeerLeft("r", "viewer", "expired"),
    ]
    withdrawn = await hub.withdraw("pub", lambda action, name: action == "rooms" and name != "r")
    assert withdrawn == Withdrawn(["r"], ["s", "global"], [])
    assert StreamEnded("global", "expired") in sinks["viewer"].messages
    assert PeerLeft("r", "pub", "expired") in sinks["mate"].messages
    assert await hub.store.rooms_of("pub") == ["kept"]


async def test_one_stream_per_id_for_a_peer_whatever_its_rooms() -> None:
    hub, _ = await make_hub("a", "b")
    await hub.join("a", "r1", {})
    await hub.join("b", "r2", {})
    await hub.join("a", "r2", {})
    await hub.publish("b", "cam", room="r2")
    await hub.play("a", "cam")
    with pytest.raises(SignalingError) as playing:
        await hub.publish("a", "cam", room="r1")  # would leave "stop cam" ambiguous
    assert playing.value.code == ErrorCode.ALREADY_PLAYING
    await hub.publish("a", "mine", room="r1")
    with pytest.raises(SignalingError) as publishing:
        await hub.play("a", "mine")
    assert publishing.value.code == ErrorCode.ALREADY_PUBLISHING
