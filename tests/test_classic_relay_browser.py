"""A page written like a classic-relay tutorial (`socket.emit("offer", {target, sdp:
pc.localDescription})`, `pc.setRemoteDescription(data.sdp)`) completes a call through this server
in real headless Chromium, unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page

from tests.browser_support import BROWSER_DIR, open_page, require, wait
from tests.conftest import RunningServer

ROOT = Path(__file__).resolve().parent.parent
# socket.io-client's browser build, as a tutorial page loads it: vendored, or from npm.
SOCKET_IO = [
    ROOT / "client_js" / "vendor" / "socket.io.esm.min.js",
    ROOT / "client_js" / "node_modules" / "socket.io-client" / "dist" / "socket.io.esm.min.js",
]


@pytest.fixture
async def tutorial_url() -> AsyncIterator[str]:
    """The tutorial page and socket.io-client from one origin of their own, as a page of the
    user's app would be: not served by this server."""
    found = [path for path in SOCKET_IO if path.exists()]
    require(found[0] if found else SOCKET_IO[-1], "bin/setup installs client_js's npm packages")
    files = {"/": BROWSER_DIR / "pages" / "classic-relay.html", "/socket.io.esm.min.js": found[0]}

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(files[request.path])

    app = web.Application()
    for path in files:
        app.router.add_get(path, serve)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/"
    await runner.cleanup()


async def settled(page: Page) -> list[str]:
    """Waits for the call to connect or fail; returns the page's errors."""
    await wait(page, "window.errors.length > 0 || window.connected()")
    errors: list[str] = await page.evaluate("window.errors")
    return errors


async def test_a_tutorial_page_completes_a_call(
    browser: Browser, tutorial_url: str, server: RunningServer
) -> None:
    url = f"{tutorial_url}?server={server.url}&room=tutorial"
    first = await open_page(browser, url)
    await wait(first, "window.joined && window.joined.ok")
    second = await open_page(browser, url)  # the first, already there, offers to it
    for page in (first, second):
        assert await settled(page) == []
        await wait(page, "window.framesDecoded().then((n) => n > 0)")
    await first.evaluate("window.send('hello from first')")
    await wait(second, "window.received.includes('hello from first')")
    await second.evaluate("window.send('hello from second')")
    await wait(first, "window.received.includes('hello from second')")
    assert await first.evaluate("window.errors") == []
    assert await second.evaluate("window.errors") == []
