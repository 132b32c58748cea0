"""This node's view of the links that concern its peers (signaling.core.view), kept current from
the State notices on its channel, and trusted only while it is known to be whole.

- A change made here waits for its own notice before it is answered (`caught_up`): what a peer of
  this node has just done is in the view before the peer can act on the answer.
- The view is whole from the moment it is rebuilt (`rebuild`: everything this node's peers are in,
  sent by Redis down the same channel, after the subscription) until a notice may have been
  missed: the subscription broke, a notice did not come back in time, or a node that does not
  send notices (an older version, during a rolling deploy) is in the cluster. Until the next
  rebuild, routing asks Redis, as it did before views.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable
from itertools import count

from signaling.core.view import Notice, RouteView

log = logging.getLogger(__name__)

# The version of the notice protocol a node speaks, written as its lease's value: nodes route
# from their views only while every live node sends notices (speaks this version or later).
PROTOCOL = 2


class Replica:
    def __init__(self, node_id: str, *, timeout: float = 2.0) -> None:
        self.view = RouteView(node_id)
        self.timeout = timeout
        self._synced = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = count()  # ties in the heap never compare futures
        self._generation = 0  # one more each time the view is lost
        self._rebuilding = False

    @property
    def synced(self) -> bool:
        return self._synced

    def received(self, notice: Notice) -> None:
        self.view.apply(notice)
        while self._waiting and self._waiting[0][0] <= self.view.seen:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)

    async def caught_up(self, seq: int) -> None:
        """Wait until the notice of the change numbered `seq` has been applied here."""
        # While a rebuild is under way too: one that completes before this change's notice is
        # applied would trust a view without it.
        if (self._synced or self._rebuilding) and seq and not await self._reached(seq):
            log.warning("node view: a change's notice did not come back in time; routing through Redis")
            self.lost()

    def lost(self) -> None:
        """A notice may have been missed: stop trusting the view until it is rebuilt. (Redis
        numbers changes afresh after a restart: what waits is let go.)"""
        self._synced = False
        self._generation += 1
        self.view.reset()
        for _, _, future in self._waiting:
            if not future.done():
                future.set_result(None)
        self._waiting.clear()

    async def rebuild(self, load: Callable[[], Awaitable[int]]) -> bool:
        """Start over from what `load` has Redis send down the channel (the subscription must be
        up); whole again once that has arrived."""
        self.lost()
        generation = self._generation
        self._rebuilding = True
        try:
            if await self._reached(await load()) and generation == self._generation:
                self._synced = True
        finally:
            self._rebuilding = False
        return self._synced

    def home(self, peer_id: str) -> str | None:
        return self.view.home(peer_id) if self._synced else None

    def allows(self, sender: str, target: str) -> bool:
        """Whether a relay that came from another node may reach `target`, one of this node's
        peers: the view holds every link of its own peers, as of the relay's publication."""
        return not self._synced or self.view.linked(sender, target)

    async def _reached(self, seq: int) -> bool:
        if self.view.seen >= seq:
            return True
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (seq, next(self._order), future))
        try:
            await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            return False
        return True
