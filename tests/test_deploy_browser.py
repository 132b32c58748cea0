"""The demo pages as a deploy serves them, in real Chromium: from a fresh copy of the repository
with nothing built (what a Python buildpack runs), without a request failing (favicon included),
and saying so visibly when their library cannot load."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response

from tests.browser_support import wait
from tests.conftest import RunningServer
from tests.helpers import free_port
from tests.hostile_support import wait_healthy

ROOT = Path(__file__).resolve().parent.parent

# Each page, and what shows that its script ran (which needs the library and socket.io-client).
PAGES = {
    "/": "!document.getElementById('lobby').hidden",
    "/?room=deploy&name=Ada": "window.demo && window.demo.client.rooms.size === 1",
    "/broadcast": "!document.getElementById('choose').hidden",
}


async def open_recording(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """Opens `url`, recording every response that failed and every console error."""
    context = await browser.new_context()
    page = await context.new_page()
    failures: list[str] = []

    def responded(response: Response) -> None:
        if response.status >= 400:
            failures.append(f"{response.status} {response.url}")

    page.on("response", responded)
    page.on("requestfailed", lambda request: failures.append(f"failed {request.url}"))

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error":
            failures.append(message.text)

    page.on("console", logged)
    page.on("pageerror", lambda error: failures.append(f"page error: {error}"))
    await page.goto(url)
    return page, failures


def fresh_copy(destination: Path) -> Path:
    """The files a fresh clone of this checkout would hold: every file git tracks or would track
    (what is not ignored), as they are in the working tree, so that uncommitted work is what is
    tested; nothing built (no node_modules) and nothing ignored (no .venv)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # (deleted but not yet committed: not in the clone either)
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture
async def deployed(tmp_path: Path) -> AsyncIterator[str]:
    """`PORT=... python app.py` in a fresh copy, as Heroku's Python buildpack runs it: the pinned
    requirements installed (this run's .venv stands in for pip install -r requirements.txt), no
    npm step."""
    copy = fresh_copy(tmp_path / "clone")
    assert not (copy / "client_js" / "node_modules").exists()
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    with (tmp_path / "app.log").open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "app.py",
            cwd=copy,
            env={**env, "PORT": str(port), "ICE_SERVERS": "stun:127.0.0.1:3478"},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)
    log = (tmp_path / "app.log").read_text(errors="replace")
    assert "socket.io.esm.min.js is missing" not in log, log


@pytest.mark.process
async def test_a_fresh_clone_without_npm_serves_working_pages(browser: Browser, deployed: str) -> None:
    for path, works in PAGES.items():
        page, failures = await open_recording(browser, f"{deployed}{path}")
        await wait(page, works)
        assert await page.is_hidden("#load-error")
        assert failures == [], path


async def test_the_demo_pages_load_without_a_failed_request(browser: Browser, server: RunningServer) -> None:
    """Not even /favicon.ico, which browsers ask for unless a page declares its icon."""
    for path, works in PAGES.items():
        page, failures = await open_recording(browser, f"{server.url}{path}")
        await wait(page, works)
        # The favicon is fetched after the load event; a round trip later it would have failed.
        await page.evaluate("fetch('/healthz')")
        assert failures == [], path


@pytest.mark.parametrize(
    "broken",
    ["**/client/vendor/socket.io.esm.min.js", "**/client/signaling-client.js", "**/client/demo/*.js"],
)
async def test_a_page_that_cannot_load_its_library_says_so(
    browser: Browser, server: RunningServer, broken: str
) -> None:
    for path in PAGES:
        context = await browser.new_context()
        await context.route(broken, lambda route: route.fulfill(status=404, body="404: Not Found"))
        page = await context.new_page()
        await page.goto(f"{server.url}{path}")
        await wait(page, "!document.getElementById('load-error').hidden")
        assert "could not load its scripts" in (await page.text_content("#load-error") or "")
        assert await page.is_visible("#load-error")
        await context.close()
