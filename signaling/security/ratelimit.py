"""Abuse limits: token buckets per connection and kind of message, and connections per address.

Pure bookkeeping with an injectable clock, so that the decisions are unit-tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from signaling.core.errors import ErrorCode, SignalingError

# relay: offers, answers, candidates, messages (bursty during negotiation);
# control: joins, leaves, publishes (rare); query: pings and information requests.
Kind = Literal["relay", "control", "query"]


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int


@dataclass(frozen=True)
class RateLimits:
    relay: Rate = Rate(100, 400)
    control: Rate = Rate(5, 20)
    query: Rate = Rate(10, 40)
    # Refused messages a connection may send before it is disconnected as a flooder.
    strikes: int = 50


# Slotted: a bucket is consulted for every message a client sends.
@dataclass(slots=True)
class TokenBucket:
    rate: Rate
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        rate = self.rate
        tokens = self.tokens + (now - self.updated) * rate.per_second
        if tokens > rate.burst:
            tokens = rate.burst
        self.updated = now
        if tokens >= 1:
            self.tokens = tokens - 1
            return True
        self.tokens = tokens
        return False

    def full(self, now: float) -> bool:
        """Whether it has refilled to its burst: as if it had never been touched."""
        return self.tokens + (now - self.updated) * self.rate.per_second >= self.rate.burst


@dataclass(slots=True)
class ConnectionLimiter:
    """The buckets of one connection."""

    limits: RateLimits
    clock: Callable[[], float] = time.monotonic
    strikes: int = 0
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def check(self, kind: Kind) -> None:
        """Raise `rate_limited` when this kind of message comes too fast."""
        now = self.clock()
        bucket = self._buckets.get(kind)
        if bucket is None:
            rate: Rate = getattr(self.limits, kind)
            bucket = self._buckets[kind] = TokenBucket(rate, rate.burst, now)
        if not bucket.take(now):
            self.strikes += 1
            raise SignalingError(
                ErrorCode.RATE_LIMITED,
                f"too many {kind} messages: at most {bucket.rate.per_second:g} per second "
                f"(bursts of {bucket.rate.burst}); keep going and the connection is closed",
            )

    @property
    def flooding(self) -> bool:
        return self.strikes >= self.limits.strikes


@dataclass
class Cooldowns:
    """Addresses that may not connect for a while: one of their connections was cut off for
    flooding, and reconnecting at once would only start the flood again."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    _until: dict[str, float] = field(default_factory=dict)

    def start(self, address: str) -> None:
        if self.seconds > 0:
            now = self.clock()
            if len(self._until) >= 1024:  # forget the ones that are over, so the table stays small
                self._until = {a: until for a, until in self._until.items() if until > now}
            self._until[address] = now + self.seconds

    def remaining(self, address: str) -> float:
        until = self._until.get(address)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._until[address]
        return max(0.0, left)


@dataclass
class AddressLimiter:
    """Live connections per client address, across both transports."""

    per_address: int
    _counts: dict[str, int] = field(default_factory=dict)

    def acquire(self, address: str) -> bool:
        count = self._counts.get(address, 0)
        if count >= self.per_address:
            return False
        self._counts[address] = count + 1
        return True

    def available(self, address: str) -> int:
        return max(0, self.per_address - self._counts.get(address, 0))

    def release(self, address: str) -> None:
        count = self._counts.get(address, 0) - 1
        if count > 0:
            self._counts[address] = count
        else:
            self._counts.pop(address, None)
