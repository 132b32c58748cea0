"""Marshmallow schemas for every inbound message, and the one place their errors are turned into
`SignalingError`s.

Fields are strict: no bytes for strings (python-socketio hands binary attachments over as bytes,
which must never be relayed as text), no strings or floats for integers, no unknown keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.limits import (
    CLAIMED_PEERS_MAX,
    CLAIMS_MAX,
    DEFINITION_MAX,
    MLINE_INDEX_MAX,
    PEER_ID_MAX,
    ROOM_PATTERN,
    ROOM_RULE,
    SDP_MID_MAX,
    SESSION_SECRET_MAX,
    STREAM_ID_RULE,
    TOKEN_MAX,
    USERNAME_FRAGMENT_MAX,
    Limits,
)
from signaling.core.sessions import Claims, PlayingClaim, PublishedClaim, RoomClaim

MAX_REPORTED_FIELDS = 10
# Classic relays pass whatever the sender adds along with an offer (a name, a call id...): here
# such fields are refused, and the refusal says where app data goes instead.
UNKNOWN_RELAY_FIELD = (
    "Unknown field. App data goes in a peer-message's `data` (to one peer) "
    "or in join's `metadata` (to everyone in the room)."
)
UNKNOWN_JOIN_FIELD = "Unknown field. App data about you goes in `metadata`, seen by the room."


def is_text(value: str) -> bool:
    """False for a string with an unpaired surrogate: JSON can escape one (`"\\ud800"`), but it is
    not Unicode text, and no UTF-8 encoder (ours or a client's) can pass it on."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


class StrictString(fields.String):
    default_error_messages: dict[str, str | list[Any] | dict[Any, Any]] = {  # noqa: RUF012
        "not_text": "Not valid Unicode text (it has an unpaired surrogate).",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if not is_text(value):
            raise self.make_error("not_text")
        return value


class StrictSchema(Schema):
    """Refuses unknown keys (marshmallow's default) without marshmallow's cost per key: a payload
    with thousands of them is answered about as cheaply as one with a few."""

    @pre_load
    def _many_unknown(self, data: Any, **kwargs: Any) -> Any:
        if self.unknown != RAISE or not isinstance(data, dict):
            return data
        if len(data) <= len(self.fields) + MAX_REPORTED_FIELDS:
            return data  # marshmallow reports these itself
        unknown = (key for key in data if key not in self.fields)
        message = self.error_messages["unknown"]
        raise ValidationError({key: [message] for key in unknown})


class JsonValue(fields.Field[Any]):
    """JSON that relays unchanged to any client: finite numbers, no binary, bounded size."""

    default_error_messages: dict[str, str | list[Any] | dict[Any, Any]] = {  # noqa: RUF012
        "invalid": "Must be a JSON object.",
        "not_json": "Must contain only JSON values (no binary data, no NaN or Infinity).",
        "too_large": "Must encode to at most {max} bytes of JSON.",
    }

    def __init__(self, *, max_bytes: int, objects_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_bytes = max_bytes
        self.objects_only = objects_only

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if self.objects_only and not isinstance(value, dict):
            raise self.make_error("invalid")
        try:
            encoded = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise self.make_error("not_json") from exc
        if len(encoded) > self.max_bytes:
            raise self.make_error("too_large", max=self.max_bytes)
        if not _all_finite(value):
            raise self.make_error("not_json")
        return value


def _all_finite(value: Any) -> bool:
    # orjson writes NaN as null, so it has to be looked for; depth is bounded by the size check.
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    return True


def room_field(**kwargs: Any) -> StrictString:
    return StrictString(
        validate=validate.Regexp(ROOM_PATTERN, error=f"Room names are {ROOM_RULE}."), **kwargs
    )


def stream_id_field(**kwargs: Any) -> StrictString:
    # Same rule as rooms: an Ant Media P2P call's streamId is the room's name.
    return StrictString(validate=validate.Regexp(ROOM_PATTERN, error=STREAM_ID_RULE), **kwargs)


class JoinBaseSchema(StrictSchema):
    error_messages = {"unknown": UNKNOWN_JOIN_FIELD}  # noqa: RUF012


class RelaySchema(StrictSchema):
    """Fields every relayed message shares: whom it is for, and optionally through what."""

    error_messages = {"unknown": UNKNOWN_RELAY_FIELD}  # noqa: RUF012

    target = StrictString(required=True, validate=validate.Length(min=1, max=PEER_ID_MAX))
    room = room_field(load_default=None)
    streamId = stream_id_field(load_default=None)

    @validates_schema
    def _one_route(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["room"] is not None and data["streamId"] is not None:
            raise ValidationError("Give room or streamId, not both.", "streamId")


class CandidateSchema(StrictSchema):
    """RTCIceCandidateInit, as `RTCIceCandidate.toJSON()` produces it."""

    candidate = StrictString(required=True)
    sdpMid = StrictString(load_default=None, allow_none=True, validate=validate.Length(max=SDP_MID_MAX))
    sdpMLineIndex = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=0, max=MLINE_INDEX_MAX)
    )
    usernameFragment = StrictString(
        load_default=None, allow_none=True, validate=validate.Length(max=USERNAME_FRAGMENT_MAX)
    )

    def __init__(self, *, max_chars: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_chars = max_chars

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len(data["candidate"]) > self.max_chars:
            raise ValidationError(f"Longer than {self.max_chars} characters.", "candidate")
        require_mline(data["candidate"], data["sdpMid"], data["sdpMLineIndex"], "sdpMid")


class DescriptionField(fields.Field[str | dict[str, str]]):
    """An offer's or answer's `sdp`: the SDP text, or the `RTCSessionDescriptionInit` object
    (`{type, sdp}`, what `pc.localDescription` encodes to) whose `type` is the event's. It loads
    as it came, text or object, so that the recipient gets the form its sender used."""

    default_error_messages: dict[str, str | list[Any] | dict[Any, Any]] = {  # noqa: RUF012
        "invalid": "Must be the SDP text, or an RTCSessionDescriptionInit object with type and sdp.",
    }

    def __init__(self, kind: str, *, max_chars: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        length = validate.Length(min=1, max=max_chars)
        self._text = StrictString(validate=length)
        self._object = StrictSchema.from_dict(
            {
                "type": StrictString(
                    required=True,
                    validate=validate.Equal(kind, error=f"Must be {kind!r}, the event's own type."),
                ),
                "sdp": StrictString(required=True, validate=length),
            },
            name="SessionDescriptionInitSchema",
        )()

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | dict[str, str]:
        if isinstance(value, dict):
            loaded: dict[str, str] = self._object.load(value)
            return loaded
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return self._text.deserialize(value)


def peer_id_field(**kwargs: Any) -> StrictString:
    return StrictString(validate=validate.Length(min=1, max=PEER_ID_MAX), **kwargs)


def _peer_list() -> fields.List[Any]:
    return fields.List(peer_id_field(), load_default=list, validate=validate.Length(max=CLAIMED_PEERS_MAX))


def _claims(schema: type[Schema]) -> fields.List[Any]:
    return fields.List(fields.Nested(schema), load_default=list, validate=validate.Length(max=CLAIMS_MAX))


class PublishedClaimSchema(StrictSchema):
    streamId = stream_id_field(required=True)
    room = room_field(load_default=None, allow_none=True)
    maxViewers = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1)
    )
    viewers = _peer_list()

    @post_load
    def _claim(self, data: dict[str, Any], **kwargs: Any) -> PublishedClaim:
        return PublishedClaim(data["streamId"], data["room"], data["maxViewers"], tuple(data["viewers"]))


class PlayingClaimSchema(StrictSchema):
    streamId = stream_id_field(required=True)
    room = room_field(load_default=None, allow_none=True)
    publisher = peer_id_field(required=True)

    @post_load
    def _claim(self, data: dict[str, Any], **kwargs: Any) -> PlayingClaim:
        return PlayingClaim(data["streamId"], data["room"], data["publisher"])


def restore_schema(metadata_bytes: int) -> type[Schema]:
    """What a resuming client says it held (see signaling.core.sessions.Claims)."""
    room_claim = StrictSchema.from_dict(
        {
            "room": room_field(required=True),
            "metadata": JsonValue(max_bytes=metadata_bytes, objects_only=True, load_default=dict),
            "peers": _peer_list(),
        },
        name="RoomClaimSchema",
    )

    class RestoreSchema(StrictSchema):
        rooms = _claims(room_claim)
        published = _claims(PublishedClaimSchema)
        playing = _claims(PlayingClaimSchema)

        @post_load
        def _claims(self, data: dict[str, Any], **kwargs: Any) -> Claims:
            rooms = tuple(RoomClaim(r["room"], r["metadata"], tuple(r["peers"])) for r in data["rooms"])
            return Claims(rooms, tuple(data["published"]), tuple(data["playing"]))

    return RestoreSchema


def require_mline(candidate: str, sdp_mid: str | None, sdp_mline_index: int | None, field_name: str) -> None:
    """RTCPeerConnection.addIceCandidate's rule: a candidate (not the end-of-candidates marker)
    must name its m-line, or no browser can use it."""
    if candidate and sdp_mid is None and sdp_mline_index is None:
        raise ValidationError("sdpMid or sdpMLineIndex is required with a candidate.", field_name)


class Loader(Protocol):
    def load(self, data: Any) -> Any: ...


class FastPath:
    """A schema plus a hand-written check for the messages every call sends by the dozen
    (offers, answers, candidates). The check only accepts what the schema accepts, with the same
    result (a property test holds the two together); anything else goes to the schema, which
    also words the errors."""

    def __init__(self, schema: Schema, accept: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        self.schema = schema
        self.accept = accept

    def load(self, data: Any) -> Any:
        result = self.accept(data)
        return result if result is not None else self.schema.load(data)


RELAY_KEYS = frozenset({"target", "room", "streamId"})


def _route_fields(payload: dict[str, Any]) -> dict[str, Any] | None:
    target, room, stream = payload.get("target"), payload.get("room"), payload.get("streamId")
    if type(target) is not str or not 1 <= len(target) <= PEER_ID_MAX or not is_text(target):
        return None
    for name in (room, stream):
        if name is not None and (type(name) is not str or not ROOM_PATTERN.match(name)):
            return None
    if room is not None and stream is not None:
        return None
    return {"target": target, "room": room, "streamId": stream}


def _description_check(kind: str, max_sdp: int) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    keys = RELAY_KEYS | {"sdp"}
    object_keys = frozenset({"type", "sdp"})

    def accept(payload: dict[str, Any]) -> dict[str, Any] | None:
        sdp = payload.get("sdp")
        if not payload.keys() <= keys:
            return None
        described: str | dict[str, str] | None = sdp
        if type(sdp) is dict:  # RTCSessionDescriptionInit
            if sdp.keys() != object_keys or type(sdp["type"]) is not str or sdp["type"] != kind:
                return None
            sdp = sdp["sdp"]
            described = {"type": kind, "sdp": sdp}
        if type(sdp) is not str or not 1 <= len(sdp) <= max_sdp or not is_text(sdp):
            return None
        route = _route_fields(payload)
        return None if route is None else {**route, "sdp": described}

    return accept


def _candidate_check(max_chars: int) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    keys = RELAY_KEYS | {"candidate"}
    candidate_keys = frozenset({"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"})

    def accept(payload: dict[str, Any]) -> dict[str, Any] | None:
        if not payload.keys() <= keys or "candidate" not in payload:
            return None
        route = _route_fields(payload)
        body = payload["candidate"]
        if route is None:
            return None
        if body is None:
            return {**route, "candidate": None}
        if type(body) is not dict or not body.keys() <= candidate_keys:
            return None
        text, mid = body.get("candidate"), body.get("sdpMid")
        index, fragment = body.get("sdpMLineIndex"), body.get("usernameFragment")
        if type(text) is not str or len(text) > max_chars or not is_text(text):
            return None
        if mid is not None and (type(mid) is not str or len(mid) > SDP_MID_MAX or not is_text(mid)):
            return None
        if index is not None and (type(index) is not int or not 0 <= index <= MLINE_INDEX_MAX):
            return None
        if fragment is not None and (
            type(fragment) is not str or len(fragment) > USERNAME_FRAGMENT_MAX or not is_text(fragment)
        ):
            return None
        if text and mid is None and index is None:
            return None
        candidate = {"candidate": text, "sdpMid": mid, "sdpMLineIndex": index, "usernameFragment": fragment}
        return {**route, "candidate": candidate}

    return accept


def build_schemas(limits: Limits) -> dict[str, Loader]:
    """One schema per socket.io event."""

    def description(kind: str) -> FastPath:
        schema = RelaySchema.from_dict(
            {"sdp": DescriptionField(kind, max_chars=limits.sdp_chars, required=True)},
            name="DescriptionSchema",
        )
        return FastPath(schema(), _description_check(kind, limits.sdp_chars))

    candidate = RelaySchema.from_dict(
        {
            "candidate": fields.Nested(
                CandidateSchema(max_chars=limits.candidate_chars), required=True, allow_none=True
            )
        },
        name="IceCandidateSchema",
    )
    peer_message = RelaySchema.from_dict(
        {
            "definition": StrictString(load_default=None, validate=validate.Length(max=DEFINITION_MAX)),
            "data": JsonValue(max_bytes=limits.peer_message_bytes, required=True, allow_none=True),
        },
        name="PeerMessageSchema",
    )
    join = JoinBaseSchema.from_dict(
        {
            "room": room_field(required=True),
            "metadata": JsonValue(max_bytes=limits.metadata_bytes, objects_only=True, load_default=dict),
        },
        name="JoinSchema",
    )
    leave = StrictSchema.from_dict({"room": room_field(required=True)}, name="LeaveSchema")
    publish = StrictSchema.from_dict(
        {
            "streamId": stream_id_field(required=True),
            "room": room_field(load_default=None),
            "maxViewers": fields.Integer(
                strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1)
            ),
        },
        name="PublishSchema",
    )
    stream = StrictSchema.from_dict({"streamId": stream_id_field(required=True)}, name="StreamSchema")
    authenticate = StrictSchema.from_dict(
        {"token": StrictString(required=True, validate=validate.Length(min=1, max=TOKEN_MAX))},
        name="AuthenticateSchema",
    )
    resume = StrictSchema.from_dict(
        {
            "peerId": peer_id_field(required=True),
            "secret": StrictString(required=True, validate=validate.Length(min=1, max=SESSION_SECRET_MAX)),
            "restore": fields.Nested(restore_schema(limits.metadata_bytes), load_default=Claims),
        },
        name="ResumeSchema",
    )
    return {
        "resume": resume(),
        "join": join(),
        "leave": leave(),
        "offer": description("offer"),
        "answer": description("answer"),
        "ice-candidate": FastPath(candidate(), _candidate_check(limits.candidate_chars)),
        "peer-message": peer_message(),
        "publish": publish(),
        "play": stream(),
        "stop": stream(),
        "authenticate": authenticate(),
    }


def parse(schema: Loader, event: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """Validate the arguments of one event; the only place validation errors become replies."""
    if len(args) != 1:
        raise SignalingError(
            ErrorCode.INVALID_PAYLOAD,
            f"{event} takes exactly one payload object, got {len(args)} arguments",
        )
    payload = args[0]
    if isinstance(payload, (bytes, bytearray)):
        raise SignalingError(ErrorCode.INVALID_PAYLOAD, f"{event} payload must be JSON, not binary")
    if not isinstance(payload, dict):
        raise SignalingError(
            ErrorCode.INVALID_PAYLOAD,
            f"{event} payload must be a JSON object, got {_json_type(payload)}",
        )
    try:
        result: dict[str, Any] = schema.load(payload)
    except ValidationError as exc:
        messages: dict[str, Any] = exc.normalized_messages()  # type: ignore[no-untyped-call]
        # Bounded, so that a payload with thousands of bad keys cannot make a reply (and a log
        # line) larger than itself.
        reported = _bounded(messages)
        more = len(messages) - len(reported)
        summary = _summary(reported) + (f"; and {more} more" if more > 0 else "")
        raise SignalingError(
            ErrorCode.VALIDATION_FAILED, f"invalid {event} payload: {summary}", fields=reported
        ) from None
    return result


def _bounded(messages: dict[str, Any]) -> dict[str, Any]:
    """The first MAX_REPORTED_FIELDS problems at every level of nesting, names cut to 64."""
    bounded: dict[str, Any] = {}
    for name, problem in list(messages.items())[:MAX_REPORTED_FIELDS]:
        if isinstance(problem, dict):
            problem = _bounded(problem)
        elif isinstance(problem, list):
            problem = [str(text)[:200] for text in problem[:MAX_REPORTED_FIELDS]]
        bounded[str(name)[:64]] = problem
    return bounded


def _summary(messages: dict[str, Any]) -> str:
    parts = []
    for name, problem in messages.items():
        while isinstance(problem, dict):
            inner, problem = next(iter(problem.items()))
            name = f"{name}.{inner}"
        text = problem[0] if isinstance(problem, list) and problem else problem
        parts.append(f"{name}: {text}")
    return "; ".join(parts)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
