"""A real `python app.py` process for attacks: its RSS, its log lines, its exit; and raw clients
that write what a hostile client writes (bursts of masked WebSocket frames, partial requests)."""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import signal
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from signaling.client import SignalingClient
from tests.helpers import SDP_OFFER, free_port

ROOT = Path(__file__).resolve().parent.parent

# Attackers connect from their own loopback address, so that the per-address limits they run
# into are theirs, and the honest peers (from 127.0.0.1) are judged on their own.
ATTACKER = "127.0.0.2"


@dataclass
class ServerProcess:
    url: str
    port: int
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS for the server process")

    def log(self) -> list[str]:
        return self.log_path.read_text(errors="backslashreplace").splitlines()

    async def wait_log(self, text: str, seconds: float = 10) -> str:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            found = [line for line in self.log() if text in line]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no log line with {text!r} within {seconds} s")

    async def stop(self) -> float:
        """SIGTERM, which must end it cleanly (exit status 0); the seconds it took to exit."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(self.process.wait(), 70) == 0, self.log()[-5:]
        return loop.time() - started


async def wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if process.returncode is not None:
                raise AssertionError(f"app.py exited with {process.returncode}")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise AssertionError("app.py did not become healthy in 10 s")


StartProcess = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def start_process(tmp_path: Path) -> AsyncIterator[StartProcess]:
    """Start `python app.py` with the default settings, except those given (as env vars);
    `open_files` caps its file descriptors. Its stderr is its log."""
    started: list[ServerProcess] = []

    async def start(open_files: int | None = None, **env: str) -> ServerProcess:
        port = free_port()
        log_path = tmp_path / f"server-{port}.log"

        def limit_files() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "app.py",
                cwd=ROOT,
                # The session key file of the test, not one beside the checkout's app.py.
                env={
                    **os.environ,
                    "PORT": str(port),
                    "HOST": "127.0.0.1",
                    "SESSION_KEY_FILE": str(tmp_path / "session-key"),
                    **env,
                },
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                preexec_fn=limit_files,
            )
        server = ServerProcess(f"http://127.0.0.1:{port}", port, process, log_path)
        started.append(server)
        await wait_healthy(server.url, process)
        return server

    yield start
    for server in started:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


class RawWebSocket:
    """A WebSocket client that writes frames as bytes, as fast as the kernel takes them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status

    @classmethod
    async def open(cls, port: int, path: str, source: str = ATTACKER) -> RawWebSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, int(head.split(b" ", 2)[1]))

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def until_closed(self, seconds: float = 20) -> bytes:
        """Read until the server closes; the payload of its close frame if it sent one."""
        received = b""
        async with asyncio.timeout(seconds):
            try:
                while chunk := await self.reader.read(65536):
                    received += chunk
            except ConnectionError:
                pass
        self.writer.close()
        return close_payload(received)


def masked(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client's frame (RFC 6455: masked; an all-zero mask leaves the payload as it is)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + b"\0\0\0\0" + payload


def close_payload(stream: bytes) -> bytes:
    """The payload of the close frame (opcode 8) among the server's unmasked frames, if any."""
    at = 0
    while at + 2 <= len(stream):
        opcode, size = stream[at] & 0x0F, stream[at + 1] & 0x7F
        at += 2
        if size == 126:
            (size,) = struct.unpack("!H", stream[at : at + 2])
            at += 2
        elif size == 127:
            (size,) = struct.unpack("!Q", stream[at : at + 8])
            at += 8
        if opcode == 0x8:
            return stream[at : at + size]
        at += size
    return b""


class HonestPair:
    """Two socket.io peers in one room, from 127.0.0.1; `exchange` is one offer round trip."""

    def __init__(self, alice: SignalingClient, bob: SignalingClient) -> None:
        self.alice = alice
        self.bob = bob

    @classmethod
    async def join(cls, url: str, room: str = "honest") -> HonestPair:
        alice, bob = SignalingClient(), SignalingClient()
        await alice.connect(url)
        await bob.connect(url)
        await alice.join(room)
        await bob.join(room)
        await alice.next("peer-joined")
        return cls(alice, bob)

    async def exchange(self) -> None:
        assert self.bob.peer_id is not None
        await self.alice.offer(self.bob.peer_id, SDP_OFFER)
        offer = await self.bob.next("offer")
        assert offer["sdp"] == SDP_OFFER

    async def close(self) -> None:
        await self.alice.close()
        await self.bob.close()
