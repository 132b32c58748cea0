"""Schemas for the Ant Media WebSocket commands, on the same schema layer as the socket.io events.

Ant Media's SDKs send fields this server has no use for (`token`, `subscriberCode`, `video`, ...)
and add new ones between versions, so unknown fields are ignored here rather than refused; every
field the server reads is still typed and bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate, validates_schema

from signaling.schemas import JsonValue, Limits, StrictString, require_mline, room_field, stream_id_field


class Command(Schema):
    class Meta:
        unknown = EXCLUDE


def _schema(name: str, fields_: Mapping[str, fields.Field[Any]], base: type[Command] = Command) -> Schema:
    return base.from_dict(dict(fields_), name=name)()


class TakeCandidate(Command):
    @validates_schema
    def _mline(self, data: dict[str, Any], **kwargs: Any) -> None:
        require_mline(data["candidate"], data["id"], data["label"], "label")


def build_command_schemas(limits: Limits) -> dict[str, Schema]:
    """One schema per command the server handles; commands without fields need none."""
    stream: dict[str, fields.Field[Any]] = {"streamId": stream_id_field(required=True)}
    return {
        "join": _schema("JoinCommand", {**stream, "mode": StrictString(load_default=None)}),
        "leave": _schema("LeaveCommand", stream),
        "publish": _schema("PublishCommand", {**stream, "mainTrack": StrictString(load_default=None)}),
        "play": _schema("PlayCommand", {**stream, "room": StrictString(load_default=None)}),
        "stop": _schema("StopCommand", stream),
        "joinRoom": _schema(
            "JoinRoomCommand", {"room": room_field(required=True), "streamId": stream_id_field()}
        ),
        "leaveFromRoom": _schema("LeaveFromRoomCommand", {"room": room_field(required=True)}),
        "getRoomInfo": _schema(
            "GetRoomInfoCommand", {"room": room_field(required=True), "streamId": StrictString()}
        ),
        "getStreamInfo": _schema("GetStreamInfoCommand", stream),
        "takeConfiguration": _schema(
            "TakeConfigurationCommand",
            {
                **stream,
                "type": StrictString(required=True, validate=validate.OneOf(["offer", "answer"])),
                "sdp": StrictString(required=True, validate=validate.Length(min=1, max=limits.sdp_chars)),
            },
        ),
        "takeCandidate": _schema(
            "TakeCandidateCommand",
            {
                **stream,
                "label": fields.Integer(
                    strict=True, load_default=None, allow_none=True, validate=validate.Range(min=0, max=65535)
                ),
                "id": StrictString(load_default=None, allow_none=True, validate=validate.Length(max=64)),
                "candidate": StrictString(
                    required=True, validate=validate.Length(max=limits.candidate_chars)
                ),
            },
            base=TakeCandidate,
        ),
        "peerMessageCommand": _schema(
            "PeerMessageCommand",
            {
                **stream,
                "definition": StrictString(load_default=None, validate=validate.Length(max=128)),
                "data": JsonValue(max_bytes=limits.peer_message_bytes, load_default=None, allow_none=True),
            },
        ),
    }
