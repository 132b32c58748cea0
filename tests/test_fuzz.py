"""Property-based: whatever a client throws at any event, it gets a structured reply, and the server
keeps relaying for everyone else."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.client import SignalingClient
from signaling.core.errors import ErrorCode
from tests.antmedia_client import AntMediaClient
from tests.conftest import ConnectAntMedia, RunningServer, StartServer
from tests.helpers import CANDIDATE, SDP_OFFER, ConnectPeer, joined_pair

EVENTS = ["join", "leave", "offer", "answer", "ice-candidate", "peer-message", "publish", "play", "stop"]
FIELD_NAMES = [
    "room",
    "metadata",
    "target",
    "sdp",
    "candidate",
    "sdpMid",
    "sdpMLineIndex",
    "usernameFragment",
]
CODES = {str(code) for code in ErrorCode}
HONEST_ROOM = "honest-pair-7f3a"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.binary(max_size=40),
    st.sampled_from(["", "lobby", "v=0\r\n", "candidate:1 1 udp 1 127.0.0.1 9 typ host"]),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12)), children, max_size=5),
    ),
    max_leaves=12,
)
payload_objects = st.fixed_dictionaries(
    {},
    optional={name: json_like for name in FIELD_NAMES},
)
arguments = st.one_of(
    st.tuples(payload_objects),
    st.tuples(json_like),
    st.lists(json_like, max_size=3).map(tuple),
)
event_names = st.one_of(st.sampled_from(EVENTS), st.text(max_size=20))

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def assert_still_relays(alice: SignalingClient, bob: SignalingClient) -> None:
    assert alice.peer_id and bob.peer_id
    await alice.offer(bob.peer_id, SDP_OFFER)
    assert (await bob.next("offer"))["from"] == alice.peer_id
    await bob.ice_candidate(alice.peer_id, CANDIDATE)
    assert (await alice.next("ice-candidate"))["candidate"] == CANDIDATE
    assert alice.pending() == {} and bob.pending() == {}


def assert_structured(reply: Any) -> None:
    assert isinstance(reply, dict), reply
    assert isinstance(reply["ok"], bool)
    if not reply["ok"]:
        error = reply["error"]
        assert error["code"] in CODES, error
        assert isinstance(error["message"], str) and error["message"]
        assert set(error) <= {"code", "message", "fields"}


@pytest.fixture
async def peers(connect: ConnectPeer) -> tuple[SignalingClient, SignalingClient, SignalingClient]:
    """A fuzzing client and an honest pair; hypothesis shares them across all examples of a test."""
    fuzzer = await connect()
    return (fuzzer, *await joined_pair(connect, HONEST_ROOM))


@FUZZ
@given(event=event_names, args=arguments)
async def test_any_payload_gets_a_structured_reply(
    peers: tuple[SignalingClient, SignalingClient, SignalingClient], event: str, args: tuple[Any, ...]
) -> None:
    fuzzer, alice, bob = peers
    assert_structured(await fuzzer.request(event, *args))
    await assert_still_relays(alice, bob)


@pytest.fixture
async def twins(start_server: StartServer, connect: ConnectPeer) -> tuple[SignalingClient, SignalingClient]:
    """One client on each of two servers: fed the same requests, they go through the same states."""
    first, second = await start_server(), await start_server()
    return await connect(first.url), await connect(second.url)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=event_names, args=arguments)
async def test_without_ack_a_refusal_arrives_as_one_error_event(
    twins: tuple[SignalingClient, SignalingClient], event: str, args: tuple[Any, ...]
) -> None:
    with_ack, without_ack = twins
    reply = await with_ack.request(event, *args)
    assert_structured(reply)
    await without_ack.emit(event, *args)
    # An ack'd request after it is answered only once the first event has been handled.
    assert (await without_ack.request("leave", {"room": "never-joined"}))["error"]["code"] == "not_in_room"
    errors = without_ack.take_pending("error")
    if reply["ok"]:
        assert errors == []
    else:
        assert [error["code"] for error in errors] == [reply["error"]["code"]]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=st.one_of(st.text(max_size=60).map(lambda t: "4" + t), st.text(max_size=60)))
async def test_raw_frames_never_break_the_server(
    server: RunningServer, connect: ConnectPeer, frame: str
) -> None:
    alice, bob = await joined_pair(connect, HONEST_ROOM)
    async with aiohttp.ClientSession() as http:
        url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with http.ws_connect(url) as ws:
            await ws.receive(timeout=10)
            await ws.send_str("40")
            await ws.receive(timeout=10)
            await ws.send_str(frame)
            await assert_still_relays(alice, bob)
    await alice.close()
    await bob.close()


AM_COMMANDS = [
    "ping",
    "getIceServerConfig",
    "join",
    "leave",
    "publish",
    "play",
    "stop",
    "joinRoom",
    "leaveFromRoom",
    "getRoomInfo",
    "getStreamInfo",
    "takeConfiguration",
    "takeCandidate",
    "peerMessageCommand",
    "getTrackList",
]
AM_FIELDS = [
    "streamId",
    "room",
    "type",
    "sdp",
    "label",
    "id",
    "candidate",
    "definition",
    "data",
    "mode",
    "mainTrack",
]
am_frames = st.one_of(
    st.fixed_dictionaries(
        {"command": st.one_of(st.sampled_from(AM_COMMANDS), json_like)},
        optional={name: json_like for name in AM_FIELDS},
    ).map(lambda d: orjson.dumps(d, option=orjson.OPT_NON_STR_KEYS).decode() if _encodable(d) else "{}"),
    st.text(max_size=60),
)


def _encodable(value: Any) -> bool:
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


@pytest.fixture
async def am_peers(antmedia: ConnectAntMedia) -> tuple[AntMediaClient, AntMediaClient, AntMediaClient]:
    fuzzer = await antmedia()
    alice = await antmedia()
    await alice.request("join", "notification:joined", streamId="honest-am")
    bob = await antmedia()
    await bob.request("join", "notification:joined", streamId="honest-am")
    await alice.next("start")
    return fuzzer, alice, bob


@FUZZ
@given(frame=am_frames)
async def test_antmedia_frames_get_structured_replies(
    am_peers: tuple[AntMediaClient, AntMediaClient, AntMediaClient], frame: str
) -> None:
    fuzzer, alice, bob = am_peers
    await fuzzer.send_raw(frame)
    await fuzzer.sync()
    for error in fuzzer.take_pending("error"):
        assert isinstance(error["definition"], str) and error["definition"]
        assert error["code"] in CODES and error["message"]
    assert not fuzzer.closed.done()
    await alice.send("takeConfiguration", streamId="honest-am", type="offer", sdp=SDP_OFFER)
    assert (await bob.next("takeConfiguration"))["sdp"] == SDP_OFFER
    assert bob.pending() == {}
