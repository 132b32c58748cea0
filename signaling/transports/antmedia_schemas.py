"""Schemas for the Ant Media WebSocket commands, on the same schema layer as the socket.io events.

Ant Media's SDKs send fields this server has no use for (`token`, `subscriberCode`, `video`, ...)
and add new ones between versions, so unknown fields are ignored here rather than refused; every
field the server reads is still typed and bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate, validates_schema

from signaling.core.limits import (
    DEFINITION_MAX,
    MLINE_INDEX_MAX,
    NAME_MAX,
    ROOM_PATTERN,
    SDP_MID_MAX,
    Limits,
)
from signaling.transports.schemas import (
    FastPath,
    JsonValue,
    Loader,
    StrictString,
    is_text,
    require_mline,
    room_field,
    stream_id_field,
)


class Command(Schema):
    class Meta:
        unknown = EXCLUDE


def _schema(name: str, fields_: Mapping[str, fields.Field[Any]], base: type[Command] = Command) -> Schema:
    return base.from_dict(dict(fields_), name=name)()


class TakeCandidate(Command):
    @validates_schema
    def _mline(self, data: dict[str, Any], **kwargs: Any) -> None:
        require_mline(data["candidate"], data["id"], data["label"], "label")


def _configuration_check(max_sdp: int) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    def accept(command: dict[str, Any]) -> dict[str, Any] | None:
        stream, kind, sdp = command.get("streamId"), command.get("type"), command.get("sdp")
        if type(stream) is not str or not ROOM_PATTERN.match(stream) or kind not in ("offer", "answer"):
            return None
        if type(sdp) is not str or not 1 <= len(sdp) <= max_sdp or not is_text(sdp):
            return None
        return {"streamId": stream, "type": kind, "sdp": sdp}

    return accept


def _candidate_check(max_chars: int) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    def accept(command: dict[str, Any]) -> dict[str, Any] | None:
        stream, text = command.get("streamId"), command.get("candidate")
        label, mid = command.get("label"), command.get("id")
        if type(stream) is not str or not ROOM_PATTERN.match(stream):
            return None
        if type(text) is not str or len(text) > max_chars or not is_text(text):
            return None
        if label is not None and (type(label) is not int or not 0 <= label <= MLINE_INDEX_MAX):
            return None
        if mid is not None and (type(mid) is not str or len(mid) > SDP_MID_MAX or not is_text(mid)):
            return None
        if text and label is None and mid is None:
            return None
        return {"streamId": stream, "label": label, "id": mid, "candidate": text}

    return accept


def _short(**kwargs: Any) -> StrictString:
    """A string the server reads but does not check as a name (an SDK's mode, a track): as long
    as a name at most, since it may be kept and shown to others."""
    return StrictString(validate=validate.Length(max=NAME_MAX), **kwargs)


def build_command_schemas(limits: Limits) -> dict[str, Loader]:
    """One schema per command the server handles; commands without fields need none. The
    commands a call sends by the dozen get a fast path (see signaling.transports.schemas.FastPath)."""
    stream: dict[str, fields.Field[Any]] = {"streamId": stream_id_field(required=True)}
    return {
        "join": _schema("JoinCommand", {**stream, "mode": _short(load_default=None)}),
        "leave": _schema("LeaveCommand", stream),
        "publish": _schema("PublishCommand", {**stream, "mainTrack": _short(load_default=None)}),
        "play": _schema("PlayCommand", {**stream, "room": _short(load_default=None)}),
        "stop": _schema("StopCommand", stream),
        "joinRoom": _schema(
            "JoinRoomCommand", {"room": room_field(required=True), "streamId": stream_id_field()}
        ),
        "leaveFromRoom": _schema("LeaveFromRoomCommand", {"room": room_field(required=True)}),
        "getRoomInfo": _schema(
            "GetRoomInfoCommand", {"room": room_field(required=True), "streamId": _short()}
        ),
        "getStreamInfo": _schema("GetStreamInfoCommand", stream),
        "takeConfiguration": FastPath(
            _schema(
                "TakeConfigurationCommand",
                {
                    **stream,
                    "type": StrictString(required=True, validate=validate.OneOf(["offer", "answer"])),
                    "sdp": StrictString(required=True, validate=validate.Length(min=1, max=limits.sdp_chars)),
                },
            ),
            _configuration_check(limits.sdp_chars),
        ),
        "takeCandidate": FastPath(
            _schema(
                "TakeCandidateCommand",
                {
                    **stream,
                    "label": fields.Integer(
                        strict=True,
                        load_default=None,
                        allow_none=True,
                        validate=validate.Range(min=0, max=MLINE_INDEX_MAX),
                    ),
                    "id": StrictString(
                        load_default=None, allow_none=True, validate=validate.Length(max=SDP_MID_MAX)
                    ),
                    "candidate": StrictString(
                        required=True, validate=validate.Length(max=limits.candidate_chars)
                    ),
                },
                base=TakeCandidate,
            ),
            _candidate_check(limits.candidate_chars),
        ),
        "peerMessageCommand": _schema(
            "PeerMessageCommand",
            {
                **stream,
                "definition": StrictString(load_default=None, validate=validate.Length(max=DEFINITION_MAX)),
                "data": JsonValue(max_bytes=limits.peer_message_bytes, load_default=None, allow_none=True),
            },
        ),
    }
