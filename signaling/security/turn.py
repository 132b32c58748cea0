"""ICE servers for clients, with time-limited TURN credentials in the TURN REST scheme that
coturn's `use-auth-secret` checks: username `<expiry>:<user id>`, credential the base64
HMAC-SHA1 of the username under the shared secret.

Several secrets may be configured for rotation: the first signs, and coturn is given all of them
until the old one is retired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def turn_credentials(secret: str, user: str, expires_at: int) -> tuple[str, str]:
    username = f"{expires_at}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Issued:
    servers: list[dict[str, Any]]
    expires_at: float  # math.inf when nothing in it expires


class IceServers:
    def __init__(
        self,
        static: Sequence[dict[str, Any]],
        *,
        turn_urls: Sequence[str] = (),
        secrets: Sequence[str] = (),
        ttl: float = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._static = [dict(server) for server in static]
        self._turn_urls = list(turn_urls)
        self._secret = secrets[0] if secrets else None
        self.ttl = ttl
        self._clock = clock

    @property
    def expiring(self) -> bool:
        """Whether issued servers carry credentials that must be refreshed."""
        return bool(self._turn_urls and self._secret)

    def issue(self, user: str) -> Issued:
        if not self.expiring:
            return Issued([dict(server) for server in self._static], math.inf)
        assert self._secret is not None
        expires_at = int(self._clock() + self.ttl)
        # ':' separates the expiry from the user id in the username; keep it out of the id.
        username, credential = turn_credentials(self._secret, user.replace(":", "_"), expires_at)
        turn = {"urls": list(self._turn_urls), "username": username, "credential": credential}
        return Issued([*(dict(server) for server in self._static), turn], expires_at)

    def due(self, expires_at: float) -> bool:
        """Whether credentials expiring then should be replaced now (in their last quarter)."""
        return expires_at - self._clock() < self.ttl / 4
