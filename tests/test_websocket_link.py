"""WebSockets once they have left aiohttp (signaling.transports.engine.WebSocketLink), socket.io's
and Ant Media's: the frames a client may send (RFC 6455), in any pieces, and the closes it gets
for those it may not, written as bytes by a raw client; and how a shutdown cuts them off."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import struct
from typing import Any

import aiohttp
import orjson
import pytest

from signaling.transports import frames
from signaling.transports.engine import INBOX_LIMIT, MESSAGE_OVERHEAD, Links, WebSocketLink
from tests.conftest import RunningServer, StartServer
from tests.helpers import ConnectPeer
from tests.test_robustness import wait_for

PATH = "/socket.io/?EIO=4&transport=websocket"


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True, rsv: int = 0) -> bytes:
    """A client's frame, masked with a random key."""
    mask = os.urandom(4)
    size = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    if size < 126:
        head = struct.pack("!BB", first, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, size)
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: RunningServer, first: bytes = b"", path: str = PATH) -> Raw:
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            + first  # in the same write as the request head
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer)

    async def next(self) -> tuple[int, bytes]:
        """The server's next frame: (opcode, payload)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), 5)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(size)

    async def text(self) -> str:
        while True:
            opcode, payload = await self.next()
            if opcode == 0x1 and payload != b"2":  # engine.io pings are not what the tests await
                return payload.decode()

    async def joined(self) -> None:
        assert (await self.text()).startswith("0{")
        self.writer.write(frame(b"40"))
        assert (await self.text()).startswith("40")
        assert (await self.text()).startswith('42["session"')

    async def closed_with(self, answer: bool = False) -> int:
        """The code of the server's close frame (answered with the client's if `answer`); the
        server then closes the connection."""
        while True:
            opcode, payload = await self.next()
            if opcode == 0x8:
                (code,) = struct.unpack("!H", payload[:2])
                if answer:
                    self.writer.write(frame(payload[:2], opcode=0x8))
                assert await asyncio.wait_for(self.reader.read(), 5) == b""
                self.writer.close()
                return int(code)


async def test_what_a_client_sends_with_its_handshake_is_read(server: RunningServer) -> None:
    raw = await Raw.open(server, first=frame(b"40"))
    assert (await raw.text()).startswith("0{")
    assert (await raw.text()).startswith("40")
    raw.writer.close()


async def test_fragments_pings_and_pieces_make_whole_messages(server: RunningServer) -> None:
    raw = await Raw.open(server)
    await raw.joined()
    event = b'420["join",{"room":"fragments"}]'
    raw.writer.write(
        frame(event[:5], fin=False)
        + frame(b"are you there", opcode=0x9)  # a ping between fragments
        + frame(event[5:12], opcode=0x0, fin=False)
        + frame(event[12:], opcode=0x0)
    )
    assert await raw.next() == (0xA, b"are you there")
    assert (await raw.text()).startswith('430[{"ok":true')
    # A message written a byte at a time, a large one in two halves.
    for byte in frame(b'421["leave",{"room":"fragments"}]'):
        raw.writer.write(bytes([byte]))
        await raw.writer.drain()
    assert (await raw.text()).startswith('431[{"ok":true')
    large = frame(b'422["join",{"room":"' + b"x" * 60 + b'","junk":"' + b"y" * 70_000 + b'"}]')
    raw.writer.write(large[:40_000])
    await raw.writer.drain()
    await asyncio.sleep(0.05)
    raw.writer.write(large[40_000:])
    assert (await raw.text()).startswith("432[")
    raw.writer.close()


async def test_a_client_close_is_answered_and_its_session_ends(server: RunningServer) -> None:
    raw = await Raw.open(server)
    await raw.joined()
    assert len(server.sio.links) == 1 and server.sio.eio.sockets
    raw.writer.write(frame(struct.pack("!H", 1000), opcode=0x8))
    assert await raw.closed_with() == 1000
    await wait_for(lambda: not server.sio.eio.sockets and not len(server.sio.links), "the session to end")


CASES = {
    "more than MAX_MESSAGE_BYTES": (frame(b"4" + b"x" * 200_000), 1009),
    "more than that in fragments": (
        frame(b"4" + b"x" * 60_000, fin=False) + frame(b"x" * 60_000, opcode=0x0),
        1009,
    ),
    "text that is not UTF-8": (frame(b"4\xff\xfe"), 1007),
    "reserved bits, and no extension negotiated": (frame(b"40", rsv=0x40), 1002),
    "a continuation of nothing": (frame(b"x", opcode=0x0), 1002),
    "a new message inside a fragmented one": (frame(b"4", fin=False) + frame(b"4"), 1002),
    "an opcode RFC 6455 reserves": (frame(b"x", opcode=0x3), 1002),
    "a control frame over 125 bytes": (frame(b"x" * 126, opcode=0x9), 1002),
    "a fragmented control frame": (frame(b"x", opcode=0x9, fin=False), 1002),
}


@pytest.mark.parametrize(("frames", "code"), CASES.values(), ids=CASES.keys())
async def test_frames_a_client_may_not_send_close_the_connection_with_the_reason(
    start_server: StartServer, frames: bytes, code: int
) -> None:
    server = await start_server(max_message_bytes=100_000)
    raw = await Raw.open(server)
    await raw.joined()
    raw.writer.write(frames)
    assert await raw.closed_with(answer=code != 1002) == code
    await wait_for(lambda: not server.sio.eio.sockets and not len(server.sio.links), "the session to end")


async def test_a_server_that_stops_cuts_off_websockets_that_never_joined(
    start_server: StartServer,
) -> None:
    server = await start_server()
    raw = await Raw.open(server)  # no socket.io namespace: not one of the hub's peers
    assert (await raw.text()).startswith("0{")
    await server.runner.cleanup()
    assert await asyncio.wait_for(raw.reader.read(), 5) == b""
    raw.writer.close()
    assert not len(server.sio.links)


async def test_a_link_closed_during_its_upgrade_is_still_cut_off(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upgrade's own timers must not cancel the one that cuts off a link whose closing
    handshake the client never finishes (here: closed for a frame that is not UTF-8, in the same
    write as the probe and the upgrade)."""
    monkeypatch.setattr(frames, "CLOSE_TIMEOUT", 0.2)
    server = await start_server()
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as response,
    ):
        eio_sid = orjson.loads((await response.read())[1:])["sid"]
    raw = await Raw.open(server, path=f"{PATH}&sid={eio_sid}")
    raw.writer.write(frame(b"2probe") + frame(b"5") + frame(b"\xff\xfe"))
    await wait_for(lambda: len(server.sio.links) == 0, "the closed link to be cut off", seconds=5)
    raw.writer.close()


