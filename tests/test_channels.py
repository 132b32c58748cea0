"""signaling.cluster.channels against a real redis-server: the connections it takes over from
redis-py (a contract test: an upgrade that moves them fails here), batching, replies, breaks."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as redis
from redis.asyncio import ConnectionPool

from signaling.cluster import channels
from signaling.cluster.channels import Link, Publisher
from signaling.core.errors import ErrorCode, SignalingError
from tests.cluster_support import wait_until
from tests.helpers import free_port
from tests.redis_support import RedisServer

pytestmark = pytest.mark.cluster


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    """A redis-server of the test's own, which it may freeze or kill."""
    server = RedisServer(free_port())
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture
async def links(own_redis: RedisServer) -> AsyncIterator[Callable[[], Awaitable[Link]]]:
    """Connections to `own_redis` through `channels.connect`, closed at the end."""
    pool = ConnectionPool.from_url(own_redis.url)
    opened: list[Link] = []

    async def open_link() -> Link:
        opened.append(await channels.connect(pool))
        return opened[-1]

    yield open_link
    for link in opened:
        link.abort()
        await link.close()


async def started(publisher: Publisher, link: Link) -> asyncio.Task[None]:
    """`publisher` running on `link`, connected."""
    running = asyncio.create_task(publisher.run(link))
    await wait_until(lambda: publisher.connected, "the publisher")
    return running


async def listening(link: Link, channel: str) -> Inbox:
    """An Inbox on `channel` whose subscription Redis has confirmed."""
    inbox = Inbox(link, channel)
    await asyncio.wait_for(inbox.subscribed.wait(), 5)
    return inbox


class Inbox:
    """A subscription through `channels.subscribe`, with what it received."""

    def __init__(self, link: Link, channel: str) -> None:
        self.messages: list[bytes] = []
        self.subscribed = asyncio.Event()
        self.task = asyncio.create_task(
            channels.subscribe(link, channel, self._received, self.subscribed.set)
        )

    async def _received(self, data: bytes) -> None:
        self.messages.append(data)


async def test_connect_hands_over_redis_pys_streams(links: Callable[[], Awaitable[Link]]) -> None:
    link = await links()
    assert isinstance(link.reader, asyncio.StreamReader)
    assert isinstance(link.writer, asyncio.StreamWriter)
    link.writer.write(channels.command(b"PING"))
    assert await asyncio.wait_for(link.reader.readline(), 5) == b"+PONG\r\n"


async def test_what_gathers_while_a_batch_is_out_goes_in_one_publish_in_order(
    own_redis: RedisServer, links: Callable[[], Awaitable[Link]]
) -> None:
    inbox = await listening(await links(), "to-b")
    unheard: list[list[bytes]] = []
    publisher = Publisher(unheard.append, lambda *_: None)
    running = await started(publisher, await links())
    spy = redis.Redis.from_url(own_redis.url)
    before = (await spy.info("commandstats")).get("cmdstat_publish", {}).get("calls", 0)

    publisher.post("to-b", b'{"n": 0}')
    await asyncio.sleep(0)  # it goes out alone; the next 49 gather behind it
    for n in range(1, 50):
        publisher.post("to-b", b'{"n": %d}' % n)
    await wait_until(lambda: len(inbox.messages) == 2, "two publications")
    assert inbox.messages[0] == b'{"n": 0}'
    assert inbox.messages[1].split(channels.SEPARATOR) == [b'{"n": %d}' % n for n in range(1, 50)]
    assert (await spy.info("commandstats"))["cmdstat_publish"]["calls"] - before == 2

    publisher.post("nobody-listens", b"one")
    publisher.post("nobody-listens", b"two")
    await wait_until(lambda: unheard == [[b"one", b"two"]], "the unheard envelopes handed back")
    for task in (running, inbox.task):
        task.cancel()
    await asyncio.wait([running, inbox.task])
    await spy.aclose()


