"""Inbound events (socket.io) and commands (Ant Media): one row each, and the one pipeline both
transports run them through.

A row names the event, its handler, how fast it may come and what grant it needs; its schema is
the one of that name the transport built from the limits. The pipeline admits (rate limits),
parses, authorizes and hands it to the handler; every refusal is a SignalingError, which the
transport words in its own protocol.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from signaling.core.errors import SignalingError
from signaling.security.auth import Action
from signaling.security.guard import Guard, Session
from signaling.security.ratelimit import ConnectionLimiter, Kind
from signaling.transports.schemas import Loader, parse

Owner = TypeVar("Owner")  # the transport whose method handles the event
Peer = TypeVar("Peer")  # how that transport names the sender
Result = TypeVar("Result")  # what its handlers return

# "open": no live token needed (giving things up, pings); "token": any live grant; a claim and
# the field naming the room or stream: a live grant that covers it.
Access = Literal["open", "token"] | tuple[Action, str]


@dataclass(frozen=True)
class Event(Generic[Owner, Peer, Result]):
    name: str
    handler: Callable[[Owner, Peer, dict[str, Any]], Awaitable[Result]]
    kind: Kind = "control"
    access: Access = "token"
    fields: bool = True  # False: takes no payload to parse (Ant Media's ping, getIceServerConfig)


class Pipeline(Generic[Owner, Peer, Result]):
    def __init__(
        self,
        owner: Owner,
        events: tuple[Event[Owner, Peer, Result], ...],
        schemas: Mapping[str, Loader],
        guard: Guard,
        on_flood: Callable[[Peer], None],
    ) -> None:
        missing = {e.name for e in events if e.fields} ^ set(schemas)
        assert not missing, f"events and schemas do not match: {sorted(missing)}"
        self._owner = owner
        self._events = {event.name: event for event in events}
        self._schemas = schemas
        self._guard = guard
        self._on_flood = on_flood

    @property
    def names(self) -> list[str]:
        return list(self._events)

    def admit(self, peer: Peer, session: Session, kind: Kind) -> None:
        """Count one message against the sender's rate; a sender that keeps flooding is cut off."""
        self.take(peer, session.limiter, session.address, kind)

    def take(self, peer: Peer, limiter: ConnectionLimiter, address: str, kind: Kind) -> None:
        """`admit`, for a connection whose session is not open yet (a socket.io connect)."""
        try:
            self._guard.take(limiter, address, kind)
        except SignalingError:
            if limiter.flooding:
                self._on_flood(peer)
            raise

    async def run(
        self,
        peer: Peer,
        session: Session,
        name: str,
        payload: tuple[Any, ...],
        unknown: Callable[[str], SignalingError],
        token: str | None = None,
    ) -> Result:
        """Admit, parse, authorize and handle one event; `token` is one sent with it."""
        event = self._events.get(name)
        self.admit(peer, session, event.kind if event is not None else "control")
        if event is None:
            raise unknown(name)
        fields = parse(self._schemas[name], name, payload) if event.fields else {}
        if event.access != "open":
            if token:
                self._guard.authenticate(session, token, replace=False)
            if event.access == "token":
                self._guard.require_grant(session)
            else:
                action, field = event.access
                self._guard.authorize(session, action, fields[field])
        return await event.handler(self._owner, peer, fields)
