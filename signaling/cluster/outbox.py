"""Publishing on other nodes' channels, batched under load.

A publish is a round trip to Redis and, on loopback as on a network, a write and a read for both
sides: per relayed message that cost more than the relay itself. So what is handed over while a
batch is on its way waits for the next one, and a batch is one PUBLISH per node: its envelopes
joined by newlines (JSON envelopes never hold a raw newline). Alone, a message goes out at once,
bare, as it always did. One batch at a time, in the order handed over: a sender's messages to one
peer stay in order.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import redis.asyncio as redis

from signaling.cluster.redis_store import available
from signaling.core.errors import ErrorCode, SignalingError

log = logging.getLogger(__name__)

SEPARATOR = b"\n"


class Outbox:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._pending: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self._flushing = False

    async def publish(self, channel: str, envelope: bytes) -> int:
        """Publish `envelope` on `channel`; how many nodes received it (0: nobody listens)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((channel, envelope, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                channels: dict[str, list[bytes]] = {}
                for channel, envelope, _ in batch:
                    channels.setdefault(channel, []).append(envelope)
                try:
                    counts = await available(partial(self._send, channels))
                except Exception as exc:  # Redis out of reach, or a bug: each sender is told
                    if not isinstance(exc, SignalingError):
                        log.exception("node outbox: a batch failed")
                        exc = SignalingError(ErrorCode.SERVICE_UNAVAILABLE, "could not reach the other node")
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                received = dict(zip(channels, counts, strict=True))
                for channel, _, future in batch:
                    if not future.done():
                        future.set_result(int(received[channel]))
        finally:
            self._flushing = False

    async def _send(self, channels: dict[str, list[bytes]]) -> list[int]:
        if len(channels) == 1:
            ((channel, envelopes),) = channels.items()
            return [await self.client.publish(channel, SEPARATOR.join(envelopes))]
        async with self.client.pipeline(transaction=False) as pipe:
            for channel, envelopes in channels.items():
                pipe.publish(channel, SEPARATOR.join(envelopes))
            return list(await pipe.execute())
