"""A flood-and-reconnect attacker, for bench/run's row on honest latency under attack.

    python bench/attack.py PORT [CONNECTIONS]

Each connection, from 127.0.0.2 (its own address, so per-address limits apply to it apart from
the honest load), writes a 60 KB burst of tiny socket.io events as fast as the kernel takes it,
waits for the server to cut it off, and connects again; until stdin closes. Then it prints one
JSON line: {"connections": made, "flooded": how many of them got to flood before being cut off
(the others were turned away at once)}. Loopback only, and bounded by stdin.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import sys

SOURCE = "127.0.0.2"
PATH = "/socket.io/?EIO=4&transport=websocket"


def masked(payload: bytes) -> bytes:
    # A client's text frame; an all-zero mask leaves the payload as it is.
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + b"\0\0\0\0" + payload


BURST = masked(b"40") + masked(b'42["x"]') * 8000


async def cycle(port: int) -> bool:
    """One connection: True if it got as far as flooding (was not turned away at the handshake)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(SOURCE, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    upgraded = False
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        upgraded = head.startswith(b"HTTP/1.1 101 ")
        if upgraded:
            writer.write(BURST)
            async with asyncio.timeout(30):
                while await reader.read(65536):
                    pass
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        pass  # cut off, as expected
    finally:
        writer.close()
    return upgraded


async def main(port: int, connections: int) -> None:
    report = {"connections": 0, "flooded": 0}
    stop = asyncio.Event()

    async def attacker() -> None:
        while not stop.is_set():
            report["flooded"] += await cycle(port)
            report["connections"] += 1

    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(attacker()) for _ in range(connections)]
    await loop.run_in_executor(None, sys.stdin.read)  # until the runner closes stdin
    stop.set()
    await asyncio.wait(tasks, timeout=35)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20))