async def test_drained_waits_for_what_was_posted_before_not_after(
    links: Callable[[], Awaitable[Link]],
) -> None:
    publisher = Publisher(lambda _: None, lambda *_: None)
    running = await started(publisher, await links())
    publisher.post("to-b", b"out")
    await asyncio.sleep(0)
    publisher.post("to-b", b"waiting")
    drained = asyncio.create_task(publisher.drained())
    for _ in range(100_000):  # traffic that never stops, bounded
        if drained.done():
            break
        publisher.post("to-b", b"later")
        await asyncio.sleep(0)
    assert drained.done()
    running.cancel()
    await asyncio.wait([running])


async def test_what_waits_behind_a_publish_nobody_heard_goes_with_it(
    links: Callable[[], Awaitable[Link]],
) -> None:
    inbox = await listening(await links(), "to-b")
    unheard: list[list[bytes]] = []
    publisher = Publisher(unheard.append, lambda *_: None)
    running = await started(publisher, await links())
    publisher.post("gone", b"first")
    await asyncio.sleep(0)
    publisher.post("gone", b"second")  # sent on, it could overtake the first on its new way
    publisher.post("to-b", b"elsewhere")
    await wait_until(lambda: inbox.messages == [b"elsewhere"], "the other channel's message")
    assert unheard == [[b"first", b"second"]]
    for task in (running, inbox.task):
        task.cancel()
    await asyncio.wait([running, inbox.task])


async def test_a_broken_connection_ends_the_run_and_refuses_posts(
    own_redis: RedisServer, links: Callable[[], Awaitable[Link]]
) -> None:
    publisher = Publisher(lambda _: None, lambda *_: None)
    with pytest.raises(SignalingError) as refused:
        publisher.post("to-b", b"before any connection")
    assert refused.value.code == ErrorCode.SERVICE_UNAVAILABLE
    running = await started(publisher, await links())
    own_redis.stop()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(running, 5)
    assert not publisher.connected
    with pytest.raises(SignalingError):
        publisher.post("to-b", b"after")


async def test_a_redis_that_stops_answering_is_given_up_on(
    own_redis: RedisServer, links: Callable[[], Awaitable[Link]]
) -> None:
    publisher = Publisher(lambda _: None, lambda *_: None, reply_timeout=0.4)
    running = await started(publisher, await links())
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)  # the connection stays up; nothing answers
    publisher.post("to-b", b"into the void")
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(running, 5)
    assert not publisher.connected


async def test_what_was_not_written_when_the_connection_broke_is_handed_back(
    own_redis: RedisServer, links: Callable[[], Awaitable[Link]]
) -> None:
    unsent: list[tuple[str, list[bytes]]] = []
    publisher = Publisher(lambda _: None, lambda channel, envelopes: unsent.append((channel, envelopes)))
    running = await started(publisher, await links())
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)  # the first batch goes out and is never answered
    publisher.post("to-b", b"written")
    await asyncio.sleep(0)
    publisher.post("to-b", b"waiting 1")
    publisher.post("to-c", b"waiting 2")
    own_redis.stop()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(running, 5)
    assert unsent == [("to-b", [b"waiting 1"]), ("to-c", [b"waiting 2"])]


async def test_a_reply_to_nothing_sent_breaks_the_connection(links: Callable[[], Awaitable[Link]]) -> None:
    publisher = Publisher(lambda _: None, lambda *_: None)
    link = await links()
    running = await started(publisher, link)
    link.writer.write(channels.command(b"PING"))  # a reply the publisher did not ask for
    with pytest.raises(ConnectionError, match="never sent"):
        await asyncio.wait_for(running, 5)


async def test_a_refused_subscription_ends_the_subscriber(
    own_redis: RedisServer, links: Callable[[], Awaitable[Link]]
) -> None:
    spy = redis.Redis.from_url(own_redis.url)
    # A user that may not subscribe to anything: Redis answers SUBSCRIBE with an error.
    await spy.acl_setuser("default", enabled=True, nopass=True, reset_channels=True)
    inbox = Inbox(await links(), "to-b")
    with pytest.raises(ConnectionError, match="refused the subscription"):
        await asyncio.wait_for(inbox.task, 5)
    assert not inbox.subscribed.is_set()
    await spy.aclose()
