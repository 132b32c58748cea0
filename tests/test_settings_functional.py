"""Settings that change behaviour on the wire, checked against a running server."""

from __future__ import annotations

import logging

import aiohttp
import pytest
import socketio

from signaling.client import SignalingClient
from tests.conftest import StartServer
from tests.helpers import SDP_OFFER, ConnectPeer, joined_pair


async def test_cors_allowed_origins(start_server: StartServer, connect: ConnectPeer) -> None:
    strict = await start_server(cors_allowed_origins=["https://app.example"])
    allowed = await connect(strict.url, headers={"Origin": "https://app.example"})
    assert allowed.sio.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect(strict.url, headers={"Origin": "https://evil.example"})


async def test_silent_peer_is_dropped_after_ping_timeout(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    quick = await start_server(ping_interval=0.2, ping_timeout=0.3, session_grace=0)
    alice = await connect(quick.url)
    await alice.join("heartbeat")
    async with aiohttp.ClientSession() as http:
        url = quick.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with http.ws_connect(url, autoping=False) as ws:
            await ws.receive(timeout=5)
            await ws.send_str("40")
            await ws.receive(timeout=5)
            await ws.send_str('42["join",{"room":"heartbeat"}]')
            joined = await alice.next("peer-joined")
            # Never answer the server's pings: the server must give up on this peer by itself.
            left = await alice.next("peer-left", timeout=10)
    assert left == {"room": "heartbeat", "peerId": joined["peerId"], "reason": "disconnected"}


async def test_sdp_is_logged_only_at_debug(connect: ConnectPeer, caplog: pytest.LogCaptureFixture) -> None:
    alice, bob = await joined_pair(connect)
    assert alice.peer_id and bob.peer_id
    with caplog.at_level(logging.INFO, logger="signaling"):
        await alice.offer(bob.peer_id, SDP_OFFER)
        await bob.next("offer")
    assert "a=ice-pwd" not in caplog.text
    with caplog.at_level(logging.DEBUG, logger="signaling"):
        await alice.offer(bob.peer_id, SDP_OFFER)
        await bob.next("offer")
    assert "a=ice-pwd" in caplog.text
    assert alice.peer_id in caplog.text


async def test_limits_are_configurable(start_server: StartServer) -> None:
    tight = await start_server(max_sdp_chars=100, max_metadata_bytes=20)
    async with SignalingClient() as alice:
        await alice.connect(tight.url)
        refused = await alice.request("join", {"room": "r", "metadata": {"name": "x" * 30}})
        assert refused["error"]["code"] == "validation_failed"
        await alice.join("r")
        refused = await alice.request("offer", {"target": "p", "sdp": "v" * 101})
        assert "sdp" in refused["error"]["fields"]
