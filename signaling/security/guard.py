"""What both transports check and count for every connection and message: connections per
address, message rates, and the metrics of both. One `Session` per connection carries its share."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from signaling.core.errors import ErrorCode, SignalingError
from signaling.operations.metrics import Metrics
from signaling.security.auth import Action, Grant, TokenVerifier
from signaling.security.ratelimit import AddressLimiter, ConnectionLimiter, Cooldowns, Kind, RateLimits

log = logging.getLogger(__name__)


@dataclass
class Session:
    address: str
    transport: str
    limiter: ConnectionLimiter
    grant: Grant | None = None
    closed: bool = field(default=False)
    # Called when the grant expires without having been replaced (see Guard.watch_expiry).
    on_expiry: Callable[[], object] | None = None
    _expiry: asyncio.TimerHandle | None = None

    def user(self, peer_id: str) -> str:
        """Who TURN credentials are for: the token's subject, else the peer."""
        return self.grant.subject if self.grant is not None and self.grant.subject else peer_id


class Guard:
    def __init__(
        self,
        *,
        rate_limits: RateLimits,
        connections_per_address: int,
        metrics: Metrics,
        verifier: TokenVerifier | None = None,
        flood_cooldown: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rate_limits = rate_limits
        self.metrics = metrics
        self.verifier = verifier
        self.clock = clock  # wall-clock seconds, like tokens' `exp`
        self._addresses = AddressLimiter(connections_per_address)
        self._cooldowns = Cooldowns(flood_cooldown)

    @property
    def auth_required(self) -> bool:
        return self.verifier is not None

    def reserve(self, address: str, transport: str) -> None:
        """Take one of the address's connection slots (at the lowest level the transport has:
        engine.io sessions for socket.io), or raise `too_many_connections` (`rate_limited` while
        the address cools down after a flood)."""
        wait = self._cooldowns.remaining(address)
        if wait > 0:
            self.refused(transport, ErrorCode.RATE_LIMITED)
            raise SignalingError(
                ErrorCode.RATE_LIMITED,
                f"a connection from {address} was closed for flooding; connect again in {wait:.0f} s",
            )
        if not self._addresses.acquire(address):
            self.refused(transport, ErrorCode.TOO_MANY_CONNECTIONS)
            raise SignalingError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"too many connections from {address} ({self._addresses.per_address} at most)",
            )

    def release(self, address: str) -> None:
        self._addresses.release(address)

    def open(self, address: str, transport: str, token: str | None = None) -> Session:
        """Start a session for a connection whose slot is reserved; raise `unauthorized` for a
        bad token (one given here must be valid)."""
        try:
            grant = self.verifier.verify(token) if self.verifier is not None and token is not None else None
        except SignalingError as error:
            self.refused(transport, error.code)
            raise
        self.metrics.connections.labels(transport).inc()
        self.metrics.connections_opened.labels(transport).inc()
        return Session(address, transport, ConnectionLimiter(self.rate_limits), grant)

    def close(self, session: Session) -> None:
        if not session.closed:
            session.closed = True
            self.metrics.connections.labels(session.transport).dec()
        if session._expiry is not None:
            session._expiry.cancel()

    def watch_expiry(self, session: Session, on_expiry: Callable[[], object]) -> None:
        """Call `on_expiry` when the session's grant expires (each new grant moves the time)."""
        session.on_expiry = on_expiry
        self._arm(session)

    def _arm(self, session: Session) -> None:
        if session._expiry is not None:
            session._expiry.cancel()
            session._expiry = None
        if session.grant is None or session.on_expiry is None or session.closed:
            return
        delay = max(0.0, session.grant.expires_at - self.clock())
        session._expiry = asyncio.get_running_loop().call_later(delay, self._expired, session)

    def _expired(self, session: Session) -> None:
        session._expiry = None
        if session.grant is not None and session.on_expiry is not None and not session.closed:
            if self.clock() >= session.grant.expires_at:
                session.on_expiry()
            else:  # the clock the timer ran on was ahead of ours: wait for the rest
                self._arm(session)

    def refused(self, transport: str, code: ErrorCode) -> None:
        self.metrics.errors.labels(str(code), transport).inc()

    def authenticate(self, session: Session, token: str) -> bool:
        """Replace the connection's grant, e.g. with a fresh token before the old one expires;
        True when the grant changed (what it covers may have, too)."""
        if self.verifier is None:
            return False
        grant = self.verifier.verify(token)
        if grant == session.grant:
            return False
        session.grant = grant
        self._arm(session)
        return True

    def require_grant(self, session: Session) -> Grant | None:
        """With auth on, raise unless the connection holds a grant that has not expired (every
        message needs one, not only joins, so an expired token stops relaying too); return it."""
        if self.verifier is None:
            return None
        if session.grant is None:
            raise SignalingError(ErrorCode.UNAUTHORIZED, "a token is required")
        if self.clock() >= session.grant.expires_at:
            raise SignalingError(ErrorCode.UNAUTHORIZED, "the token has expired; authenticate again")
        return session.grant

    def authorize(self, session: Session, action: Action, name: str) -> None:
        """Raise unless the connection may do `action` on `name`; a no-op without auth."""
        grant = self.require_grant(session)
        if grant is not None:
            grant.check(action, name, self.clock())

    def admit(self, session: Session, kind: Kind) -> None:
        """Let one message through, or raise `rate_limited`; a connection that keeps flooding
        (the transport then closes it) puts its address in a cooldown."""
        try:
            session.limiter.check(kind)
        except SignalingError:
            if session.limiter.flooding:
                self._cooldowns.start(session.address)
            raise
