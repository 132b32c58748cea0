"""Real headless Chromium (Debian's) driven by Playwright, and a static server for test pages.

Nothing here skips: without Chromium or the npm packages the tests fail and say what is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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


def require(path: Path, hint: str) -> None:
    assert path.exists(), f"{path} is missing: {hint}"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require(Path(CHROMIUM), "bin/test installs Debian's chromium package")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


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
