from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from signaling.client import SignalingClient
from signaling.core.hub import Hub
from signaling.core.store import MemoryStore, Store
from signaling.security.ratelimit import Rate
from signaling.server import HUB, SOCKETIO, create_app
from signaling.settings import Settings
from signaling.transports.engine import SignalingServer
from tests.antmedia_client import AntMediaClient
from tests.helpers import ConnectPeer

pytest_plugins = [
    "tests.browser_support",
    "tests.redis_support",
    "tests.cluster_support",
    "tests.turn_support",
    "tests.hostile_support",
]

# What a test needs beyond this process, told by the fixtures it uses: `bin/test --fast` leaves
# these out (pytest -m "not browser and not cluster and not turn and not process").
NEEDS = {
    "browser": {"browser"},
    "cluster": {"redis_server", "redis_client", "start_nodes"},
    "turn": {"coturn"},
    "process": {"start_process", "app_process"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("make_store") == "redis":
            fixtures.add("redis_client")
        for marker, needs in NEEDS.items():
            if fixtures & needs:
                item.add_marker(marker)


UNLIMITED = Rate(1e9, 10**9)

TEST_SETTINGS = Settings(
    host="127.0.0.1",
    port=0,
    room_capacity=4,
    ice_servers=({"urls": "stun:127.0.0.1:3478"},),
    # Tests send far faster than people: the limits get tests of their own.
    rate_relay=UNLIMITED,
    rate_control=UNLIMITED,
    rate_query=UNLIMITED,
    # Tests flood and then connect again from the same address: the cooldown has tests of its own.
    flood_cooldown=0,
    # A key of their own: tests never write one beside the app.
    session_secret="test-session-key",
)


@dataclass
class RunningServer:
    url: str
    app: web.Application
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()

    @property
    def hub(self) -> Hub:
        return self.app[HUB]

    @property
    def sio(self) -> SignalingServer:
        return self.app[SOCKETIO]

    @property
    def store(self) -> MemoryStore:
        store = self.hub.store
        assert isinstance(store, MemoryStore)
        return store


StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Start a real server on a free loopback port; keyword arguments override settings."""
    runners: list[web.AppRunner] = []

    async def start(store: Store | None = None, **overrides: Any) -> RunningServer:
        app = create_app(replace(TEST_SETTINGS, **overrides), store)
        runner = web.AppRunner(app, shutdown_timeout=1)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return RunningServer(f"http://{host}:{port}", app, runner)

    yield start
    for runner in runners:
        if runner.server is not None:  # not stopped by the test already
            await runner.cleanup()


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server()


@pytest.fixture
async def connect(server: RunningServer) -> AsyncIterator[ConnectPeer]:
    """Connect socket.io peers to `server`; all are closed at the end of the test."""
    clients: list[SignalingClient] = []

    async def make(url: str | None = None, **kwargs: Any) -> SignalingClient:
        client = SignalingClient()
        await client.connect(url or server.url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


ConnectAntMedia = Callable[..., Awaitable[AntMediaClient]]


@pytest.fixture
async def antmedia(server: RunningServer) -> AsyncIterator[ConnectAntMedia]:
    """Open raw Ant Media WebSocket connections, the way the SDK does; closed after the test."""
    clients: list[AntMediaClient] = []
    async with aiohttp.ClientSession() as http:

        async def make(url: str | None = None, app: str = "WebRTCAppEE", query: str = "") -> AntMediaClient:
            base = (url or server.url).replace("http", "ws")
            extra = f"&{query}" if query else ""
            client = AntMediaClient(await http.ws_connect(f"{base}/{app}/websocket?target=origin{extra}"))
            clients.append(client)
            return client

        yield make
        for client in clients:
            await client.close()
