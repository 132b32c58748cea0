"""A node's two Redis connections for node channels, spoken to directly.

Cross-node relays are the bulk of what a cluster sends, and redis-py's machinery per command (pool
checkout, retry, timeout, a chain of coroutines per reply) and per pub/sub message cost more than
the relay itself. So redis-py opens these two connections (URL, TLS, AUTH, SELECT: `connect`), and
from then on they carry raw RESP:

- `Publisher`: PUBLISH on other nodes' channels without waiting. What is posted while a batch is on
  its way waits for the next one, and a batch is one PUBLISH per channel, its envelopes joined by
  newlines (JSON envelopes never hold a raw newline). Alone, a message goes out at once. Replies
  come back in order: a channel nobody listens on (its node is gone) hands its envelopes to
  `unheard`, with those that wait behind them for that channel; when the connection breaks, what
  was not written yet goes to `unsent`, and what was written may or may not have arrived, as with
  any network.
- `subscribe`: reads the node's own channel, a read's worth of messages at a time.

`connect` is the one place that touches redis-py's private attributes; tests/test_channels.py
fails loudly if an upgrade moves them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import hiredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool

from signaling.core.errors import ErrorCode, SignalingError

log = logging.getLogger(__name__)

SEPARATOR = b"\n"
READ_SIZE = 1 << 16
# A batch unanswered this long means a connection that is gone without saying so.
REPLY_TIMEOUT = 5.0
# Posted and not yet written (Redis answering slowly): beyond this, senders are refused.
PENDING_LIMIT = 16 << 20


class Link:
    """One connection: its streams, and a way to close it."""

    def __init__(self, connection: AbstractConnection) -> None:
        reader, writer = connection._reader, connection._writer
        if not isinstance(reader, asyncio.StreamReader) or not isinstance(writer, asyncio.StreamWriter):
            raise TypeError(f"redis-py {type(connection).__name__} holds no asyncio streams")
        self.connection = connection
        self.reader = reader
        self.writer = writer

    def abort(self, *_: object) -> None:
        """Break the connection now (whoever reads it sees it end)."""
        self.writer.transport.abort()

    async def close(self) -> None:
        await self.connection.disconnect()


async def connect(pool: ConnectionPool) -> Link:
    """A fresh connection of `pool`'s settings, handshake done, for this module to speak on."""
    connection: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
    await connection.connect()  # type: ignore[no-untyped-call]
    return Link(connection)


def client_name(node_id: str) -> str:
    """The name a node's channel connections go by in CLIENT LIST."""
    return f"signaling:{node_id}:channels"


def command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


