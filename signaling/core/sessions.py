"""Sessions: a peer outlives its connection.

A session is a peer id and what the Store says it holds (rooms, streams, metadata). When its
connection drops without saying goodbye, the session is *held* for a grace period: nobody is told
anything, and messages sent to it are kept, bounded and in order, for the connection that resumes
it. If none does in time, it ends and the others hear that the peer left, as they always did.

A session ends at once, with no grace, when its owner says so (an explicit disconnect), when an
operator or its token removes it, or when more is sent to it while held than it may keep. An ended
session is remembered for a grace period, so that a late resume is told why it cannot be.

`SessionStore` is the seam, like `Store`: `MemorySessions` serves one process; a cluster keeps
sessions in Redis so that one held on a node that died resumes on another.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from signaling.core.messages import Outbound

# Why a session ended, as a later resume is told: "closed" (by its owner), "kicked" (an
# operator), "revoked" (its token expired or no longer covers it), "expired" (not resumed within
# the grace), "node_lost" (not resumed within the grace after its node died), "overflow" (more was
# sent to it while held than it may keep).
Ending = Literal["closed", "kicked", "revoked", "expired", "node_lost", "overflow"]
Found = Literal["kept", "unknown", "closed", "kicked", "revoked", "expired", "node_lost", "overflow"]


class Resumption(NamedTuple):
    """What a resume found. `kept`: the session, attached again, with the messages held for it;
    `placeholder`: it was rebuilt from other peers' claims after a restart and its owner's own
    claims complete it."""

    found: Found
    messages: tuple[Outbound, ...] = ()
    placeholder: bool = False


class SessionStore(Protocol):
    grace: float

    async def open(self, peer_id: str, resumable: bool = True) -> None:
        """A fresh session, attached to a connection (one that cannot resume is never held)."""

    async def hold(self, peer_id: str) -> bool:
        """Its connection dropped: hold it for the grace. False when it cannot be held (grace 0,
        or it is not attached), and so ends now."""

    async def keep(self, peer_id: str, message: Outbound) -> bool:
        """Keep a message for a held session; False if the peer has no held session."""

    async def resume(self, peer_id: str) -> Resumption:
        """Attach the session again and take what was kept for it."""

    async def restore(self, peer_id: str) -> bool:
        """Open a session the store does not know under its old id, for a client rebuilding it
        after a restart: only while the store is younger than the grace (an older session would
        have expired anyway)."""

    async def placeholder(self, peer_id: str) -> bool:
        """Hold a session nobody knows, named by another peer's restore claims, for its owner to
        resume: True if it is such a placeholder now (made, or made before)."""

    async def end(self, peer_id: str, why: Ending) -> None:
        """End the session (the first reason given stands)."""

    async def due(self) -> list[tuple[str, Ending]]:
        """The held sessions whose time is up (grace over, or overflowed), now ended: each is
        handed to one caller only."""


@dataclass
class _Held:
    deadline: float
    placeholder: bool = False
    messages: list[bytes] = field(default_factory=list)  # pickled: only this process reads them
    size: int = 0
    overflowed: bool = False


class MemorySessions:
    def __init__(
        self,
        *,
        grace: float,
        buffer_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace = grace
        self.buffer_bytes = buffer_bytes
        self._clock = clock
        self._started = clock()
        self._attached: set[str] = set()
        self._held: dict[str, _Held] = {}
        self._ended: dict[str, tuple[Ending, float]] = {}  # peer -> why, and until when it is told

    async def open(self, peer_id: str, resumable: bool = True) -> None:
        self._attached.add(peer_id)

    async def hold(self, peer_id: str) -> bool:
        if self.grace <= 0 or peer_id not in self._attached:
            return False
        self._attached.discard(peer_id)
        self._held[peer_id] = _Held(self._clock() + self.grace)
        return True

    async def keep(self, peer_id: str, message: Outbound) -> bool:
        held = self._held.get(peer_id)
        if held is None:
            return False
        if held.overflowed:
            return True  # it ends at the next sweep; nobody will read this
        # Kept as bytes, and counted as such: a message's objects can take many times the size
        # of its JSON (a list of 5,000 empty objects: 18 times).
        kept = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        if held.size + len(kept) > self.buffer_bytes:
            held.overflowed = True
            held.messages.clear()
            held.deadline = self._clock()
            return True
        held.messages.append(kept)
        held.size += len(kept)
        return True

    async def resume(self, peer_id: str) -> Resumption:
        if peer_id in self._attached:
            return Resumption("kept")  # its older connection is let go by the caller
        held = self._held.get(peer_id)
        if held is not None:
            if held.overflowed:
                return Resumption("overflow")  # the sweep ends it and tells the others
            del self._held[peer_id]
            self._attached.add(peer_id)
            return Resumption("kept", tuple(map(pickle.loads, held.messages)), held.placeholder)
        ended = self._ended.get(peer_id)
        return Resumption(ended[0] if ended is not None else "unknown")

    async def restore(self, peer_id: str) -> bool:
        if not self._restorable() or peer_id in self._ended:
            return False
        self._attached.add(peer_id)
        return True

    async def placeholder(self, peer_id: str) -> bool:
        held = self._held.get(peer_id)
        if held is not None:
            return held.placeholder
        if peer_id in self._attached or peer_id in self._ended or not self._restorable():
            return False
        self._held[peer_id] = _Held(self._clock() + self.grace, placeholder=True)
        return True

    async def end(self, peer_id: str, why: Ending) -> None:
        self._attached.discard(peer_id)
        self._held.pop(peer_id, None)
        # The first reason stands: a kicked peer's connection closing after the kick is no news.
        self._ended.setdefault(peer_id, (why, self._clock() + self.grace))

    async def due(self) -> list[tuple[str, Ending]]:
        now = self._clock()
        for peer_id in [p for p, (_, until) in self._ended.items() if until <= now]:
            del self._ended[peer_id]
        ended: list[tuple[str, Ending]] = [
            (peer_id, "overflow" if held.overflowed else "expired")
            for peer_id, held in self._held.items()
            if held.deadline <= now
        ]
        for peer_id, why in ended:
            await self.end(peer_id, why)
        return ended

    def _restorable(self) -> bool:
        return self._clock() < self._started + self.grace


# What a client says it held, to rebuild its session after the server lost it (a restart).


class RoomClaim(NamedTuple):
    room: str
    metadata: dict[str, object]
    peers: tuple[str, ...]  # the other members it knew


class PublishedClaim(NamedTuple):
    stream_id: str
    room: str | None
    max_viewers: int | None
    viewers: tuple[str, ...]


class PlayingClaim(NamedTuple):
    stream_id: str
    room: str | None
    publisher: str


class Claims(NamedTuple):
    rooms: tuple[RoomClaim, ...] = ()
    published: tuple[PublishedClaim, ...] = ()
    playing: tuple[PlayingClaim, ...] = ()
