"""Calls outlive the signaling server: two demo-room pages in real headless Chromium keep their
peer connections, their peer ids and their video while the `python app.py` under them is killed
(SIGKILL) or drained (SIGTERM) and started again on the same port with the same session key; the
server rebuilds their sessions from their claims ("restored"), and a message sent to a page that
has not resumed yet is held for it and delivered when it does.

Media is measured, not trusted: each page samples framesDecoded of its remote peer connection
every 150 ms from inside the page, and no stretch of over a second without a new decoded frame is
allowed from before the outage until after both pages have resumed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser_support import wait
from tests.call_support import check_video, events, now_ms, open_room, peer_id, record_call
from tests.helpers import free_port
from tests.hostile_support import wait_healthy

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.process

DRAIN_TIMEOUT = 5.0


class RestartableApp:
    """`python app.py` on one fixed loopback port, which can be killed or drained and started
    again there: each run a new process with the same settings (and so the same session key
    file). The runs' stderr go to one log, in order."""

    def __init__(self, directory: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / f"app-{self.port}.log"
        environment = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **env}
        environment.pop("SESSION_SECRET", None)  # the key comes from SESSION_KEY_FILE
        self.env = environment
        self.process: asyncio.subprocess.Process | None = None
        self.runs = 0

    async def start(self) -> None:
        assert self.process is None or self.process.returncode is not None, "already running"
        self.runs += 1
        with self.log_path.open("ab") as log:
            log.write(f"==== run {self.runs}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "app.py",
                cwd=ROOT,
                env=self.env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        await wait_healthy(self.url, self.process)

    async def kill(self) -> None:
        """SIGKILL: gone at once, nothing said to anyone, every in-memory session lost."""
        assert self.process is not None
        self.process.kill()
        await asyncio.wait_for(self.process.wait(), 10)

    async def drain(self) -> float:
        """SIGTERM, which must end it cleanly (exit status 0); the seconds it took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), DRAIN_TIMEOUT + 10)
        assert code == 0, self.log()[-10:]
        return time.monotonic() - started

    def session_key(self) -> str:
        return Path(self.env["SESSION_KEY_FILE"]).read_text()

    def log(self) -> list[str]:
        return self.log_path.read_text(errors="backslashreplace").splitlines()

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[RestartableApp]:
    server = RestartableApp(
        tmp_path,
        SESSION_KEY_FILE=str(tmp_path / "session-key"),
        DRAIN_TIMEOUT=str(DRAIN_TIMEOUT),
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def call_of_two(browser: Browser, app: RestartableApp, room: str) -> tuple[Page, Page, str, str]:
    alice = await open_room(browser, app.url, room, "Alice")
    bob = await open_room(browser, app.url, room, "Bob")
    await record_call(alice, bob)
    return alice, bob, await peer_id(alice), await peer_id(bob)


async def outage(app: RestartableApp, alice: Page, bob: Page, stop: str) -> dict[str, Any]:
    """Stops the server (`kill` or `drain`) and starts it again on its port; Bob resumes, sends
    Alice a peer-message while she is still away (her network is off), then Alice resumes.
    Returns the timings (page clock, ms)."""
    alice_id = await peer_id(alice)
    bob_id = await peer_id(bob)
    key = app.session_key()  # made by the first run
    timings: dict[str, Any] = {"start": await now_ms(alice)}
    stopped = time.monotonic()
    # A drain takes a moment (it tells every client to go): the pages see it meanwhile.
    drain = asyncio.ensure_future(app.drain()) if stop == "drain" else None
    if drain is None:
        await app.kill()
    for page in (alice, bob):
        await wait(page, "window.record.events.some((e) => e.name === 'disconnected')")
        await wait(page, "!window.demo.client.signalingLive")
        await wait(page, "!document.getElementById('signaling-notice').hidden")
    # Alice stays away until Bob has resumed and written to her. (Her peer connection is not
    # affected: offline emulation is for HTTP and WebSockets, and the media measurement says so.)
    await alice.context.set_offline(True)
    if drain is None:
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - stopped)))  # the deliberate outage
    else:
        timings["drain_s"] = await drain
    timings["down_s"] = time.monotonic() - stopped
    restarting = time.monotonic()
    await app.start()
    timings["startup_s"] = time.monotonic() - restarting
    assert app.session_key() == key  # read back, not made afresh

    await wait(bob, "window.record.events.some((e) => e.name === 'reconnected')")
    timings["bob_back_s"] = time.monotonic() - stopped
    assert await events(alice, "reconnected") == []
    sent = await bob.evaluate(
        "(target) => window.demo.client.socket.emitWithAck('peer-message',"
        " {target, data: {text: 'written while you were away'}})",
        alice_id,
    )
    assert sent.get("ok") is True, sent
    assert await events(alice, "peer-message") == []  # held by the server, not delivered yet
    timings["alice_online"] = await now_ms(alice)
    await alice.context.set_offline(False)
    await wait(alice, "window.record.events.some((e) => e.name === 'reconnected')")
    timings["alice_back_s"] = time.monotonic() - stopped
    await wait(alice, "window.record.events.some((e) => e.name === 'peer-message')")

    [message] = await events(alice, "peer-message")
    assert message["payload"]["from"] == bob_id
    assert message["payload"]["data"] == {"text": "written while you were away"}
    assert message["at"] >= timings["alice_online"]
    return timings


async def check_call_survived(
    alice: Page, bob: Page, alice_id: str, bob_id: str, timings: dict[str, Any]
) -> dict[str, Any]:
    """Same peer ids, nobody left, the notice came and went, and video never stalled over a
    second, on both pages, from before the outage until a second after both resumed."""
    back = []
    for page in (alice, bob):
        [reconnected] = await events(page, "reconnected")
        assert reconnected["payload"]["resumed"] == "restored", reconnected
        back.append(reconnected["at"])
        assert await events(page, "peer-left") == []
        assert await events(page, "peer-joined") == []  # the other was never new to it
        assert len(await events(page, "disconnected")) == 1
    end = max(back) + 1000
    measured: dict[str, Any] = {}
    for page, own, other, who in ((alice, alice_id, bob_id, "alice"), (bob, bob_id, alice_id, "bob")):
        assert await page.evaluate("window.demo.client.peerId") == own
        assert await page.evaluate("window.demo.client.signalingLive") is True
        assert await page.is_hidden("#signaling-notice")
        notice = await page.evaluate("window.record.notice")
        disconnected = (await events(page, "disconnected"))[0]["at"]
        shown = [at for at, hidden in notice if not hidden]
        hidden = [at for at, hidden in notice if hidden]
        assert shown and disconnected <= shown[0], notice
        assert hidden and hidden[-1] >= shown[0], notice
        measured[who] = await check_video(page, other, timings["start"], end, who)
    return measured


async def test_server_killed_and_restarted_calls_go_on(browser: Browser, app: RestartableApp) -> None:
    alice, bob, alice_id, bob_id = await call_of_two(browser, app, "killed")
    timings = await outage(app, alice, bob, "kill")
    measured = await check_call_survived(alice, bob, alice_id, bob_id, timings)
    print("SIGKILL", timings, measured)


async def test_server_drained_and_restarted_calls_go_on(browser: Browser, app: RestartableApp) -> None:
    alice, bob, alice_id, bob_id = await call_of_two(browser, app, "drained")
    timings = await outage(app, alice, bob, "drain")
    assert timings["drain_s"] < DRAIN_TIMEOUT
    reasons = [e["payload"]["reason"] for page in (alice, bob) for e in await events(page, "disconnected")]
    assert reasons == ["transport close", "transport close"]  # told to go, not timed out
    measured = await check_call_survived(alice, bob, alice_id, bob_id, timings)
    print("SIGTERM", timings, measured)
