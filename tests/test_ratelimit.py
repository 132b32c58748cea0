"""Abuse limits: bucket arithmetic without waiting, then a flooder against a live server."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
import socketio

from signaling.client import SignalingClient
from signaling.core.errors import ErrorCode, SignalingError
from signaling.operations.listener import TcpConnections
from signaling.operations.metrics import Metrics
from signaling.security.guard import Guard
from signaling.security.ratelimit import AddressLimiter, ConnectionLimiter, Cooldowns, Rate, RateLimits
from tests.conftest import ConnectAntMedia, StartServer
from tests.helpers import CANDIDATE, SDP_ANSWER, SDP_OFFER, ConnectPeer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_bursts_then_the_rate() -> None:
    clock = Clock()
    limiter = ConnectionLimiter(RateLimits(control=Rate(2, 3), strikes=2), clock)
    for _ in range(3):
        limiter.check("control")
    with pytest.raises(SignalingError) as caught:
        limiter.check("control")
    assert caught.value.code == ErrorCode.RATE_LIMITED
    assert not limiter.flooding
    clock.now = 0.5  # one token back at 2 per second
    limiter.check("control")
    with pytest.raises(SignalingError):
        limiter.check("control")
    assert limiter.flooding
    limiter.check("relay")  # other kinds have their own buckets


def test_address_limiter() -> None:
    limiter = AddressLimiter(2)
    assert limiter.acquire("a") and limiter.acquire("a")
    assert not limiter.acquire("a")
    assert limiter.acquire("b")
    limiter.release("a")
    assert limiter.acquire("a")


async def test_flooder_is_refused_then_dropped_while_a_call_goes_on(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    guarded = await start_server(rate_relay=Rate(50, 100), rate_limit_strikes=200)
    alice = await connect(guarded.url)
    await alice.join("calm")
    bob = await connect(guarded.url)
    await bob.join("calm")
    await alice.next("peer-joined")
    flooder = await connect(guarded.url)
    await flooder.join("calm")
    await alice.next("peer-joined")
    assert alice.peer_id and bob.peer_id
    target = alice.peer_id

    async def flood() -> set[str]:
        outcomes = set()
        for _ in range(2000):
            if not flooder.sio.connected:
                break
            try:
                reply = await flooder.request("ice-candidate", {"target": target, "candidate": CANDIDATE})
            except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
                break
            outcomes.add("ok" if reply["ok"] else reply["error"]["code"])
        return outcomes

    async def honest_call() -> None:
        await alice.offer(bob.peer_id or "", SDP_OFFER)
        assert (await bob.next("offer"))["sdp"] == SDP_OFFER
        await bob.answer(target, SDP_ANSWER)
        assert (await alice.next("answer"))["sdp"] == SDP_ANSWER
        for _ in range(20):
            await alice.ice_candidate(bob.peer_id or "", CANDIDATE)
        for _ in range(20):
            await bob.next("ice-candidate")

    outcomes, _ = await asyncio.gather(flood(), honest_call())
    assert outcomes == {"ok", "rate_limited"}
    await flooder.next("disconnect")
    assert alice.sio.connected and bob.sio.connected


async def test_connections_per_address(start_server: StartServer, connect: ConnectPeer) -> None:
    tight = await start_server(max_connections_per_ip=2)
    first = await connect(tight.url)
    await connect(tight.url)
    refused = SignalingClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(tight.url)
    polling = f"{tight.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http, http.get(polling) as response:
        assert response.status == 401  # engine.io's refusal, carrying our error
        assert (await response.json())["code"] == "too_many_connections"
    async with (
        aiohttp.ClientSession() as http,
        http.get(tight.url.replace("http", "ws") + "/WebRTCAppEE/websocket") as response,
    ):
        assert response.status == 429
        assert (await response.json())["code"] == "too_many_connections"
    await first.close()
    for _ in range(100):  # the server frees the slot when it sees the socket close
        try:
            await connect(tight.url)
            return
        except socketio.exceptions.ConnectionError:
            await asyncio.sleep(0.02)
    raise AssertionError("a freed connection slot was not given back")


async def test_garbage_counts_against_the_rate_too(
    start_server: StartServer, antmedia: ConnectAntMedia
) -> None:
    guarded = await start_server(rate_control=Rate(5, 10), rate_limit_strikes=20)
    flooder = await antmedia(guarded.url)
    for index in range(100):
        await flooder.send_raw("{not json" if index % 2 else b"\x00binary")
    assert await flooder.closed is not None  # cut off as a flooder, not answered forever
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            guarded.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        )
        await ws.receive(timeout=5)
        await ws.send_str("40")
        await ws.receive(timeout=5)
        for _ in range(100):
            await ws.send_str("42[unterminated")
        # The server closes the connection of a client that keeps sending garbage.
        closing = {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING}
        for _ in range(1000):
            if (await ws.receive(timeout=10)).type in closing:
                break
        else:
            raise AssertionError("a client sending garbage was never cut off")
        await ws.close()


async def test_bare_engineio_sessions_count_too(start_server: StartServer) -> None:
    tight = await start_server(max_connections_per_ip=3)
    url = tight.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http:
        held = []
        for _ in range(3):  # sessions that never connect to a namespace
            ws = await http.ws_connect(url)
            assert (await ws.receive(timeout=5)).data.startswith("0")
            held.append(ws)
        polling = url.replace("transport=websocket", "transport=polling").replace("ws://", "http://")
        async with http.get(polling) as response:
            assert response.status == 401
            assert (await response.json())["code"] == "too_many_connections"
        await held[0].close()
        for _ in range(100):  # the slot comes back once the server has seen the session end
            async with http.get(polling) as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("a closed session's slot was not given back")
        for ws in held[1:]:
            await ws.close()


def test_cooldowns_bar_an_address_for_a_while() -> None:
    clock = Clock()
    cooldowns = Cooldowns(10, clock)
    assert cooldowns.remaining("10.0.0.1") == 0
    cooldowns.start("10.0.0.1")
    clock.now = 4
    assert cooldowns.remaining("10.0.0.1") == 6 and cooldowns.remaining("10.0.0.2") == 0
    clock.now = 10
    assert cooldowns.remaining("10.0.0.1") == 0
    off = Cooldowns(0, clock)
    off.start("10.0.0.1")
    assert off.remaining("10.0.0.1") == 0


def test_a_flooding_connection_puts_its_address_in_a_cooldown() -> None:
    guard = Guard(
        rate_limits=RateLimits(control=Rate(1, 1), strikes=2),
        connections_per_address=5,
        metrics=Metrics(),
        flood_cooldown=30,
    )
    guard.reserve("10.0.0.1", "test")
    session = guard.open("10.0.0.1", "test")
    for _ in range(3):
        with contextlib.suppress(SignalingError):
            guard.take(session.limiter, session.address, "control")
    assert session.limiter.flooding
    with pytest.raises(SignalingError) as barred:
        guard.reserve("10.0.0.1", "test")
    assert barred.value.code == ErrorCode.RATE_LIMITED and "flooding" in barred.value.message
    guard.reserve("10.0.0.2", "test")


class FakeTransport:
    def __init__(self, address: str) -> None:
        self.address = address
        self.aborted = False

    def get_extra_info(self, name: str) -> object:
        return (self.address, 40000) if name == "peername" else None

    def abort(self) -> None:
        self.aborted = True


def test_an_address_holds_two_tcp_connections_per_session_at_most() -> None:
    guard = Guard(rate_limits=RateLimits(), connections_per_address=2, metrics=Metrics())
    connections = TcpConnections(guard, sessions_per_address=2)
    protocols = [object() for _ in range(5)]
    transports = [FakeTransport("10.0.0.9") for _ in range(5)]
    opened = [
        connections.opened(protocol, "10.0.0.9", transport)  # type: ignore[arg-type]  # a stand-in
        for protocol, transport in zip(protocols, transports, strict=True)
    ]
    assert opened == [True] * 4 + [False] and transports[4].aborted  # over the limit: cut at once
    connections.closed(protocols[0])
    connections.closed(protocols[0])  # given back once only
    assert connections.opened(object(), "10.0.0.9", FakeTransport("10.0.0.9"))  # type: ignore[arg-type]
    assert not connections.opened(object(), "10.0.0.9", FakeTransport("10.0.0.9"))  # type: ignore[arg-type]
    assert connections.opened(object(), "10.0.0.10", FakeTransport("10.0.0.10"))  # type: ignore[arg-type]
    # Apart from the sessions' slots: an address at its session limit still gets its requests in.
    guard.reserve("10.0.0.9", "test")
    guard.reserve("10.0.0.9", "test")
    with pytest.raises(SignalingError):
        guard.reserve("10.0.0.9", "test")
