"""End to end in real headless Chromium: the demo pages and the browser client library, with fake
cameras, against the real server. Media is checked with getStats (frames decoded), not trusted."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page

from tests.browser_support import MESH_FRAMES, open_page, wait, wait_mesh_media
from tests.conftest import RunningServer, StartServer

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

STREAM_FRAMES = """async (streamId) => {
  let frames = 0;
  for (const [key, link] of window.demo.client.links) {
    if (!key.startsWith(`stream:${streamId}:`)) continue;
    (await link.pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded || 0;
    });
  }
  return frames;
}"""


async def open_room(browser: Browser, server: RunningServer, room: str, name: str, quality: str = "") -> Page:
    extra = f"&quality={quality}" if quality else ""
    page = await open_page(browser, f"{server.url}/?room={room}&name={name}{extra}")
    await wait(page, "window.demo && window.demo.client.peerId && window.demo.client.rooms.size === 1")
    return page


async def chat(page: Page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.click("#chat-form button")


async def test_two_pages_call_and_chat(browser: Browser, server: RunningServer) -> None:
    alice = await open_room(browser, server, "duo", "Alice")
    bob = await open_room(browser, server, "duo", "Bob")
    for page in (alice, bob):
        await wait_mesh_media(page, 1)
        await wait(page, "document.querySelector('.tile.remote .state').textContent === 'connected'")
        await wait(
            page,
            "window.demo.client.send('all', '') >= 0 && [...window.demo.client.links.values()][0].channel",
        )
    await chat(alice, "hello from Alice")
    await wait(bob, "document.getElementById('chat-log').textContent.includes('hello from Alice')")
    await chat(bob, "hi Alice, Bob here")
    await wait(alice, "document.getElementById('chat-log').textContent.includes('hi Alice, Bob here')")
    assert await bob.text_content(".tile.remote .label") == "Alice"


async def test_four_pages_mesh_and_leaving(browser: Browser, server: RunningServer) -> None:
    pages = [await open_room(browser, server, "four", f"P{i}", quality="low") for i in range(4)]
    for page in pages:
        await wait_mesh_media(page, 3)
    leaver = pages.pop()
    leaver_id = await leaver.evaluate("window.demo.client.peerId")
    await leaver.click("#leave")
    for page in pages:
        await wait(page, "(id) => !document.querySelector(`.tile[data-peer='${id}']`)", leaver_id)
        await wait(page, "document.querySelectorAll('.tile.remote').length === 2")


async def test_dropped_socket_resumes_and_media_keeps_flowing(
    browser: Browser, server: RunningServer
) -> None:
    alice = await open_room(browser, server, "flaky", "Alice")
    bob = await open_room(browser, server, "flaky", "Bob")
    await wait_mesh_media(alice, 1)
    await wait_mesh_media(bob, 1)
    alice_id = await alice.evaluate("window.demo.client.peerId")
    bob_id = await bob.evaluate("window.demo.client.peerId")

    # (A statement list: evaluate() would call a function the expression returned.)
    for page in (alice, bob):
        await page.evaluate(
            "() => { window.seen = []; for (const name of ['reconnected', 'peer-left', 'peer-joined'])"
            " window.demo.client.on(name, (e) => window.seen.push({name, ...e}));"
            " window.pc = [...window.demo.client.links.values()][0].pc; }"
        )
    # The page goes offline, which drops its socket, and comes back. Its peer connection stays
    # (offline emulation leaves WebRTC alone), and so does its session on the server.
    await bob.context.set_offline(True)
    await wait(bob, "!window.demo.client.socket.connected && !window.demo.client.signalingLive")
    await wait(bob, "!document.getElementById('signaling-notice').hidden")
    # Media keeps flowing while signaling is down.
    for page in (alice, bob):
        frames = await page.evaluate(MESH_FRAMES)
        assert len(frames) == 1, "the peer connection was closed"
        await wait(page, f"({MESH_FRAMES})().then(([n]) => n > {frames[0]})")
    await bob.context.set_offline(False)

    await wait(bob, "window.seen.some((e) => e.name === 'reconnected')")
    assert await bob.evaluate("window.seen") == [{"name": "reconnected", "peerId": bob_id, "resumed": "kept"}]
    assert await bob.evaluate("window.demo.client.peerId") == bob_id
    await wait(bob, "document.getElementById('signaling-notice').hidden")
    assert await alice.evaluate("window.seen") == []  # Bob never left, nor came back as someone new
    # Each keeps the other's tile, and the same connection goes on decoding video.
    for page, other in ((alice, bob_id), (bob, alice_id)):
        assert await page.locator(".tile.remote").count() == 1
        assert await page.get_attribute(".tile.remote", "data-peer") == other
        assert await page.evaluate(
            "[...window.demo.client.links.values()].map((l) => l.pc === window.pc)"
        ) == [True]
        [frames] = await page.evaluate(MESH_FRAMES)
        await wait(page, f"({MESH_FRAMES})().then(([n]) => n > {frames})")
    # And signaling works again: Bob's messages reach Alice through the server.
    await alice.evaluate(
        "() => { window.messages = []; window.demo.client.on('peer-message', (m) => messages.push(m)) }"
    )
    reply = await bob.evaluate(
        "(target) => window.demo.client.socket.emitWithAck('peer-message', {target, data: 'back'})", alice_id
    )
    assert reply["ok"] is True, reply
    await wait(alice, "window.messages.length === 1 && window.messages[0].data === 'back'")


async def test_broadcast_one_publisher_three_viewers(browser: Browser, server: RunningServer) -> None:
    publisher = await open_page(browser, f"{server.url}/broadcast?stream=show&role=publish")
    await wait(publisher, "document.getElementById('status').textContent === '0 viewers'")
    viewers = [await open_page(browser, f"{server.url}/broadcast?stream=show&role=play") for _ in range(3)]
    for viewer in viewers:
        await wait(viewer, f"({STREAM_FRAMES})('show').then((n) => n > 0)")
        await wait(viewer, "document.getElementById('video').videoWidth > 0")
    await wait(publisher, "document.getElementById('status').textContent === '3 viewers'")


PIXELS = """() => [...document.querySelectorAll('.tile video')].map((video) => {
  const canvas = document.createElement('canvas');
  canvas.width = 64;
  canvas.height = 48;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0, 64, 48);
  const data = context.getImageData(0, 0, 64, 48).data;
  const values = [];
  for (let i = 0; i < data.length; i += 4) values.push(data[i] + data[i + 1] + data[i + 2]);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, variance };
})"""


async def test_room_screenshot_shows_two_video_tiles(browser: Browser, server: RunningServer) -> None:
    alice = await open_room(browser, server, "shot", "Alice")
    bob = await open_room(browser, server, "shot", "Bob")
    await wait_mesh_media(alice, 1)
    await wait_mesh_media(bob, 1)
    await alice.set_viewport_size({"width": 1280, "height": 720})
    assert await alice.locator(".tile video").count() == 2
    assert await alice.locator("#lobby").is_hidden()
    assert await alice.locator(".tile video").first.is_visible()
    stats = await alice.evaluate(PIXELS)
    assert len(stats) == 2
    for tile in stats:
        # The fake camera draws a moving pattern: a blank or black tile has no variance.
        assert tile["mean"] > 20 and tile["variance"] > 100, stats
    ARTIFACTS.mkdir(exist_ok=True)
    shot = await alice.screenshot(path=str(ARTIFACTS / "room-two-peers.png"), full_page=True)
    assert len(shot) > 20_000  # a rendered page with two live videos, not an empty canvas


async def test_denied_camera_is_explained_and_the_call_still_works(
    browser: Browser, server: RunningServer
) -> None:
    context = await browser.new_context()
    await context.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('Permission denied', 'NotAllowedError'))"
    )
    denied = await context.new_page()
    await denied.goto(f"{server.url}/?room=nocam&name=Shy")
    await wait(denied, "document.getElementById('media-banner').textContent.includes('blocked')")
    assert await denied.is_disabled("#toggle-camera")
    # Without a camera it still joins and receives the other side's video.
    other = await open_room(browser, server, "nocam", "Cam")
    await wait_mesh_media(denied, 1)
    await wait(other, "document.querySelectorAll('.tile.remote').length === 1")
    assert await denied.is_visible("#media-banner")


async def test_unreachable_server_is_explained(browser: Browser, start_server: StartServer) -> None:
    doomed = await start_server()
    page = await open_room(browser, doomed, "gone", "Alone")
    await doomed.stop()  # the whole server goes away under the page
    await wait(page, "document.getElementById('banner').textContent.length > 0")
    text = await page.text_content("#banner")
    assert text is not None and ("reconnecting" in text or "Cannot reach" in text)
    await wait(page, "document.getElementById('banner').textContent.includes('Cannot reach')")
