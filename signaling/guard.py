"""What both transports check for every connection and message: connections per address, and
message rates. One `Session` per connection carries its share of that state."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from signaling.errors import ErrorCode, SignalingError
from signaling.ratelimit import AddressLimiter, ConnectionLimiter, Kind, RateLimits

log = logging.getLogger("signaling.guard")


@dataclass
class Session:
    address: str
    transport: str
    limiter: ConnectionLimiter
    closed: bool = field(default=False)


class Guard:
    def __init__(self, *, rate_limits: RateLimits, connections_per_address: int) -> None:
        self.rate_limits = rate_limits
        self._addresses = AddressLimiter(connections_per_address)

    def open(self, address: str, transport: str) -> Session:
        """Admit a new connection, or raise `too_many_connections`."""
        if not self._addresses.acquire(address):
            raise SignalingError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"too many connections from {address} ({self._addresses.per_address} at most)",
            )
        return Session(address, transport, ConnectionLimiter(self.rate_limits))

    def close(self, session: Session) -> None:
        if not session.closed:
            session.closed = True
            self._addresses.release(session.address)

    def admit(self, session: Session, kind: Kind) -> None:
        """Let one message through, or raise `rate_limited`."""
        session.limiter.check(kind)
