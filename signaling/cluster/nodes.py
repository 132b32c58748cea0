"""Running as one node of several, sharing state and delivering through Redis.

- Routing: each node keeps a view of the rooms and streams its own peers are in (who is in them,
  on which node: signaling.cluster.replica), kept current by the notices every change sends down
  the channels of the nodes concerned. A relay is decided from it: between two peers of one node
  it costs Redis nothing; to another node's peer, one PUBLISH on that node's own channel, read by
  that node alone, which checks the link again against its own view before it delivers. What the
  view does not know goes through Redis as before (`RedisSessions.keep`).
- Liveness: each node keeps a lease key alive in Redis. A node whose lease lapses (killed, frozen,
  cut off) is reaped by another: its peers are removed and announced as left with reason
  "node_lost".
- Lost state: a node that finds its own lease gone (Redis restarted empty, or it was reaped while
  cut off) can no longer trust the shared state of its peers, so it evicts them; clients reconnect
  and join again, which rebuilds the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import redis.asyncio as redis
from redis.asyncio import BlockingConnectionPool, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from signaling.cluster import channels, codec
from signaling.cluster.channels import SEPARATOR, Publisher
from signaling.cluster.redis_sessions import RedisSessions
from signaling.cluster.redis_store import RedisStore, as_text, available
from signaling.cluster.replica import PROTOCOL, Replica
from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.hub import Hub, LocalDelivery
from signaling.core.messages import Outbound, Relayed
from signaling.core.peers import node_name
from signaling.core.store import PeerLimits
from signaling.core.view import Notice
from signaling.security.session_keys import SessionKeys

log = logging.getLogger(__name__)


def new_node_id() -> str:
    # Short, and unique enough across restarts.
    return node_name(f"{socket.gethostname().split('.')[0][:16]}-{secrets.token_hex(3)}")


# Seconds between attempts to subscribe again, doubling: a Redis back from a restart is heard from
# at once, one that stays away is not hammered.
RESUBSCRIBE_FIRST, RESUBSCRIBE_LAST = 0.05, 1.0
# Messages waiting to be taken the slow way (see ClusterDelivery._to_slow_lane) before more are
# refused.
SLOW_LANE_LIMIT = 10_000


class ClusterDelivery(LocalDelivery):
    """Peers connected here directly; another node's peer with one PUBLISH on that node's channel,
    when this node's view knows where it is; any other through its session
    (`RedisSessions.keep`): published to its node, or kept for its resume."""

    def __init__(
        self,
        client: redis.Redis,
        channel_pool: ConnectionPool,
        node_id: str,
        prefix: str,
        sessions: RedisSessions,
        replica: Replica,
    ) -> None:
        super().__init__(sessions)
        self.cluster_sessions = sessions
        self.client = client
        self.channel_pool = channel_pool  # opens the connections of `listen`
        self.node_id = node_id
        self.prefix = prefix
        self.replica = replica
        self.publisher = Publisher(partial(self._handed_back, None), self._handed_back)
        # Messages for peers of other nodes that went wrong on the fast way (see _to_slow_lane).
        self._slow_lane: deque[tuple[str | None, bytes]] = deque()
        self._slow_task: asyncio.Task[None] | None = None
        self._reclaiming: asyncio.Task[None] | None = None
        # Has Redis send this node's view everything its peers are in (RedisStore.load).
        self.load: Callable[[list[str]], Awaitable[int]] | None = None
        # Told of each envelope skipped (metrics), with the reason.
        self.on_skipped: Callable[[str], None] | None = None
        self._skips = inbox_skips()
        self._losses = SkipLog(
            "a message for a peer of another node was lost: %s",
            "%s more messages for peers of other nodes were lost (%s)",
        )
        self._rebuilding: asyncio.Task[None] | None = None

    def inbox(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}:inbox"

    async def absent(self, peer_id: str, message: Outbound) -> bool:
        home = self.replica.home(peer_id)
        if home is not None and home != self.node_id:
            channel, envelope = self.inbox(home), codec.encode(peer_id, message)
            if self._slow_lane:  # behind what waits there: one sender's messages stay in order
                return self._queue_in_slow_lane(channel, envelope)
            if self.publisher.connected:
                self.publisher.post(channel, envelope)  # where nobody listens: `_handed_back`
                return True
            # Between connections (or stopping): published the slow way, counted at once.
            if await available(partial(self.client.publish, channel, envelope)):
                return True
        else:
            # Its session decides, after what this node sent before (it may go the same way).
            await self.publisher.drained()
            if self._slow_lane:
                return self._queue_in_slow_lane(None, codec.encode(peer_id, message))
        return await super().absent(peer_id, message)

    def _queue_in_slow_lane(self, channel: str | None, envelope: bytes) -> bool:
        if not self._to_slow_lane([(channel, envelope)]):
            raise SignalingError(ErrorCode.SERVICE_UNAVAILABLE, "Redis is not keeping up; try again shortly")
        return True

    def _handed_back(self, channel: str | None, envelopes: list[bytes]) -> None:
        """What the publisher could not send: on `channel` the slow way (not written before its
        connection broke), or with no channel to their sessions (nobody listened there)."""
        if not self._to_slow_lane([(channel, envelope) for envelope in envelopes]):
            log.warning("%d messages for peers of other nodes were lost", len(envelopes))

    def _to_slow_lane(self, entries: list[tuple[str | None, bytes]]) -> bool:
        """Queue messages to be taken through redis-py one at a time, in order
        (`_take_slow_lane`): rare, and bounded, since every message after them waits behind
        them. False when full."""
        if len(self._slow_lane) + len(entries) > SLOW_LANE_LIMIT:
            return False
        self._slow_lane.extend(entries)
        if self._slow_task is None or self._slow_task.done():
            self._slow_task = asyncio.create_task(self._take_slow_lane(), name="cluster-slow-lane")
        return True

    async def _take_slow_lane(self) -> None:
        """Each message published on its channel, or where nobody listens there (or it has no
        channel), handed to its session (a peer without one is gone, as on one node)."""
        while self._slow_lane:
            channel, envelope = self._slow_lane[0]
            try:
                if channel is None or not await available(partial(self.client.publish, channel, envelope)):
                    peer_id, message = codec.decode(envelope)
                    if message is not None:
                        await super().absent(peer_id, message)
            except Exception as exc:  # Redis out of reach, most likely: said a few times, not each
                self._losses.skipped(type(exc).__name__, str(exc))
            finally:
                self._slow_lane.popleft()

    async def listen(self, ready: asyncio.Event) -> None:
        """Deliver what other nodes publish for this node's peers, and publish for theirs
        (`self.publisher`), connecting again after outages. Nothing published on the channel ends
        it: what it cannot read is counted and skipped.

        A subscription that broke may have missed notices: the view is rebuilt on each new one."""
        pause = RESUBSCRIBE_FIRST

        def subscribed() -> None:
            nonlocal pause
            ready.set()
            pause = RESUBSCRIBE_FIRST
            self.rebuild_view()
            self._reclaiming = asyncio.create_task(self._reclaim(), name="cluster-reclaim")

        while True:
            links: list[channels.Link] = []
            try:
                for _ in range(2):
                    links.append(await channels.connect(self.channel_pool))
                inbox, publishing_link = links
                publishing = asyncio.create_task(
                    self.publisher.run(publishing_link), name="cluster-publisher"
                )
                # Either connection breaking takes the other down with it, and readiness.
                publishing.add_done_callback(inbox.abort)
                try:
                    await channels.subscribe(inbox, self.inbox(self.node_id), self._received, subscribed)
                finally:
                    publishing.cancel()
                    await asyncio.wait([publishing])  # never swallows this task's own cancellation
                    if not publishing.cancelled() and (error := publishing.exception()) is not None:
                        log.warning("node channels: publishing stopped: %s", error)
            except Exception as exc:
                ready.clear()
                self.replica.lost()
                if isinstance(exc, (RedisError, OSError)):
                    log.warning("node channels unavailable (%s); retrying", exc)
                else:  # a bug: it must not end this node's inbox for good
                    log.exception("node channels failed; retrying")
                await asyncio.sleep(pause)
                pause = min(2 * pause, RESUBSCRIBE_LAST)
            finally:
                for link in links:
                    with contextlib.suppress(RedisError, OSError):
                        await link.close()

    async def _reclaim(self) -> None:
        """Deliver what was kept for this node's peers while its channel was not listened on: a
        message published then, kept for a resume, would wait for one its peer never makes."""
        try:
            for peer_id, message in await self.cluster_sessions.reclaim(self.local_peers()):
                if (sink := self._sinks.get(peer_id)) is not None:
                    await self.send(sink, peer_id, message)
        except (SignalingError, RedisError, OSError, codec.Undecodable) as exc:
            log.warning("node channels: what was kept for this node's peers meanwhile is lost: %s", exc)

    def _view_lost(self) -> None:
        self.replica.lost()
        self.rebuild_view()

    def rebuild_view(self) -> None:
        """Rebuild the view in the background (`listen` applies what it is sent), unless a
        rebuild is under way."""
        if self.load is not None and (self._rebuilding is None or self._rebuilding.done()):
            self._rebuilding = asyncio.create_task(self._rebuild(self.load), name="cluster-view")

    async def stop_rebuilding(self) -> None:
        if self._rebuilding is not None:
            self._rebuilding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rebuilding

    async def _rebuild(self, load: Callable[[list[str]], Awaitable[int]]) -> None:
        try:
            if await self.silent_nodes():
                return  # the lease loop looks again
            if await self.replica.rebuild(lambda: load(self.local_peers())):
                log.info("node view rebuilt: relays are routed from it")
        except SignalingError as error:
            log.warning("node view not rebuilt now: %s", error.message)

    async def silent_nodes(self) -> list[str]:
        """The live nodes of a version before views (their lease's value is the notice protocol
        they speak), which change links without telling anyone: a rolling deploy's older nodes.
        While there is one, routing asks Redis."""

        async def read() -> list[str]:
            nodes = [as_text(node) for node in await self.client.smembers(f"{self.prefix}nodes")]
            if not nodes:
                return []
            leases = await self.client.mget([f"{self.prefix}node:{node}:alive" for node in nodes])
            return [
                node for node, lease in zip(nodes, leases, strict=True) if lease and int(lease) < PROTOCOL
            ]

        return await available(read)

    async def _received(self, data: bytes) -> None:
        for envelope in data.split(SEPARATOR):
            await self._read(envelope)

    async def _read(self, data: bytes) -> None:
        try:
            read = codec.decode_any(data)
        except codec.Undecodable as exc:
            if self.on_skipped is not None:
                self.on_skipped(exc.why)
            self._skips.skipped(exc.why, str(exc))
            if exc.why == "malformed_notice":
                self._view_lost()  # a change the view cannot know
            return
        if isinstance(read, Notice):
            try:
                self.replica.received(read)
            except Exception:
                log.exception("node view: a notice could not be applied")
                self._view_lost()
            return
        peer_id, message = read
        try:
            if message is None:
                sink = self._sinks.pop(peer_id, None)  # resumed on another node: let go of it here
                if sink is not None:
                    await sink.moved()
                return
            sink = self._sinks.get(peer_id)
            if sink is None:
                # Not here (any more): its session decides, never this node's view, which could
                # send it back.
                await super().absent(peer_id, message)
            elif not isinstance(message, Relayed) or self.replica.allows(message.sender, peer_id):
                await self.send(sink, peer_id, message)
            else:
                log.debug("peer=%s relay from %s dropped: they share nothing now", peer_id, message.sender)
        except SignalingError as error:
            log.warning("peer=%s: a message from another node was lost: %s", peer_id, error.message)
        except Exception:
            # A bug here must not end this node's inbox for every other peer.
            log.exception("peer=%s: delivery of a message from another node failed", peer_id)


class SkipLog:
    """Something that may keep happening, logged at most once per `interval`: the first at once
    (`first`, with its detail), then a count of the others by reason (`more`)."""

    def __init__(
        self, first: str, more: str, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.first, self.more = first, more
        self.interval = interval
        self._clock = clock
        self._since: float | None = None
        self._counts: dict[str, int] = {}

    def skipped(self, why: str, detail: str) -> None:
        now = self._clock()
        if self._since is None or now - self._since >= self.interval:
            held_back = ", ".join(f"{reason} {count}" for reason, count in sorted(self._counts.items()))
            if held_back:
                log.warning(self.more, sum(self._counts.values()), held_back)
            log.warning(self.first, detail[:200])
            self._since, self._counts = now, {}
        else:
            self._counts[why] = self._counts.get(why, 0) + 1


def inbox_skips(interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> SkipLog:
    return SkipLog(
        "node inbox: skipped a message it cannot read: %s",
        "node inbox: skipped %s more that it could not read (%s)",
        interval,
        clock,
    )


class Node:
    """This process's membership in the cluster: lease, reaping of dead nodes, readiness."""

    def __init__(
        self,
        client: redis.Redis,
        hub: Hub,
        delivery: ClusterDelivery,
        sessions: RedisSessions,
        keys: SessionKeys,
        *,
        lease_seconds: float,
        prefix: str,
    ) -> None:
        self.client = client
        self.hub = hub
        self.delivery = delivery
        self.sessions = sessions
        self.keys = keys
        self.node_id = delivery.node_id
        self.lease_ms = int(lease_seconds * 1000)
        self.interval = lease_seconds / 3
        self.prefix = prefix
        self.redis_ok = False
        self.subscribed = asyncio.Event()
        # Takes a reaped node off the list only if it has not come back in the meantime.
        self._forget = client.register_script(
            "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end"
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._missing: set[str] = set()  # attached here by Redis's account, not connected here

    @property
    def ready(self) -> bool:
        listening = bool(self._tasks) and not self._tasks[0].done()
        return self.redis_ok and self.subscribed.is_set() and listening

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.delivery.listen(self.subscribed), name="cluster-inbox"),
            asyncio.create_task(self._keep_lease(), name="cluster-lease"),
            asyncio.create_task(self._reap_forever(), name="cluster-reaper"),
        ]
        log.info("node %s joined the cluster (lease %d ms)", self.node_id, self.lease_ms)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.delivery.stop_rebuilding()
        # A clean exit frees what cannot be resumed at once instead of leaving it to the reaper,
        # and leaves the held sessions to any node's sweep. If anything could not be freed, the
        # node stays listed and its lapsing lease hands it to the reaper.
        with contextlib.suppress(RedisError, OSError, SignalingError):
            for peer_id in self.delivery.local_peers():
                await self.hub.dropped(peer_id)  # resumable: held; the others end
            freed = [await self.hub.disconnect(peer_id) for peer_id in await self.sessions.attached_here()]
            if all(freed) and not await self.sessions.depart():
                await self.client.srem(self._key("nodes"), self.node_id)
                await self.client.delete(self._key("node", self.node_id, "alive"))

    async def _keep_lease(self) -> None:
        alive = self._key("node", self.node_id, "alive")
        first = True
        while True:
            try:
                renewed = await self.client.set(alive, PROTOCOL, xx=True, px=self.lease_ms)
                if not renewed:
                    # Joining, or Redis lost what it held (restarted empty, or this node was
                    # presumed dead): the sessions' epoch and key, before clients come back.
                    await self.sessions.start()
                    await self._share_key()
                    await self.client.set(alive, PROTOCOL, px=self.lease_ms)
                    if not first:
                        log.warning(
                            "node %s lost its lease: evicting local peers so they resume", self.node_id
                        )
                        self.delivery.replica.lost()  # Redis numbers changes afresh
                        # Resumed before this node listens again, a session would miss what
                        # is published for it meanwhile.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.subscribed.wait(), self.lease_ms / 1000)
                        await self.delivery.evict_all("shared state was lost")
                # Every time: a reaper that finished late may have taken this node off the list.
                await self.client.sadd(self._key("nodes"), self.node_id)
                first = False
                self.redis_ok = True
                await self.reconcile()
                await self._check_view()
            except (RedisError, OSError, SignalingError) as exc:
                if self.redis_ok:
                    log.warning("node %s cannot reach Redis: %s", self.node_id, exc)
                self.redis_ok = False
            await asyncio.sleep(self.interval)

    async def _share_key(self) -> None:
        """Without SESSION_SECRET, every node signs sessions with the key Redis holds: the first
        node's, offered again by the nodes after Redis lost it."""
        if self.keys.shared:
            return
        name = self._key("session-key")
        await self.client.set(name, self.keys.offer(), nx=True)
        agreed = await self.client.get(name)
        if agreed is not None:
            self.keys.use(as_text(agreed))

    async def _check_view(self) -> None:
        """Route from the view only while every live node sends notices (see `silent_nodes`): a
        view in use is dropped when one appears; one not in use is rebuilt, which looks first."""
        replica = self.delivery.replica
        if not replica.synced:
            if self.subscribed.is_set():
                self.delivery.rebuild_view()
        elif silent := await self.delivery.silent_nodes():
            log.warning("nodes %s send no notices (an older version): routing through Redis", silent)
            replica.lost()

    async def reconcile(self) -> None:
        """Remove from the shared state this node's peers that are no longer connected to it:
        removals that failed while Redis was unreachable are retried here. (Held sessions wait
        for their owners; the sweep ends them.)"""
        # A peer between its connection and Redis's account of it (being held, or resumed here)
        # looks like one, for a moment: only one seen so in two rounds in a row is freed.
        attached = set(await self.sessions.attached_here())
        missing = attached - set(self.delivery.local_peers())
        for peer_id in missing & self._missing:
            if not self.delivery.holds(peer_id):
                await self.hub.disconnect(peer_id)
        self._missing = missing
        # What peers that ended on other nodes (a sweep there) left in the view.
        self.delivery.replica.view.retain(self.delivery.holds)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reap()
            except (RedisError, OSError, SignalingError) as exc:
                log.debug("reaper skipped a round: %s", exc)

    async def reap(self) -> None:
        """Free the peers of every node whose lease has lapsed; one node does each."""
        for raw in await self.client.smembers(self._key("nodes")):
            node = as_text(raw)
            alive = self._key("node", node, "alive")
            if node == self.node_id or await self.client.exists(alive):
                continue
            if not await self.client.set(self._key("reap", node), self.node_id, nx=True, px=self.lease_ms):
                continue
            # Resumable sessions are held for their owners, who reconnect to another node; the
            # others (Ant Media's) are freed now and announced as lost with their node.
            orphans = await self.sessions.orphans(node)
            log.warning("node %s is gone: its sessions are held, %d peers freed", node, len(orphans))
            for peer_id in orphans:
                # A node that comes back meanwhile keeps what it has (it rebuilds it anyway).
                if await self.client.exists(alive):
                    break
                await self.hub.disconnect(peer_id, reason="node_lost", ending="node_lost")
            else:
                await self._forget(keys=[alive, self._key("nodes")], args=[node])


