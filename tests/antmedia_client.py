"""A raw Ant Media WebSocket client for tests: JSON commands in, messages queued by kind."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import aiohttp
import orjson


def kind_of(message: dict[str, Any]) -> str:
    """Queue key: the command, with the definition for notifications (errors share one queue)."""
    command = str(message.get("command"))
    if command == "notification":
        return f"notification:{message.get('definition')}"
    return command


class AntMediaClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._queues: defaultdict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type == aiohttp.WSMsgType.TEXT:
                message = orjson.loads(frame.data)
                self._queues[kind_of(message)].put_nowait(message)
        self.closed.set_result(self.ws.close_code)

    async def send(self, command: str, **fields: Any) -> None:
        await self.ws.send_str(orjson.dumps({"command": command, **fields}).decode())

    async def send_raw(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def next(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._queues[kind].get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no {kind!r} within {timeout}s; unread: {self.pending()}") from None

    async def request(self, command: str, kind: str, **fields: Any) -> dict[str, Any]:
        await self.send(command, **fields)
        return await self.next(kind)

    async def first_of(self, *kinds: str, timeout: float = 10.0) -> dict[str, Any]:
        """Whichever of these kinds of message comes first (the others stay queued)."""
        waiters = [asyncio.ensure_future(self._queues[kind].get()) for kind in kinds]
        done, pending = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        if not done:
            raise TimeoutError(f"none of {kinds} within {timeout}s; unread: {self.pending()}")
        return done.pop().result()

    async def sync(self) -> None:
        """Wait until the server has handled everything sent so far (it answers in order)."""
        await self.request("ping", "pong")

    def take_pending(self, kind: str) -> list[dict[str, Any]]:
        queue = self._queues[kind]
        return [queue.get_nowait() for _ in range(queue.qsize())]

    def pending(self) -> dict[str, int]:
        return {kind: queue.qsize() for kind, queue in self._queues.items() if queue.qsize()}

    async def close(self) -> None:
        await self.ws.close()
        await self._reader
