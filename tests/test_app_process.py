"""`python app.py` as an operator runs it: settings from the environment and flags, a real process."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from signaling.client import SignalingClient
from tests.antmedia_client import AntMediaClient
from tests.helpers import SDP_OFFER, free_port
from tests.hostile_support import StartProcess, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.process


@pytest.fixture
async def app_process() -> AsyncIterator[str]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "MAX_ROOM_SIZE": "2", "ICE_SERVERS": "stun:127.0.0.1:3478"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "app.py",
        "--host",
        "127.0.0.1",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def test_app_serves_on_port_from_environment(app_process: str) -> None:
    async with SignalingClient() as alice, SignalingClient() as bob, SignalingClient() as carol:
        for client in (alice, bob, carol):
            await client.connect(app_process)
        reply = await alice.join("duo")
        assert reply["iceServers"] == [{"urls": "stun:127.0.0.1:3478"}]
        await bob.join("duo")
        refused = await carol.request("join", {"room": "duo"})
        assert refused["error"]["code"] == "room_full"  # MAX_ROOM_SIZE=2 from the environment
        assert bob.peer_id
        await alice.offer(bob.peer_id, SDP_OFFER)
        assert (await bob.next("offer"))["sdp"] == SDP_OFFER


async def test_bad_setting_exits_with_a_message_naming_it() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "app.py",
        cwd=ROOT,
        env={**os.environ, "PORT": "eighty"},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"PORT='eighty'" in stderr


def test_procfile_runs_app() -> None:
    assert (ROOT / "Procfile").read_text().strip() == "web: python app.py"


async def test_sigterm_drains_clients_to_elsewhere_and_exits_cleanly(start_process: StartProcess) -> None:
    server = await start_process(DRAIN_TIMEOUT="5")
    async with SignalingClient() as client, aiohttp.ClientSession() as http:
        await client.connect(server.url)
        await client.join("room")
        sdk = AntMediaClient(await http.ws_connect(f"{server.ws_url}/WebRTCAppEE/websocket"))
        await sdk.request("join", "notification:joined", streamId="call")
        seconds = await server.stop()  # SIGTERM; asserts exit status 0
        # Told to reconnect, not left hanging on a process that no longer serves them.
        assert await client.next("disconnect") in ("transport close", "transport error")  # reconnects
        assert (await sdk.next("notification:server_will_stop"))["definition"] == "server_will_stop"
        assert await sdk.closed == 1012
        await sdk.close()
    assert seconds < 5
