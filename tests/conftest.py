from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from signaling.security.ratelimit import Rate
from signaling.settings import Settings
from signaling.testing import ConnectClient
from signaling.testing import RunningServer as RunningServer
from signaling.testing import StartServer as StartServer
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


@pytest.fixture
def signaling_settings() -> Settings:
    """The plugin's servers start from our test settings."""
    return TEST_SETTINGS


# Our names for the plugin's fixtures (signaling.testing): the suite runs on what users get.
@pytest.fixture
def start_server(start_signaling_server: StartServer) -> StartServer:
    """Start a real server on a free loopback port; keyword arguments override settings."""
    return start_signaling_server


@pytest.fixture
def server(signaling_server: RunningServer) -> RunningServer:
    return signaling_server


@pytest.fixture
def connect(signaling_client: ConnectClient) -> ConnectPeer:
    """Connect socket.io peers to `server`; all are closed at the end of the test."""
    return signaling_client


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
