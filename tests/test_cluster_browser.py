"""A call outlives the node one of its pages was connected to (issue 13, item 8c): two demo-room
pages in real headless Chromium, in one room, each connected to a different node of a cluster
(two real node processes, one real redis-server), with a load balancer in front as in production;
the node of page B is killed with kill -9, and page B resumes its session on the other node,
which its page reaches through the same balancer. Nobody sees anybody leave, the peer ids stay,
the video never stops, and a message page A sent B while B was away reaches B when it is back.

The pages load from and connect to `location.origin`, the balancer: a TCP proxy on a loopback
port that forwards each new connection to the node the test routes it to, as a balancer that has
its own idea of which backends are healthy. The browser library uses the WebSocket transport
only, so a page's signaling session is one TCP connection, which stays on one node for its life.

The release moment is chosen, not raced: page B's reconnection is held at the balancer (as a
balancer queues connections while it knows no healthy backend) until either
- right away ("before the reaper"): the cluster still takes the dead node for alive (its lease
  has not lapsed), so the resume takes the session over from it, and the reaper, when it comes,
  must leave the session alone; or
- the reaper has been through ("after the reaper"): the dead node's lease lapsed and the other
  node put its sessions on hold in Redis, where the resume finds Bob's.
Media is measured as in test_resume_browser (framesDecoded sampled in the pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as redis
from playwright.async_api import Browser, Page

from signaling.cluster.redis_store import as_text
from tests.browser_support import wait
from tests.call_support import check_video, events, now_ms, open_room, peer_id, record_call
from tests.cluster_support import LEASE_SECONDS, NodeProcess, StartNodes, wait_until
from tests.redis_support import RedisServer

# How long the balancer holds a new connection while told to (then it drops it), how long it
# tries to reach a backend, and how many connections it serves at once (beyond: dropped).
HOLD_SECONDS = 10.0
CONNECT_SECONDS = 5.0
MAX_CONNECTIONS = 32
# "before the reaper": a lease long enough that nobody takes the killed node for dead before page B
# has resumed (its first reconnect comes within 1.5 s of the drop: socket.io's backoff).
LONG_LEASE_SECONDS = 6.0


REQUEST_LINE = re.compile(rb"([A-Z]+ /\S* HTTP/1\.1)\r\n")


@dataclass
class Forwarded:
    """One connection the balancer forwarded: where to, and the HTTP requests the browser made
    on it (their first lines), up to a WebSocket upgrade (after which it carries frames)."""

    backend: str
    requests: list[str] = field(default_factory=list)
    upgraded: bool = False
    refused: bool = False


class Balancer:
    """A TCP load balancer on a loopback port. Each new connection is forwarded, for its whole
    life, to the backend that `route` names when it is forwarded; when either side closes, so does
    the other, so the clients of a killed backend see their connections close at once. While
    held (`hold()` until `release()`) new connections wait, unforwarded, for at most HOLD_SECONDS."""

    def __init__(self, backends: dict[str, str]) -> None:
        self.backends = {
            name: (urlsplit(url).hostname or "", urlsplit(url).port or 0) for name, url in backends.items()
        }
        assert all(host == "127.0.0.1" for host, _ in self.backends.values()), "loopback only"
        self.route = next(iter(backends))
        self.forwarded: list[Forwarded] = []
        self.waiting = 0  # connections being held right now
        self.url = ""
        self._open = asyncio.Event()
        self._open.set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Balancer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stops listening and closes every connection it forwards or holds."""
        assert self._server is not None
        self._server.close()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.wait_for(asyncio.gather(*self._handlers, return_exceptions=True), 5)
        await asyncio.wait_for(self._server.wait_closed(), 5)

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def holding(self) -> bool:
        """Some connection is being held."""
        return self.waiting > 0

    def websockets(self) -> list[str]:
        """The backends that the socket.io WebSocket connections went to, in order."""
        return [
            f.backend for f in self.forwarded if f.upgraded and f.requests[-1].startswith("GET /socket.io/")
        ]

    def requests(self) -> list[str]:
        return [request for f in self.forwarded for request in f.requests]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        upstream: asyncio.StreamWriter | None = None
        try:
            if len(self._handlers) > MAX_CONNECTIONS:
                return
            self.waiting += 1
            try:
                await asyncio.wait_for(self._open.wait(), HOLD_SECONDS)
            finally:
                self.waiting -= 1
            forwarded = Forwarded(self.route)
            self.forwarded.append(forwarded)
            try:
                from_backend, to_backend = await asyncio.wait_for(
                    asyncio.open_connection(*self.backends[forwarded.backend]), CONNECT_SECONDS
                )
            except (OSError, TimeoutError):
                forwarded.refused = True  # a dead backend: the client sees its connection close
                return
            upstream = to_backend
            pipes = [
                asyncio.create_task(self._pipe(reader, to_backend, forwarded)),
                asyncio.create_task(self._pipe(from_backend, writer, None)),
            ]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        except TimeoutError:
            pass  # held too long: dropped
        finally:
            for side in (writer, upstream):
                if side is not None:
                    side.close()
                    with contextlib.suppress(OSError, TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(side.wait_closed(), 1)
                    side.transport.abort()  # a no-op when closed; never left half-open
            self._handlers.discard(handler)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, seen: Forwarded | None) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(1 << 16):
                # The browser writes each request's head at once, and never pipelines.
                if seen is not None and not seen.upgraded and (found := REQUEST_LINE.match(data)):
                    seen.requests.append(found.group(1).decode("latin-1"))
                    seen.upgraded = b"\r\nupgrade: websocket\r\n" in data.lower()
                sink.write(data)
                await sink.drain()


