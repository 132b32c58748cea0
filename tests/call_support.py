"""A demo-room call between pages in real Chromium, measured from inside the pages: what the
client reports, what the "Reconnecting" notice shows, and framesDecoded of every mesh connection
sampled every SAMPLE_MS (with which RTCPeerConnection object it came from), so that a test can
say how long remote video went without a new decoded frame."""

from __future__ import annotations

import itertools
from typing import Any

from playwright.async_api import Browser, Page

from tests.browser_support import open_page, wait, wait_mesh_media

# The longest a page's remote video may go without a newly decoded frame.
MAX_STALL_MS = 1000
SAMPLE_MS = 150

# Installed in a page once its call is up.
RECORD = """() => {
  const client = window.demo.client;
  const record = (window.record = { events: [], notice: [], samples: [] });
  for (const name of ["disconnected", "reconnected", "peer-left", "peer-joined", "peer-message"]) {
    client.on(name, (payload) => record.events.push({ name, at: Date.now(), payload: payload ?? null }));
  }
  const notice = document.getElementById("signaling-notice");
  new MutationObserver(() => record.notice.push([Date.now(), notice.hidden])).observe(notice, {
    attributes: true,
    attributeFilter: ["hidden"],
  });
  const ids = new WeakMap();
  let next = 0;
  let busy = false;
  setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const at = Date.now();
      const pcs = [];
      let frames = 0;
      for (const [key, link] of client.links) {
        if (!key.startsWith("peer:")) continue;
        if (!ids.has(link.pc)) ids.set(link.pc, next++);
        pcs.push(ids.get(link.pc));
        (await link.pc.getStats()).forEach((r) => {
          if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded || 0;
        });
      }
      record.samples.push([at, frames, pcs.join(",")]);
    } finally {
      busy = false;
    }
  }, SAMPLE_MS);
}""".replace("SAMPLE_MS", str(SAMPLE_MS))


async def open_room(browser: Browser, url: str, room: str, name: str) -> Page:
    """The demo room page of `url`, once it has joined `room`."""
    page = await open_page(browser, f"{url}/?room={room}&name={name}")
    await wait(page, "window.demo && window.demo.client.peerId && window.demo.client.rooms.size === 1")
    return page


async def record_call(*pages: Page) -> None:
    """Once every page decodes its one remote video: the recorder goes in, and is seen sampling
    frames that go up before anything happens."""
    for page in pages:
        await wait_mesh_media(page, 1)
        await page.evaluate(RECORD)
    for page in pages:
        await wait(page, "new Set(window.record.samples.map(([, frames]) => frames)).size > 2")


async def peer_id(page: Page) -> str:
    return str(await page.evaluate("window.demo.client.peerId"))


async def now_ms(page: Page) -> int:
    return int(await page.evaluate("Date.now()"))


async def events(page: Page, name: str) -> list[dict[str, Any]]:
    return list(await page.evaluate("(name) => window.record.events.filter((e) => e.name === name)", name))


def longest_stall(samples: list[list[Any]], start: int, end: int) -> tuple[int, list[int]]:
    """The longest time without a new decoded frame over [start, end] (ms), and the times at
    which frames went up there. Frames must go up at or before `start` and at or after `end`."""
    progress = [now[0] for before, now in itertools.pairwise(samples) if now[1] > before[1]]
    before = [t for t in progress if t <= start]
    after = [t for t in progress if t >= end]
    assert before, f"no decoded frame before {start}: {samples[:5]}"
    assert after, f"no decoded frame after {end}: {samples[-5:]}"
    inside = [before[-1], *[t for t in progress if start < t < end], after[0]]
    return max(b - a for a, b in itertools.pairwise(inside)), inside


async def check_video(page: Page, other: str, start: int, end: int, who: str) -> dict[str, Any]:
    """The other's tile is the one it had, still showing video, on the same peer connection,
    which never went over MAX_STALL_MS without a new decoded frame from `start` to `end` (page
    clock, ms; waits for `end` to pass). Returns what was measured."""
    await wait(page, "(id) => document.querySelector(`.tile[data-peer='${id}'] video`).videoWidth > 0", other)
    await wait(page, "(end) => window.record.samples.some((s) => s[0] >= end)", end)
    samples = await page.evaluate("window.record.samples")
    assert {pcs for _, _, pcs in samples} == {"0"}, f"{who}: the peer connection was replaced"
    stall, progress = longest_stall(samples, start, end)
    assert stall <= MAX_STALL_MS, (who, stall, samples)
    return {"longest_stall_ms": stall, "frame_steps": len(progress)}