class Cluster:
    """Everything a node needs to run with Redis, built from the settings and wired to the hub."""

    PREFIX = "sig:"

    def __init__(
        self,
        url: str,
        *,
        limits: PeerLimits,
        lease_seconds: float,
        grace: float,
        buffer_bytes: int,
        keys: SessionKeys,
    ) -> None:
        # Pooled connections die with a Redis restart; retrying on a fresh one hides that from
        # clients once Redis is back.
        # A blocking pool: under a burst (a drain, a reconnect storm) a call waits for a free
        # connection instead of failing once 100 are in use.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=100,
            timeout=5,
            socket_timeout=5,
            socket_connect_timeout=5,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 3),
            retry_on_error=[RedisConnectionError],
        )
        self.client = redis.Redis(connection_pool=pool)
        self.node_id = new_node_id()
        # Each of its connections is opened once and then spoken to directly (see channels).
        channel_pool = ConnectionPool.from_url(
            url, socket_connect_timeout=5, client_name=channels.client_name(self.node_id)
        )
        replica = Replica(self.node_id)
        self.sessions = RedisSessions(
            self.client,
            node_id=self.node_id,
            grace=grace,
            buffer_bytes=buffer_bytes,
            prefix=self.PREFIX,
            replica=replica,
        )
        self.delivery = ClusterDelivery(
            self.client, channel_pool, self.node_id, self.PREFIX, self.sessions, replica
        )
        self.store = RedisStore(
            self.client, limits=limits, prefix=self.PREFIX, node_id=self.node_id, replica=replica
        )
        self.delivery.load = self.store.load
        self.keys = keys
        self.lease_seconds = lease_seconds
        self.node: Node | None = None

    def bind(self, hub: Hub) -> None:
        self.node = Node(
            self.client,
            hub,
            self.delivery,
            self.sessions,
            self.keys,
            lease_seconds=self.lease_seconds,
            prefix=self.PREFIX,
        )

    @property
    def ready(self) -> bool:
        return self.node is not None and self.node.ready

    async def lifecycle(self, app: object) -> AsyncIterator[None]:
        """aiohttp cleanup context: join the cluster on start-up, leave it cleanly on shutdown."""
        assert self.node is not None, "bind() the hub first"
        await self.node.start()
        yield
        await self.node.stop()
        await self.client.aclose()
