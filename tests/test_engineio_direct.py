"""engine.io sessions written directly (signaling.transports.engine, signaling.transports.frames): the upgrade
from long-polling, ping timeouts, server-side closes, cut-offs and frames of every length class."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web

from signaling.client import SignalingClient
from signaling.transports import frames
from signaling.transports.engine import DirectSocket, WebSocketLink
from signaling.transports.frames import FrameWriter
from tests.conftest import RunningServer, StartServer
from tests.helpers import SDP_OFFER, ConnectPeer
from tests.test_robustness import BIG_SDP, flood_until_dropped, wait_for


def server_socket(server: RunningServer, sid: str) -> DirectSocket:
    socket = server.sio.eio.sockets[server.sio.manager.eio_sid_from_sid(sid, "/")]
    assert isinstance(socket, DirectSocket)
    return socket


async def test_frames_of_every_length_class_arrive_intact() -> None:
    # 7-bit, 16-bit and 64-bit payload lengths (RFC 6455 5.2), at and around each boundary.
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 200_000]
    sent = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        response = web.WebSocketResponse()
        await response.prepare(request)
        writer = FrameWriter(response, request.transport, 1 << 30, "test")
        for size in sizes:
            assert writer.write("é" * (size // 2) + "x" * (size % 2))
        assert writer.write(b"\x00\xff" * 3, binary=True)
        sent.set()
        await response.receive()
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{port}/") as ws:
            for size in sizes:
                message = await ws.receive(timeout=5)
                assert message.type is WSMsgType.TEXT
                assert message.data == "é" * (size // 2) + "x" * (size % 2)
            binary = await ws.receive(timeout=5)
            assert binary.type is WSMsgType.BINARY and binary.data == b"\x00\xff" * 3
            await sent.wait()
    finally:
        await runner.cleanup()


async def test_long_polling_clients_upgrade_to_direct_websocket(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    # The socket.io clients' default: long-polling first, then the upgrade probe.
    running = await start_server()
    alice = await connect(running.url, transports=["polling", "websocket"])
    await alice.join("upgrade")
    bob = await connect(running.url, transports=["polling", "websocket"])
    await bob.join("upgrade")
    await alice.next("peer-joined")
    assert alice.sio.transport() == "websocket" and bob.sio.transport() == "websocket"
    await wait_for(lambda: server_socket(running, alice.sio.get_sid()).upgraded, "alice's upgrade")
    assert bob.peer_id
    await alice.offer(bob.peer_id, SDP_OFFER)
    assert (await bob.next("offer"))["sdp"] == SDP_OFFER


async def test_client_that_stops_answering_pings_is_closed_and_leaves(start_server: StartServer) -> None:
    # Without sessions (grace 0), the peer leaves as soon as the server gives up on it.
    running = await start_server(ping_interval=0.2, ping_timeout=0.3, session_grace=0)
    url = running.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, autoping=True) as ws:
        assert (await ws.receive(timeout=5)).data.startswith("0{")
        await ws.send_str("40")
        assert (await ws.receive(timeout=5)).data.startswith("40")
        assert (await ws.receive(timeout=5)).data.startswith('42["session"')
        await ws.send_str('420["join",{"room":"silent"}]')
        assert '"ok":true' in (await ws.receive(timeout=5)).data
        assert running.store._peer_rooms
        # Never answers engine.io's PING ("2"): the server must close, not wait forever.
        while (message := await ws.receive(timeout=10)).type is WSMsgType.TEXT:
            assert message.data in ("2", "1"), message.data
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    await wait_for(lambda: not running.store._peer_rooms, "the silent client to leave its room")


async def test_idle_websocket_sessions_hold_no_queue_and_no_ping_task_yet_get_their_pings(
    start_server: StartServer,
) -> None:
    # What an idle connection costs: engine.io's packet queue and aiohttp's request handling are
    # gone once the WebSocket is up, the environ kept is slim, and pings come from the server's one
    # Pinger, at the interval, as engine.io's own task sent them.
    running = await start_server(ping_interval=0.2, ping_timeout=0.3)
    url = running.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await ws.receive(timeout=5)).data.startswith("0{")
        await ws.send_str("40")
        assert (await ws.receive(timeout=5)).data.startswith("40")
        assert (await ws.receive(timeout=5)).data.startswith('42["session"')
        (session,) = running.sio.eio.sockets.values()
        assert isinstance(session, DirectSocket) and session.queue is None
        # socket.io's copy of the environ: only the address, not every header.
        assert running.sio.environ[session.sid] == {"REMOTE_ADDR": "127.0.0.1"}
        loop = asyncio.get_running_loop()
        started, pings = loop.time(), list[float]()
        while len(pings) < 3:
            message = await ws.receive(timeout=2)
            assert message.data == "2", message.data
            pings.append(loop.time() - started)
            await ws.send_str("3")
            started = loop.time()
        # Each ping an interval after the pong before it (plus at most a tick, and the loop's slack).
        assert all(0.19 <= gap < 0.3 for gap in pings), pings
        # The connection has left aiohttp: no request handling, no task while it is idle.
        link = session._link
        assert isinstance(link, WebSocketLink) and len(running.sio.links) == 1
        await wait_for(lambda: link._task is None, "the link's task to end once its messages are handled")
        assert running.runner.server is not None and running.runner.server.connections == []
        assert not [
            task
            for task in asyncio.all_tasks()
            if any(name in repr(task.get_coro()) for name in ("_send_ping", "RequestHandler", "_handle"))
        ]
        assert not session.closed


async def test_server_side_close_closes_the_websocket(start_server: StartServer) -> None:
    server = await start_server(session_grace=0)  # the peer leaves as soon as its connection goes
    alice = SignalingClient()
    await alice.connect(server.url)
    await alice.join("bye")
    # engine.io's own close (what ping timeouts and shutdown use), not a socket.io DISCONNECT.
    await server.sio.eio.disconnect(server.sio.manager.eio_sid_from_sid(alice.sio.get_sid(), "/"))
    await wait_for(lambda: not alice.sio.connected, "the client to see its connection closed")
    await wait_for(lambda: not server.store._peer_rooms, "the room to empty")


async def test_server_side_close_does_not_wait_on_a_client_that_does_not_read(
    server: RunningServer, connect: ConnectPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frames, "CLOSE_TIMEOUT", 0.5)
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await ws.receive(timeout=5)).data.startswith("0{")
        await ws.send_str("40")
        assert (await ws.receive(timeout=5)).data.startswith("40")
        assert (await ws.receive(timeout=5)).data.startswith('42["session"')
        await ws.send_str('420["join",{"room":"stuck"}]')
        assert '"ok":true' in (await ws.receive(timeout=5)).data
        sender = await connect()
        target = (await sender.join("stuck"))["peers"][0]["peerId"]
        # Fill the silent client's buffers past the transport's high-water mark (where a draining
        # close would wait forever), though not past the cut-off; then close it server-side.
        for _ in range(10_000):
            if stalled := _stalled(server, more_than=256 * 1024):
                break
            await sender.offer(target, BIG_SDP)
        eio_sid, transport = stalled[0]
        await server.sio.eio.disconnect(eio_sid)
        # The close gives up on the closing handshake after CLOSE_TIMEOUT and cuts the connection.
        await wait_for(transport.is_closing, "the silent client's connection to be cut", seconds=5)


def _stalled(server: RunningServer, more_than: int) -> list[tuple[str, asyncio.Transport]]:
    """(eio_sid, transport) of each session with that many bytes in the server's send buffer."""
    stalled = []
    for sid, socket in server.sio.eio.sockets.items():
        transport = socket._writer.transport if isinstance(socket, DirectSocket) and socket._writer else None
        if transport is not None and transport.get_write_buffer_size() > more_than:
            stalled.append((sid, transport))
    return stalled


