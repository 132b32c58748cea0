"""Acceptance: the official Ant Media JavaScript SDK, unmodified, in headless Chromium with a fake
camera and microphone, makes real calls through this server."""

from __future__ import annotations

from playwright.async_api import Browser

from tests.browser_support import TIMEOUT_MS, open_page, wait
from tests.conftest import RunningServer


def page_url(pages_url: str, server: RunningServer, mode: str, stream_id: str) -> str:
    ws = server.url.replace("http://", "ws://") + "/WebRTCAppEE/websocket"
    return f"{pages_url}/pages/antmedia.html?mode={mode}&id={stream_id}&ws={ws}"


async def test_sdk_p2p_call(browser: Browser, pages_url: str, server: RunningServer) -> None:
    url = page_url(pages_url, server, "p2p", "sdkcall")
    first = await open_page(browser, url)
    await wait(first, "window.seen('joined')")
    second = await open_page(browser, url)
    for page in (first, second):
        await wait(page, "window.seen('joined')")
        await wait(page, "window.iceConnected()")
        await wait(page, "window.framesDecoded().then((n) => n > 0)")
        await wait(page, "window.seen('data_channel_opened')")

    await first.evaluate("window.adaptor.sendData('sdkcall', 'hello from first')")
    await wait(second, "window.received.includes('hello from first')")
    await second.evaluate("window.adaptor.sendData('sdkcall', 'hello from second')")
    await wait(first, "window.received.includes('hello from second')")

    third = await open_page(browser, url)
    await wait(third, "window.errors.some((e) => e.error === 'NoSpaceForNewPeer')")

    # leave: the other side is sent stop and closes its connection for the call.
    await first.evaluate("window.adaptor.leave('sdkcall')")
    await wait(first, "window.seen('leaved')")
    await wait(second, "!window.hasPeerConnection()")
    assert await first.evaluate("window.errors") == []
    assert await second.evaluate("window.errors") == []


async def test_sdk_publish_and_play(browser: Browser, pages_url: str, server: RunningServer) -> None:
    publisher = await open_page(browser, page_url(pages_url, server, "publish", "sdkstream"))
    await wait(publisher, "window.seen('publish_started')")
    player = await open_page(browser, page_url(pages_url, server, "play", "sdkstream"))
    await wait(player, "window.framesDecoded().then((n) => n > 0)")
    await wait(player, "window.seen('play_started')")
    await wait(publisher, "window.iceConnected()")
    assert await player.evaluate("window.errors") == []
    assert await publisher.evaluate("window.errors") == []


async def test_library_publisher_serves_several_sdk_players(
    browser: Browser, pages_url: str, server: RunningServer
) -> None:
    # Our broadcast page opens a connection per viewer, so SDK players are not limited to one.
    publisher = await open_page(browser, f"{server.url}/broadcast?stream=mixedshow&role=publish")
    await publisher.wait_for_function(
        "document.getElementById('status').textContent === '0 viewers'", timeout=TIMEOUT_MS
    )
    players = [await open_page(browser, page_url(pages_url, server, "play", "mixedshow")) for _ in range(2)]
    for player in players:
        await wait(player, "window.framesDecoded().then((n) => n > 0)")
        await wait(player, "window.seen('play_started')")
        assert await player.evaluate("window.errors") == []
    await publisher.wait_for_function(
        "document.getElementById('status').textContent === '2 viewers'", timeout=TIMEOUT_MS
    )
