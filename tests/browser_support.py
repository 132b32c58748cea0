"""Real headless Chromium (Debian's) driven by Playwright, and a static server for test pages.

Nothing here skips: without Chromium or the npm packages the tests fail and say what is missing.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--autoplay-policy=no-user-gesture-required",
]


DEVTOOLS = re.compile(r"DevTools listening on (ws://\S+)")


def require(path: Path, hint: str) -> None:
    assert path.exists(), f"{path} is missing: {hint}"


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One headless Chromium for the whole run (starting one takes about a second); each test
    connects to it over the DevTools protocol. Returns its DevTools WebSocket URL."""
    require(Path(CHROMIUM), "bin/test installs Debian's chromium package")
    profile = tmp_path_factory.mktemp("chromium-profile")
    log_path = profile.parent / "chromium.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                *CHROMIUM_ARGS,
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        while (found := DEVTOOLS.search(log_path.read_text(errors="replace"))) is None:
            assert process.poll() is None, f"chromium exited: {log_path.read_text(errors='replace')[-2000:]}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port in 30 s"
            time.sleep(0.05)
        yield found.group(1)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """The run's Chromium; every context a test opens is closed after it."""
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium)
        default = connected.contexts[:1]  # the browser's own, which stays
        yield connected
        for context in connected.contexts:
            if context not in default:
                await context.close()
        await connected.close()  # disconnects; the browser stays up for the next test


@pytest.fixture
async def pages_url() -> AsyncIterator[str]:
    """Serves tests/browser (pages and their node_modules) on a loopback port of its own."""
    sdk = BROWSER_DIR / "node_modules" / "@antmedia" / "webrtc_adaptor" / "dist" / "es"
    require(sdk, "bin/test runs npm ci in tests/browser")
    app = web.Application()
    app.router.add_static("/", BROWSER_DIR)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def open_page(browser: Browser, url: str) -> Page:
    """A page in a context of its own, as a separate user's browser would be."""
    context = await browser.new_context()
    page = await context.new_page()
    page.on("pageerror", lambda error: print(f"page error on {url}: {error}"))
    await page.goto(url)
    return page


TIMEOUT_MS = 30_000

# Frames decoded on every mesh connection of the page, and how many connections there are.
MESH_FRAMES = """async () => {
  const links = [...window.demo.client.links].filter(([key]) => key.startsWith("peer:"));
  const counts = [];
  for (const [, link] of links) {
    let frames = 0;
    (await link.pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded || 0;
    });
    counts.push(frames);
  }
  return counts;
}"""


async def wait(page: Page, expression: str, arg: object = None) -> None:
    await page.wait_for_function(expression, arg=arg, timeout=TIMEOUT_MS, polling=100)


async def wait_mesh_media(page: Page, peers: int) -> None:
    """Every one of `peers` connections decodes video, and shows it in a remote tile."""
    await wait(
        page,
        f"({MESH_FRAMES})().then((c) => c.length === {peers} && c.every((n) => n > 0))",
    )
    await wait(
        page,
        f"document.querySelectorAll('.tile.remote video').length === {peers} && "
        "[...document.querySelectorAll('.tile.remote video')].every((v) => v.videoWidth > 0)",
    )
