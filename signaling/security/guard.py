"""What both transports check and count for every connection and message: connections per
address, message rates, and the metrics of both. One `Session` per connection carries its share."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from signaling.core.errors import ErrorCode, SignalingError
from signaling.operations.logs import brief
from signaling.operations.metrics import Metrics
from signaling.security.auth import Action, Grant, TokenVerifier
from signaling.security.ratelimit import AddressLimiter, ConnectionLimiter, Cooldowns, Kind, RateLimits

log = logging.getLogger(__name__)

VERIFIED_KEPT = 8  # tokens whose grant a session remembers, so as not to verify them again
GRANTS_KEPT = 16  # grants one connection may hold (Ant Media's per-stream tokens add up)


@dataclass(slots=True)  # one per connection: slotted, it needs no dict of its own
class Session:
    """One connection's share: its address, its rate buckets, and the grants of the tokens it
    gave (socket.io's `authenticate` replaces them; each Ant Media command's token adds one)."""

    address: str
    transport: str
    limiter: ConnectionLimiter
    grants: list[Grant] = field(default_factory=list)
    closed: bool = field(default=False)
    verified: dict[str, Grant] = field(default_factory=dict)  # tokens it gave, and their grants
    # See Guard.watch_expiry.
    on_expired: Callable[[], Awaitable[None]] | None = None
    on_narrowed: Callable[[], Awaitable[None]] | None = None
    _expiry: asyncio.TimerHandle | None = None

    @property
    def grant(self) -> Grant | None:
        """The latest grant given."""
        return self.grants[-1] if self.grants else None

    def user(self, peer_id: str) -> str:
        """Who TURN credentials are for: the token's subject, else the peer."""
        grant = self.grant
        return grant.subject if grant is not None and grant.subject else peer_id


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
        self.connections_per_address = connections_per_address
        self._addresses = AddressLimiter(connections_per_address)
        self._cooldowns = Cooldowns(flood_cooldown)
        self._tasks: set[asyncio.Task[None]] = set()

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

    def limiter(self) -> ConnectionLimiter:
        return ConnectionLimiter(self.rate_limits)

    def open(
        self, address: str, transport: str, token: str | None = None, limiter: ConnectionLimiter | None = None
    ) -> Session:
        """Start a session for a connection whose slot is reserved, with its own rate buckets or
        `limiter`; raise `unauthorized` for a bad token (one given here must be valid)."""
        try:
            grant = self.verifier.verify(token) if self.verifier is not None and token is not None else None
        except SignalingError as error:
            self.refused(transport, error.code)
            raise
        self.metrics.connections.labels(transport).inc()
        self.metrics.connections_opened.labels(transport).inc()
        grants = [grant] if grant is not None else []
        return Session(address, transport, limiter or self.limiter(), grants)

    def close(self, session: Session) -> None:
        if not session.closed:
            session.closed = True
            self.metrics.connections.labels(session.transport).dec()
        if session._expiry is not None:
            session._expiry.cancel()

    def refused(self, transport: str, code: ErrorCode) -> None:
        self.metrics.errors.labels(str(code), transport).inc()

    def authenticate(self, session: Session, token: str, *, replace: bool = True) -> bool:
        """Take a fresh token: it replaces the session's grants (or, with `replace` False, joins
        those still live). True when what the session may do changed."""
        if self.verifier is None:
            return False
        grant = session.verified.get(token)
        if grant is None:  # an Ant Media SDK sends the same token with command after command
            grant = self.verifier.verify(token)
            if len(session.verified) >= VERIFIED_KEPT:
                session.verified.clear()
            session.verified[token] = grant
        elif self.clock() >= grant.expires_at:  # as the verifier would say of it now
            raise SignalingError(ErrorCode.UNAUTHORIZED, "the token has expired")
        # Expired grants are kept until the expiry timer takes them out, with what they covered.
        kept = [] if replace else [g for g in session.grants if g != grant]
        if len(kept) >= GRANTS_KEPT:
            raise SignalingError(
                ErrorCode.UNAUTHORIZED, f"a connection holds {GRANTS_KEPT} tokens at most; open another"
            )
        grants = [*kept, grant]
        if grants == session.grants:
            return False
        session.grants = grants
        self._arm(session)
        return True

    def require_grant(self, session: Session) -> Grant | None:
        """With auth on, raise unless the connection holds a grant that has not expired (every
        message needs one, not only joins, so an expired token stops relaying too); return it."""
        if self.verifier is None:
            return None
        live = self._live(session)
        if not live:
            if session.grants:
                raise SignalingError(ErrorCode.UNAUTHORIZED, "the token has expired; authenticate again")
            raise SignalingError(ErrorCode.UNAUTHORIZED, "a token is required")
        return live[-1]

    def authorize(self, session: Session, action: Action, name: str) -> None:
        """Raise unless the connection may do `action` on `name`; a no-op without auth."""
        grant = self.require_grant(session)
        if grant is not None and not self.allows(session)(action, name):
            grant.check(action, name, self.clock())  # raises, naming what is not granted

    def allows(self, session: Session) -> Callable[[Action, str], bool]:
        """Whether the session's live grants still cover `action` on a name."""
        live = self._live(session)
        return lambda action, name: any(grant.allows(action, name) for grant in live)

    def watch_expiry(
        self,
        session: Session,
        expired: Callable[[], Awaitable[None]],
        narrowed: Callable[[], Awaitable[None]],
    ) -> None:
        """Run `expired` when the last of the session's grants expires (the session then ends),
        and `narrowed` when one expires while others remain (what they no longer cover ends)."""
        if self.verifier is None:
            return  # without auth no grant ever expires: the callbacks would only take memory
        session.on_expired, session.on_narrowed = expired, narrowed
        self._arm(session)

    def _live(self, session: Session) -> list[Grant]:
        now = self.clock()
        return [grant for grant in session.grants if now < grant.expires_at]

    def _arm(self, session: Session) -> None:
        if session._expiry is not None:
            session._expiry.cancel()
            session._expiry = None
        if not session.grants or session.on_expired is None or session.closed:
            return
        delay = max(0.0, min(grant.expires_at for grant in session.grants) - self.clock())
        session._expiry = asyncio.get_running_loop().call_later(delay, self._expired, session)

    def _expired(self, session: Session) -> None:
        session._expiry = None
        live = self._live(session)
        if session.closed or live == session.grants:
            self._arm(session)  # the timer's clock ran ahead of ours: wait for the rest
            return
        session.grants = live
        handler = session.on_narrowed if live else session.on_expired
        if handler is not None:
            self._background(handler())
        self._arm(session)

    def _background(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception as exc:  # a failure here has nobody to answer to but the log
                log.warning("ending what an expired token granted failed: %s", brief(exc))

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def take(self, limiter: ConnectionLimiter, address: str, kind: Kind) -> None:
        """Take one message of `kind` from `limiter`, or raise `rate_limited`; a connection that
        keeps flooding (the transport then closes it) puts its address in a cooldown."""
        try:
            limiter.check(kind)
        except SignalingError:
            if limiter.flooding:
                self._cooldowns.start(address)
            raise
