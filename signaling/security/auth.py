"""Optional JWT authentication (PyJWT): who a client is, and which rooms and streams it may use.

A token is an HS256 JWT signed with AUTH_JWT_SECRET, or an RS256/ES256 JWT checked against
AUTH_JWT_PUBLIC_KEY. Its claims grant access with shell-style patterns (`*`, `?`):

    {"sub": "user-42", "exp": 1767225600,
     "rooms": ["team-*"], "publish": ["user-42-*"], "play": ["*"]}

`exp` is required; a claim that is missing grants nothing of its kind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

import jwt

from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.limits import TOKEN_MAX

Action = Literal["rooms", "publish", "play"]
WHAT = {"rooms": "join room", "publish": "publish", "play": "play"}


@dataclass(frozen=True)
class Grant:
    subject: str | None
    expires_at: float
    rooms: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    play: tuple[str, ...] = ()

    def allows(self, action: Action, name: str) -> bool:
        """Whether the token's claims cover `action` on `name` (its expiry aside)."""
        return any(fnmatchcase(name, pattern) for pattern in getattr(self, action))

    def check(self, action: Action, name: str, now: float | None = None) -> None:
        """Raise unless this grant, still valid, allows `action` on `name`."""
        if (now if now is not None else time.time()) >= self.expires_at:
            raise SignalingError(ErrorCode.UNAUTHORIZED, "the token has expired; authenticate again")
        if not self.allows(action, name):
            # Says no more than that: whether the room or stream exists is not the asker's business.
            raise SignalingError(ErrorCode.FORBIDDEN, f"your token does not let you {WHAT[action]} {name!r}")


class TokenVerifier:
    def __init__(self, key: str, algorithms: list[str], audience: str | None = None) -> None:
        self._key = key
        self._algorithms = algorithms
        self._audience = audience

    def verify(self, token: Any) -> Grant:
        if not isinstance(token, str) or not token:
            raise SignalingError(ErrorCode.UNAUTHORIZED, "a token is required")
        if not token.isascii():  # a JWT is base64url and dots; anything else cannot even be parsed
            raise SignalingError(ErrorCode.UNAUTHORIZED, "the token is not valid: not a JWT")
        if len(token) > TOKEN_MAX:  # decoding a huge one costs milliseconds before it is refused
            raise SignalingError(
                ErrorCode.UNAUTHORIZED, f"the token is not valid: over {TOKEN_MAX} characters"
            )
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise SignalingError(ErrorCode.UNAUTHORIZED, "the token has expired") from None
        except jwt.PyJWTError as exc:  # invalid tokens, and keys of the wrong kind for them
            raise SignalingError(ErrorCode.UNAUTHORIZED, f"the token is not valid: {exc}") from None
        try:
            expires_at = float(claims["exp"])
        except (OverflowError, TypeError, ValueError):
            raise SignalingError(
                ErrorCode.UNAUTHORIZED, "the token is not valid: its exp is not a time"
            ) from None
        return Grant(
            subject=str(claims["sub"]) if "sub" in claims else None,
            expires_at=expires_at,
            rooms=_patterns(claims.get("rooms")),
            publish=_patterns(claims.get("publish")),
            play=_patterns(claims.get("play")),
        )


def _patterns(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()