async def test_what_arrives_with_the_clients_close_is_handled_first(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    server = await start_server(session_grace=0)
    bob = await connect(server.url)
    await bob.join("last-words")
    raw = await Raw.open(server)
    await raw.joined()
    # A join and the close in one write: the join is handled, then the close.
    raw.writer.write(frame(b'420["join",{"room":"last-words"}]') + frame(struct.pack("!H", 1000), opcode=0x8))
    joined = await bob.next("peer-joined")
    assert await bob.next("peer-left") == {
        "room": "last-words",
        "peerId": joined["peerId"],
        "reason": "disconnected",
    }
    raw.writer.close()


async def test_what_an_ant_media_client_sends_with_its_close_is_handled_first(
    server: RunningServer, connect: ConnectPeer, caplog: pytest.LogCaptureFixture
) -> None:
    bob = await connect(server.url)
    await bob.join("last-words")
    raw = await Raw.open(server, path="/WebRTCAppEE/websocket")
    raw.writer.write(frame(b'{"command": "join", "streamId": "last-words"}'))
    assert '"joined"' in await raw.text()
    joined = await bob.next("peer-joined")
    # A leave and the close in one write: the leave is handled (bob hears "left", not
    # "disconnected"), then the close, whose code the log line names.
    with caplog.at_level(logging.INFO, logger="signaling"):
        raw.writer.write(
            frame(b'{"command": "leave", "streamId": "last-words"}')
            + frame(struct.pack("!H", 1001), opcode=0x8)
        )
        assert await bob.next("peer-left") == {
            "room": "last-words",
            "peerId": joined["peerId"],
            "reason": "left",
        }
        await wait_for(lambda: "disconnected (close code 1001)" in caplog.text, "the disconnect's log line")
    raw.writer.close()


class _Transport:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        pass


class _SlowSession:
    """Handles a message only when let go, like a handler waiting on Redis."""

    label = "slow"

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.handled: list[str | bytes] = []

    async def link_message(self, link: Any, data: str | bytes) -> None:
        await self.go.wait()
        self.handled.append(data)

    async def link_ended(self, link: Any) -> None:
        pass


async def test_a_link_stops_reading_while_too_much_waits_to_be_handled() -> None:
    transport, session = _Transport(), _SlowSession()
    link = WebSocketLink(session, transport, Links(), 1 << 20)  # type: ignore[arg-type]
    # Empty messages count too: a flood of them cannot pile up unread either.
    for _ in range(INBOX_LIMIT // MESSAGE_OVERHEAD + 1):
        link.data_received(frame(b""))
    assert transport.paused and transport.pauses == 1
    session.go.set()
    await wait_for(lambda: not transport.paused, "reading to resume once half of it is handled")
    await wait_for(
        lambda: len(session.handled) == INBOX_LIMIT // MESSAGE_OVERHEAD + 1, "every message handled"
    )
    assert session.handled[0] == ""


async def test_a_shutdown_cuts_off_only_the_links_nobody_told_to_go() -> None:
    """Those whose closing handshake is under way end by themselves within CLOSE_TIMEOUT: cut
    off at once, they would lose the goodbye still in their send buffers."""

    class Link:
        def __init__(self, closed: bool) -> None:
            self.closed, self.aborted = closed, False

        def abort(self) -> None:
            self.aborted = True
            links.discard(self)  # type: ignore[arg-type]

    links = Links()
    told, untold = Link(closed=True), Link(closed=False)
    for link in (told, untold):
        links.add(link)  # type: ignore[arg-type]
    cutting = asyncio.create_task(links.cut_off(5))
    await wait_for(lambda: untold.aborted, "the untold link to be cut off")
    assert not told.aborted and not cutting.done()
    links.discard(told)  # type: ignore[arg-type]  # its closing handshake done
    await asyncio.wait_for(cutting, 1)