async def send_peer_message(page: Page, target: str, text: str) -> dict[str, Any]:
    """A peer-message through the server (not the data channel), with the server's ack."""
    return dict(
        await page.evaluate(
            "([target, text]) =>"
            " window.demo.client.socket.emitWithAck('peer-message', {target, data: {text}})",
            [target, text],
        )
    )


@pytest.mark.parametrize("release", ["before the reaper", "after the reaper"])
async def test_a_call_outlives_a_node_killed_with_kill_9_behind_a_balancer(
    browser: Browser, start_nodes: StartNodes, redis_server: RedisServer, tmp_path: Path, release: str
) -> None:
    lease = LONG_LEASE_SECONDS if release == "before the reaper" else LEASE_SECONDS
    # Each node with a key file of its own: they agree on one key through Redis.
    (one,) = await start_nodes(1, SESSION_KEY_FILE=str(tmp_path / "one.key"), NODE_LEASE_SECONDS=str(lease))
    (two,) = await start_nodes(1, SESSION_KEY_FILE=str(tmp_path / "two.key"), NODE_LEASE_SECONDS=str(lease))
    shared = redis.Redis.from_url(redis_server.url)

    async def home(peer: str) -> str:
        """The node that holds the session, by Redis's account ("" while held by nobody)."""
        return as_text(await shared.hget(f"sig:session:{peer}", "node") or b"")

    async def alive(node: NodeProcess) -> bool:
        """Its lease has not lapsed: the cluster takes it for alive."""
        return bool(await shared.exists(f"sig:node:{node.node_id}:alive"))

    async def reaped(node: NodeProcess) -> bool:
        """Another node's reaper has been through its peers, and took it off the list."""
        return not await shared.sismember("sig:nodes", node.node_id)

    try:
        async with Balancer({"one": one.url, "two": two.url}) as balancer:
            balancer.route = "one"
            alice = await open_room(browser, balancer.url, "balanced", "Alice")
            balancer.route = "two"
            bob = await open_room(browser, balancer.url, "balanced", "Bob")
            await record_call(alice, bob)
            alice_id, bob_id = await peer_id(alice), await peer_id(bob)
            assert (await home(alice_id), await home(bob_id)) == (one.node_id, two.node_id)
            assert balancer.websockets() == ["one", "two"]
            # WebSocket only: a page's session is one connection, on one node.
            assert not [
                r for r in balancer.requests() if "/socket.io/" in r and "transport=websocket" not in r
            ]

            # The balancer holds new connections until it has found which node is healthy.
            timings: dict[str, Any] = {"start": await now_ms(alice)}
            killed = time.monotonic()
            balancer.hold()
            two.kill()
            await asyncio.wait_for(two.process.wait(), 10)
            await wait(bob, "window.record.events.some((e) => e.name === 'disconnected')")
            await wait(bob, "!window.demo.client.signalingLive")
            await wait(bob, "!document.getElementById('signaling-notice').hidden")
            timings["bob_down_s"] = time.monotonic() - killed

            # Alice writes to Bob while he is away, through her node (which does not know yet).
            sent = await send_peer_message(alice, bob_id, "written while you were away")
            assert sent.get("ok") is True, sent
            timings["sent_s"] = time.monotonic() - killed
            await wait_until(balancer.holding, "bob's reconnection to wait at the balancer")
            timings["bob_waiting_s"] = time.monotonic() - killed
            if release == "after the reaper":
                await wait_until(lambda: reaped(two), "node one's reaper to take over node two")
                timings["reaped_s"] = time.monotonic() - killed
                assert await home(bob_id) == ""  # held by nobody, in Redis
            else:
                assert await alive(two), "node two's lease lapsed before bob could resume"
            assert await events(bob, "peer-message") == []
            assert await events(bob, "reconnected") == []

            balancer.route = "one"  # the only healthy node
            timings["released"] = await now_ms(bob)
            released = time.monotonic()
            balancer.release()
            await wait(bob, "window.record.events.some((e) => e.name === 'reconnected')")
            timings["bob_back_s"] = time.monotonic() - killed
            timings["resume_s"] = time.monotonic() - released
            [reconnected] = await events(bob, "reconnected")
            assert reconnected["payload"] == {"peerId": bob_id, "resumed": "kept"}, reconnected
            if release == "before the reaper":
                assert await alive(two), "node two's lease lapsed before bob had resumed"
            await wait(bob, "window.record.events.some((e) => e.name === 'peer-message')")
            [message] = await events(bob, "peer-message")
            assert message["payload"]["from"] == alice_id
            assert message["payload"]["data"] == {"text": "written while you were away"}
            assert message["at"] >= timings["released"]
            assert await home(bob_id) == one.node_id
            assert balancer.websockets() == ["one", "two", "one"]

            # The reaper's round over the dead node leaves Bob's session be.
            if release == "before the reaper":
                await wait_until(lambda: reaped(two), "node one's reaper to take over node two")
                timings["reaped_s"] = time.monotonic() - killed
            assert await home(bob_id) == one.node_id

            # Signaling goes on both ways, now through node one for both.
            back = await send_peer_message(bob, alice_id, "back")
            assert back.get("ok") is True, back
            await wait(alice, "window.record.events.some((e) => e.name === 'peer-message')")
            [answer] = await events(alice, "peer-message")
            assert answer["payload"]["from"] == bob_id and answer["payload"]["data"] == {"text": "back"}

            assert len(await events(bob, "reconnected")) == 1
            assert len(await events(bob, "disconnected")) == 1
            assert await bob.is_hidden("#signaling-notice")
            # Alice's own connection was never touched, and she never noticed anything.
            assert await events(alice, "disconnected") == [] and await events(alice, "reconnected") == []
            assert await alice.evaluate("window.record.notice") == []

            end = max(reconnected["at"], await now_ms(bob)) + 1000
            measured = {}
            for page, own, other, who in ((alice, alice_id, bob_id, "alice"), (bob, bob_id, alice_id, "bob")):
                assert await peer_id(page) == own
                assert await page.evaluate("window.demo.client.signalingLive") is True
                assert await events(page, "peer-left") == []
                assert await events(page, "peer-joined") == []
                measured[who] = await check_video(page, other, timings["start"], end, who)
            assert [f for f in balancer.forwarded if f.refused] == []
            timings["total_s"] = time.monotonic() - killed
            print(
                release, {k: round(v, 3) if isinstance(v, float) else v for k, v in timings.items()}, measured
            )
            print("balancer:", len(balancer.forwarded), "connections, WebSockets to", balancer.websockets())
    finally:
        await shared.aclose()
