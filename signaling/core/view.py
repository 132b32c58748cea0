"""A cluster node's own copy of the links that concern its peers, so that it routes a relay
without asking the shared store.

The shared store stays the one place where membership changes, each change one atomic step with
its caps and seats. Every change then tells the nodes concerned (those of the peers in what it
touched, before and after, and the node that made it) the new state of each room and stream it
touched, in full; a node applies them in the order they were made, which its inbox keeps. So a
node knows, for every room and stream one of its peers is in, who else is in it and on which
node: a relay between two peers of one node is decided here, and one to another node's peer is
one publish on that node's channel. Whatever it does not know is asked of the shared store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from signaling.core.store import Links, StreamLinks

Placed = tuple[str, str]  # a peer and the node its session is on ("" if none)


class StreamState(NamedTuple):
    publisher: Placed
    room: str | None
    max_viewers: int | None
    viewers: list[Placed]


class Notice(NamedTuple):
    """What one change made things: the rooms and streams it touched, in full (a stream that
    ended is None), stamped with the change's place in the shared store's order."""

    seq: int
    rooms: dict[str, list[Placed]]
    streams: dict[str, StreamState | None]


class RouteView(Links[str]):
    """Links whose seats are the node each member's session is on. It holds only what concerns a
    peer of this node: what no peer here is in any more is forgotten."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node
        self.seen = 0  # the latest change applied
        self._homes: dict[str, str] = {}

    def reset(self) -> None:
        """Forget everything: what follows rebuilds it."""
        Links.__init__(self)
        self.seen = 0
        self._homes.clear()

    def apply(self, notice: Notice) -> None:
        for room, members in notice.rooms.items():
            self._set_room(room, members)
        for key, stream in notice.streams.items():
            self._set_stream(key, stream)
        self.seen = max(self.seen, notice.seq)

    def home(self, peer_id: str) -> str | None:
        """The node the peer's session is on, as far as this view knows."""
        return self._homes.get(peer_id) or None

    def here(self, peer_id: str) -> bool:
        """Whether this view answers for the peer: one of this node's, in something."""
        return self._homes.get(peer_id) == self.node

    def linked(self, sender: str, target: str) -> bool:
        """Whether the two share a room or a stream."""
        return any(target in self._rooms[room] for room in self._peer_rooms.get(sender, {})) or any(
            self._linked_by_stream(sender, target, key) for key in self.streams_of(sender)
        )

    def streams_of(self, peer_id: str) -> Iterable[str]:
        yield from self._peer_published.get(peer_id, {})
        yield from self._peer_playing.get(peer_id, {})

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Forget the rooms and streams none of whose peers `keep` names (this node's peers): what
        a peer that ended elsewhere left behind here."""
        for room, members in list(self._rooms.items()):
            if not any(map(keep, members)):
                self._set_room(room, [])
        for key, stream in list(self._streams.items()):
            if not keep(stream.publisher) and not any(map(keep, stream.viewers)):
                self._set_stream(key, None)

    def _set_room(self, room: str, members: list[Placed]) -> None:
        if not self._concerns(members):
            members = []  # none of this node's peers is in it: nothing here needs it
        before = self._rooms.pop(room, {})
        now = dict(members)
        for peer_id in before.keys() - now.keys():
            self._unindex(self._peer_rooms, peer_id, room)
        if now:
            self._rooms[room] = now
        for peer_id, node in members:
            self._homes[peer_id] = node
            self._peer_rooms.setdefault(peer_id, {})[room] = None

    def _set_stream(self, key: str, stream: StreamState | None) -> None:
        if stream is not None and not self._concerns([stream.publisher, *stream.viewers]):
            stream = None
        before = self._streams.pop(key, None)
        if before is not None:
            if stream is None or stream.publisher[0] != before.publisher:
                self._unindex(self._peer_published, before.publisher, key)
            staying = {viewer for viewer, _ in stream.viewers} if stream is not None else set()
            for viewer in before.viewers.keys() - staying:
                self._unindex(self._peer_playing, viewer, key)
        if stream is None:
            return
        (publisher, _), viewers = stream.publisher, stream.viewers
        self._streams[key] = StreamLinks(
            publisher, stream.room, stream.max_viewers, dict.fromkeys(viewer for viewer, _ in viewers)
        )
        for peer_id, home in [stream.publisher, *viewers]:
            self._homes[peer_id] = home
        self._peer_published.setdefault(publisher, {})[key] = None
        for viewer, _ in viewers:
            self._peer_playing.setdefault(viewer, {})[key] = None

    def _concerns(self, placed: list[Placed]) -> bool:
        return any(node == self.node for _, node in placed)

    def _unindex(self, index: dict[str, dict[str, None]], peer_id: str, key: str) -> None:
        keys = index.get(peer_id, {})
        keys.pop(key, None)
        if not keys:
            index.pop(peer_id, None)
        if not any(peer_id in held for held in (self._peer_rooms, self._peer_published, self._peer_playing)):
            self._homes.pop(peer_id, None)