class Publisher:
    """Publishes on other nodes' channels (see above) over the connection `run` is given."""

    def __init__(
        self,
        unheard: Callable[[list[bytes]], None],
        unsent: Callable[[str, list[bytes]], None],
        reply_timeout: float = REPLY_TIMEOUT,
    ) -> None:
        self._unheard = unheard
        self._unsent = unsent
        self.reply_timeout = reply_timeout
        self._link: Link | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, list[bytes]] = {}
        self._pending_bytes = 0
        self._scheduled = False
        self._in_flight: deque[tuple[str, list[bytes]]] = deque()  # per PUBLISH written
        self._sent_at = 0.0
        self._refused = False  # Redis answered a publish with an error, on this connection
        # Envelopes posted and answered so far, and who waits for a count of them (`drained`).
        self._posted = 0
        self._answered_count = 0
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def connected(self) -> bool:
        return self._link is not None

    async def drained(self) -> None:
        """Once everything posted so far is answered (or the connection is gone); what is posted
        afterwards is not waited for."""
        if self._link is not None and self._answered_count < self._posted:
            future = asyncio.get_running_loop().create_future()
            self._waiting.append((self._posted, future))
            await future

    def post(self, channel: str, envelope: bytes) -> None:
        """Publish `envelope` on `channel` soon. Refused while the connection is down or Redis
        falls far behind."""
        if self._link is None or self._loop is None:
            raise SignalingError(ErrorCode.SERVICE_UNAVAILABLE, "could not reach the other node")
        if self._pending_bytes > PENDING_LIMIT:
            raise SignalingError(ErrorCode.SERVICE_UNAVAILABLE, "Redis is not keeping up; try again shortly")
        batch = self._pending.get(channel)
        if batch is None:
            self._pending[channel] = [envelope]
        else:
            batch.append(envelope)
        self._pending_bytes += len(envelope)
        self._posted += 1
        if not self._in_flight and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    async def run(self, link: Link) -> None:
        """Publish on `link` until it breaks (raises ConnectionError)."""
        self._link, self._loop, self._refused = link, asyncio.get_running_loop(), False
        parser = hiredis.Reader()
        watchdog = asyncio.create_task(self._watch())
        try:
            while data := await link.reader.read(READ_SIZE):
                parser.feed(data)
                while (reply := _next(parser)) is not False:
                    self._answered(reply)
            raise ConnectionError("Redis closed the connection")
        except asyncio.CancelledError:
            # Stopping: what is posted is written before the connection closes, and what was
            # written counts as sent.
            self._flush()
            self._in_flight.clear()
            raise
        finally:
            watchdog.cancel()
            self._link = None
            unsent, self._pending, self._pending_bytes = self._pending, {}, 0
            for channel, envelopes in unsent.items():
                self._unsent(channel, envelopes)
            if lost := sum(len(envelopes) for _, envelopes in self._in_flight):
                log.warning("node channels: %d messages to other nodes may be lost with the connection", lost)
            self._in_flight.clear()
            self._answered_count = self._posted
            self._settle()

    def _answered(self, reply: object) -> None:
        if isinstance(reply, hiredis.PushNotification):
            return  # RESP3 pushes (a server's maintenance notices) answer no publish
        if not self._in_flight:
            raise ConnectionError(f"Redis answered a publish never sent: {reply!r:.80}")
        channel, envelopes = self._in_flight.popleft()
        self._answered_count += len(envelopes)
        if isinstance(reply, hiredis.ReplyError):
            if not self._refused:  # its cause (ACL, memory) holds for the ones after it
                log.warning("node channels: Redis refused a publish (%d messages): %s", len(envelopes), reply)
            self._refused = True
        elif reply == 0:
            # Those waiting for the same channel go the same way: sent on, they could overtake.
            behind = self._pending.pop(channel, [])
            self._pending_bytes -= sum(map(len, behind))
            self._answered_count += len(behind)
            self._unheard(envelopes + behind)
        self._settle()
        if not self._in_flight and self._pending:
            self._flush()

    def _settle(self) -> None:
        if self._waiting:
            ready = [future for count, future in self._waiting if count <= self._answered_count]
            self._waiting = [
                (count, future) for count, future in self._waiting if count > self._answered_count
            ]
            for future in ready:
                if not future.done():
                    future.set_result(None)

    def _flush(self) -> None:
        self._scheduled = False
        if self._link is None or not self._pending:
            return
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        self._in_flight.extend(pending.items())
        self._link.writer.write(
            b"".join(
                command(b"PUBLISH", channel.encode(), SEPARATOR.join(envelopes))
                for channel, envelopes in pending.items()
            )
        )
        assert self._loop is not None
        self._sent_at = self._loop.time()

    async def _watch(self) -> None:
        assert self._loop is not None and self._link is not None
        while True:
            await asyncio.sleep(self.reply_timeout / 2)
            if self._in_flight and self._loop.time() - self._sent_at > self.reply_timeout:
                log.warning("node channels: no answer from Redis in %.1f s; reconnecting", self.reply_timeout)
                self._link.abort()
                return


async def subscribe(
    link: Link, channel: str, received: Callable[[bytes], Awaitable[None]], ready: Callable[[], None]
) -> None:
    """Hand each message published on `channel` to `received`, in order, until the connection
    breaks (raises ConnectionError). `ready` is called once Redis confirms the subscription."""
    link.writer.write(command(b"SUBSCRIBE", channel.encode()))
    parser = hiredis.Reader()
    while data := await link.reader.read(READ_SIZE):
        parser.feed(data)
        while (item := _next(parser)) is not False:
            if isinstance(item, hiredis.ReplyError):
                raise ConnectionError(f"Redis refused the subscription: {item}")
            if isinstance(item, list) and item and item[0] == b"message":
                await received(item[2])
            elif isinstance(item, list) and item and item[0] == b"subscribe":
                ready()
    raise ConnectionError("Redis closed the connection")


def _next(parser: hiredis.Reader) -> object:
    try:
        return parser.gets()
    except hiredis.ProtocolError as exc:
        raise ConnectionError(f"unreadable data from Redis: {exc}") from None
