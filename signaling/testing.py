"""pytest plugin, installed with the package (entry point `pytest11`): a real signaling server on
a free loopback port, and connected `SignalingClient`s, to test apps and bots against.

    async def test_bot_answers(signaling_server, signaling_client):
        caller = await signaling_client()  # connected to signaling_server, closed at teardown
        ...

- `signaling_settings`: the Settings each server starts from; override it in a conftest.
- `start_signaling_server`: `await start_signaling_server(room_capacity=2)` starts one more
  server, keyword arguments overriding settings; a `RunningServer` (url, app, hub, store).
- `signaling_server`: one server started with `signaling_settings`.
- `signaling_client`: `await signaling_client(url=None, **connect_kwargs)` connects a client to
  `signaling_server` (or to `url`); every client is closed at teardown.

The servers run in the test's event loop, so the fixtures need pytest-asyncio (the `testing`
extra); it may run in strict or auto mode.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

# Imported where used: pytest loads this plugin in every run of an environment that has the
# package, and only tests using the fixtures should pay for (or fail on) the server's imports.
if TYPE_CHECKING:
    from aiohttp import web

    from signaling.client import SignalingClient
    from signaling.core.hub import Hub
    from signaling.core.store import MemoryStore, Store
    from signaling.settings import Settings
    from signaling.transports.antmedia import AntMediaTransport
    from signaling.transports.engine import SignalingServer

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class RunningServer:
    url: str
    app: web.Application
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()

    @property
    def hub(self) -> Hub:
        from signaling.server import HUB

        return self.app[HUB]

    @property
    def sio(self) -> SignalingServer:
        from signaling.server import SOCKETIO

        return self.app[SOCKETIO]

    @property
    def antmedia(self) -> AntMediaTransport:
        from signaling.server import ANTMEDIA

        return self.app[ANTMEDIA]

    @property
    def store(self) -> MemoryStore:
        from signaling.core.store import MemoryStore

        store = self.hub.store
        assert isinstance(store, MemoryStore)
        return store


StartServer = Callable[..., Awaitable[RunningServer]]
ConnectClient = Callable[..., Awaitable["SignalingClient"]]


def _async_fixture(function: F) -> F:
    try:
        import pytest_asyncio
    except ImportError:
        # Without pytest-asyncio the plugin still loads (it loads in every run): only a test
        # that uses these fixtures fails, saying what is missing.
        @functools.wraps(function)
        def missing(*args: Any, **kwargs: Any) -> Any:
            pytest.fail(
                "signaling.testing's fixtures need pytest-asyncio: pip install 'webrtc-signaling[testing]'"
            )

        return pytest.fixture(missing)  # type: ignore[return-value]
    return cast(F, pytest_asyncio.fixture(function))


@pytest.fixture
def signaling_settings() -> Settings:
    """What every server of `start_signaling_server` starts from; override it to change them all."""
    from signaling.settings import Settings

    # A loopback address; the port is picked free at each start. A fixed session secret: with
    # none the server would generate a key file beside the package.
    return Settings(host="127.0.0.1", port=0, session_secret="signaling-testing-session-key")


@_async_fixture
async def start_signaling_server(signaling_settings: Settings) -> AsyncIterator[StartServer]:
    """Start a real server on a free loopback port; keyword arguments override settings, `store`
    replaces the in-memory state. All are stopped at teardown."""
    from aiohttp import web

    from signaling.server import create_app

    runners: list[web.AppRunner] = []

    async def start(store: Store | None = None, **overrides: Any) -> RunningServer:
        settings = replace(signaling_settings, **overrides)
        app = create_app(settings, store)
        runner = web.AppRunner(app, shutdown_timeout=1)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, settings.host, 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return RunningServer(f"http://{host}:{port}", app, runner)

    yield start
    for runner in runners:
        if runner.server is not None:  # not stopped by the test already
            await runner.cleanup()


@_async_fixture
async def signaling_server(start_signaling_server: StartServer) -> RunningServer:
    return await start_signaling_server()


@_async_fixture
async def signaling_client(signaling_server: RunningServer) -> AsyncIterator[ConnectClient]:
    """Connect `SignalingClient`s to `signaling_server` (or to `url`); closed at the end of the test."""
    from signaling.client import SignalingClient

    clients: list[SignalingClient] = []

    async def make(url: str | None = None, **kwargs: Any) -> SignalingClient:
        client = SignalingClient()
        await client.connect(url or signaling_server.url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