async def test_a_stalled_upgrade_times_out(start_server: StartServer) -> None:
    running = await start_server(ping_interval=0.3, ping_timeout=0.5)
    base = f"{running.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            eio_sid = (await response.text()).split('"sid":"')[1].split('"')[0]
        url = running.url.replace("http", "ws") + f"/socket.io/?EIO=4&transport=websocket&sid={eio_sid}"
        async with http.ws_connect(url) as ws:
            # Never sends the "2probe": the server gives up instead of holding the session open.
            message = await ws.receive(timeout=10)
            assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), message
        await wait_for(lambda: eio_sid not in running.sio.eio.sockets, "the session to end")


@pytest.mark.parametrize("packet", ["6", "9", "2", "3" + "[" * 5000, "b"])
async def test_odd_engineio_packets_neither_crash_nor_flood_the_log(
    server: RunningServer, connect: ConnectPeer, packet: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await ws.receive(timeout=5)).data.startswith("0{")
        with caplog.at_level(logging.WARNING):
            await ws.send_str(packet)
            await ws.send_str("40")
            while True:  # connected afterwards, or closed for a malformed packet; never a crash
                message = await ws.receive(timeout=5)
                if message.type is not WSMsgType.TEXT or message.data.startswith("40"):
                    break
    assert all(r.exc_info is None for r in caplog.records)
    alice = await connect()
    await alice.join("still-fine")


async def test_long_polling_peer_that_stops_polling_is_dropped(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    # Without sessions (grace 0): a dropped peer is unknown at once, not held.
    small = await start_server(max_unread_bytes=65536, session_grace=0)
    base = f"{small.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            eio_sid = (await response.text()).split('"sid":"')[1].split('"')[0]
        session = f"{base}&sid={eio_sid}"
        async with http.post(session, data="40") as response:
            assert response.status == 200
        async with http.get(session) as response:
            assert (await response.text()).startswith("40")
        async with http.post(session, data='42["join",{"room":"unpolled"}]') as response:
            assert response.status == 200
        # Never polls again, so what is sent to it piles up in its engine.io queue.
        sender = await connect(small.url)
        joined = await sender.join("unpolled")
        target = joined["peers"][0]["peerId"]
        assert len(BIG_SDP) < 65536 < 2 * len(BIG_SDP)
        await flood_until_dropped(sender, target)
        assert sender.sio.connected


async def test_a_long_polling_post_that_arrives_in_pieces_is_read_whole(
    server: RunningServer, connect: ConnectPeer
) -> None:
    bob = await connect()
    await bob.join("pieces")
    base = f"{server.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            sid = orjson.loads((await response.read())[1:])["sid"]
        url = f"{base}&sid={sid}"
        for body in (b"40", b'42["join",{"room":"pieces"}]'):
            async with http.post(url, data=body) as response:
                assert response.status == 200
        sdp = "v=0\r\n" + "a=x:" + "x" * 30000 + "\u00e9t\u00e9\r\n"  # a split may fall inside "é"
        body = ("42" + orjson.dumps(["offer", {"target": bob.peer_id, "sdp": sdp}]).decode()).encode()
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        middle = body.index("\u00e9".encode()) + 1
        for piece in (body[:middle], body[middle:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)  # so that the server reads the first piece on its own
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200 ")
        writer.close()
        assert (await bob.next("offer"))["sdp"] == sdp
