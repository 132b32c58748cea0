"""Error codes shared by every transport.

Codes are stable strings: clients branch on them, the README documents them, tests assert them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_PAYLOAD = "invalid_payload"
    VALIDATION_FAILED = "validation_failed"
    UNKNOWN_EVENT = "unknown_event"
    NOT_JOINED = "not_joined"
    NOT_IN_ROOM = "not_in_room"
    ALREADY_JOINED = "already_joined"
    ROOM_FULL = "room_full"
    UNKNOWN_TARGET = "unknown_target"
    STREAM_IN_USE = "stream_in_use"
    ALREADY_PUBLISHING = "already_publishing"
    NO_SUCH_STREAM = "no_such_stream"
    ALREADY_PLAYING = "already_playing"
    NOT_STREAMING = "not_streaming"
    VIEWER_LIMIT_REACHED = "viewer_limit_reached"
    TOO_MANY_ROOMS = "too_many_rooms"
    TOO_MANY_STREAMS = "too_many_streams"
    ROOM_MODE_CONFLICT = "room_mode_conflict"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SESSION_EXPIRED = "session_expired"
    SESSION_ENDED = "session_ended"
    SESSION_OVERFLOW = "session_overflow"
    INVALID_SESSION = "invalid_session"
    SESSION_IN_USE = "session_in_use"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL_ERROR = "internal_error"


class SignalingError(Exception):
    """A request the server refuses; carries what the client is told."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.fields is not None:
            body["fields"] = self.fields
        return body

    def __repr__(self) -> str:
        return f"SignalingError({self.code!s}, {self.message!r})"
