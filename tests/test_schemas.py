"""Every event schema, without a server."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.limits import Limits
from signaling.transports import fastjson
from signaling.transports.antmedia_schemas import build_command_schemas
from signaling.transports.schemas import FastPath, build_schemas, parse
from tests.helpers import CANDIDATE, SDP_OFFER

SCHEMAS = build_schemas(Limits(sdp_chars=1000, candidate_chars=200, metadata_bytes=100))


def load(event: str, *args: Any) -> dict[str, Any]:
    return parse(SCHEMAS[event], event, args)


def refusal(event: str, *args: Any) -> SignalingError:
    with pytest.raises(SignalingError) as caught:
        load(event, *args)
    return caught.value


def test_join() -> None:
    assert load("join", {"room": "a.b_c-9"}) == {"room": "a.b_c-9", "metadata": {}}
    assert load("join", {"room": "r", "metadata": {"n": [1, 2.5, None]}})["metadata"] == {"n": [1, 2.5, None]}
    for room in ["", "x" * 65, "a b", "caf\u00e9", "a/b", "r\n", None, 3]:
        error = refusal("join", {"room": room})
        assert error.code == ErrorCode.VALIDATION_FAILED
        assert error.fields is not None and "room" in error.fields
    assert "metadata" in (refusal("join", {"room": "r", "metadata": {"k": "v" * 100}}).fields or {})
    assert "metadata" in (refusal("join", {"room": "r", "metadata": {"k": float("inf")}}).fields or {})
    assert "metadata" in (refusal("join", {"room": "r", "metadata": [1]}).fields or {})


def test_descriptions() -> None:
    loaded = load("offer", {"target": "p", "sdp": SDP_OFFER[:900]})
    assert loaded == {"target": "p", "sdp": SDP_OFFER[:900], "room": None, "streamId": None}
    assert load("answer", {"target": "p", "sdp": "v=0", "room": "r"})["room"] == "r"
    assert "sdp" in (refusal("offer", {"target": "p", "sdp": "v" * 1001}).fields or {})
    assert "target" in (refusal("offer", {"target": "", "sdp": "v=0"}).fields or {})
    assert "target" in (refusal("offer", {"target": "t" * 129, "sdp": "v=0"}).fields or {})
    assert "room" in (refusal("answer", {"target": "p", "sdp": "v=0", "room": "bad room"}).fields or {})


def test_descriptions_as_objects() -> None:
    # What `pc.localDescription` encodes to; it loads as it came, for the recipient to get the same.
    described = {"type": "offer", "sdp": SDP_OFFER[:900]}
    loaded = load("offer", {"target": "p", "sdp": described})
    assert loaded == {"target": "p", "sdp": described, "room": None, "streamId": None}
    assert load("answer", {"target": "p", "sdp": {"type": "answer", "sdp": "v=0"}})["sdp"]["type"] == "answer"
    mismatch = refusal("offer", {"target": "p", "sdp": {"type": "answer", "sdp": "v=0"}})
    assert mismatch.fields == {"sdp": {"type": ["Must be 'offer', the event's own type."]}}
    for bad in [
        {"type": "offer", "sdp": "v" * 1001},
        {"type": "offer", "sdp": ""},
        {"type": "offer"},
        {"sdp": "v=0"},
        {"type": "rollback", "sdp": "v=0"},
        {"type": "offer", "sdp": b"v=0"},
        {"type": "offer", "sdp": "v=0\ud800"},
        {"type": "offer", "sdp": "v=0", "extra": 1},
        ["offer", "v=0"],
        None,
    ]:
        error = refusal("offer", {"target": "p", "sdp": bad})
        assert error.code == ErrorCode.VALIDATION_FAILED
        assert error.fields is not None and "sdp" in error.fields, bad
    assert "RTCSessionDescriptionInit" in refusal("offer", {"target": "p", "sdp": 5}).message


def test_unknown_fields_say_where_app_data_goes() -> None:
    relays: list[tuple[str, dict[str, Any]]] = [
        ("offer", {"target": "p", "sdp": "v=0"}),
        ("answer", {"target": "p", "sdp": {"type": "answer", "sdp": "v=0"}}),
        ("ice-candidate", {"target": "p", "candidate": None}),
    ]
    for event, payload in relays:
        error = refusal(event, {**payload, "caller": "ada"})
        assert error.fields is not None and list(error.fields) == ["caller"]
        assert error.message.startswith(f"invalid {event} payload: caller: Unknown field.")
        assert "peer-message" in error.message and "metadata" in error.message
    many = refusal("offer", {"target": "p", "sdp": "v=0", **{f"k{i}": i for i in range(50)}})
    assert many.fields is not None and "peer-message" in many.fields["k0"][0]
    joined = refusal("join", {"room": "r", "name": "ada"})
    assert joined.fields is not None and "`metadata`" in joined.fields["name"][0]


def test_candidates() -> None:
    loaded = load("ice-candidate", {"target": "p", "candidate": CANDIDATE})
    assert loaded["candidate"] == CANDIDATE
    minimal = load("ice-candidate", {"target": "p", "candidate": {"candidate": "c", "sdpMLineIndex": 0}})
    assert minimal["candidate"] == {
        "candidate": "c",
        "sdpMid": None,
        "sdpMLineIndex": 0,
        "usernameFragment": None,
    }
    assert load("ice-candidate", {"target": "p", "candidate": None})["candidate"] is None
    assert (
        load("ice-candidate", {"target": "p", "candidate": {"candidate": ""}})["candidate"]["candidate"] == ""
    )
    for bad in [
        {**CANDIDATE, "candidate": "c" * 201},
        {**CANDIDATE, "sdpMLineIndex": -1},
        {**CANDIDATE, "sdpMLineIndex": True},
        {**CANDIDATE, "sdpMid": 0},
        {"candidate": "c"},
        "candidate:1",
    ]:
        error = refusal("ice-candidate", {"target": "p", "candidate": bad})
        assert error.code == ErrorCode.VALIDATION_FAILED
        assert "candidate" in (error.fields or {})
        assert error.message.startswith("invalid ice-candidate payload: candidate")


def test_payload_shape_errors() -> None:
    assert refusal("leave").code == ErrorCode.INVALID_PAYLOAD
    assert refusal("leave", None).code == ErrorCode.INVALID_PAYLOAD
    assert refusal("leave", {"room": "a"}, {"room": "b"}).code == ErrorCode.INVALID_PAYLOAD
    assert "binary" in refusal("leave", b"x").message
    assert "an array" in refusal("leave", []).message
    error = refusal("leave", {"room": "a", "extra": 1})
    assert error.fields == {"extra": ["Unknown field."]}
    assert error.to_dict() == {
        "code": "validation_failed",
        "message": "invalid leave payload: extra: Unknown field.",
        "fields": {"extra": ["Unknown field."]},
    }


def test_errors_are_bounded_however_many_fields_are_wrong() -> None:
    payload = {"room": "a", **{f"unknown-{i}-" + "k" * 200: i for i in range(1000)}}
    error = refusal("leave", payload)
    assert error.fields is not None and len(error.fields) == 10
    assert all(len(name) <= 64 for name in error.fields)
    assert len(error.message) < 1500
    assert error.message.endswith("and 990 more")


def test_unknown_keys_by_the_thousand_cost_little_and_are_reported_bounded() -> None:
    nested = {"target": "p", "candidate": {**CANDIDATE, **{f"k{i}": i for i in range(5000)}}}
    error = refusal("ice-candidate", nested)
    assert error.fields is not None and len(error.fields["candidate"]) == 10
    assert len(error.message) < 300
    flat = refusal("offer", {"target": "p", "sdp": "v=0", **{f"k{i}": i for i in range(5000)}})
    assert flat.fields is not None and len(flat.fields) == 10 and flat.message.endswith("and 4990 more")


def test_antmedia_strings_that_are_kept_are_bounded() -> None:
    join = AM_SCHEMAS["join"]
    with pytest.raises(ValidationError):
        join.load({"command": "join", "streamId": "s", "mode": "m" * 65})  # kept in room metadata
    assert join.load({"command": "join", "streamId": "s", "mode": "play"})["mode"] == "play"


def test_only_small_text_falls_back_to_the_standard_library() -> None:
    assert fastjson.loads('{"a": NaN}')["a"] != 0  # NaN, as the standard library reads it
    with pytest.raises(ValueError):
        fastjson.loads('{"a": NaN, "sdp": "' + "x" * 9000 + '"}')


def test_unpaired_surrogates_are_not_text() -> None:
    error = refusal("offer", {"target": "p", "sdp": "v=0\ud800"})
    assert error.fields == {"sdp": ["Not valid Unicode text (it has an unpaired surrogate)."]}
    assert refusal("join", {"room": "a", "metadata": {"name": "\udfff"}}).fields is not None
    assert parse(SCHEMAS["offer"], "offer", ({"target": "p", "sdp": "v=0 \U0001f600"},))["sdp"]


# The fast path must never accept what the schema refuses, nor change what it returns.
_text = st.one_of(st.text(max_size=5), st.sampled_from(["", "room-1", "bad room", "p" * 129, "v" * 1001]))
_value = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 70000), st.floats(allow_nan=False), _text, st.binary(max_size=3)
)
_candidate = st.one_of(
    _value,
    st.fixed_dictionaries(
        {},
        optional={
            "candidate": st.one_of(_value, st.just("c" * 201)),
            "sdpMid": _value,
            "sdpMLineIndex": _value,
            "usernameFragment": _value,
            "extra": _value,
        },
    ),
)
_description = st.one_of(
    _value,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(_value, st.sampled_from(["offer", "answer", "pranswer"])),
            "sdp": st.one_of(_value, st.just("v=0")),
            "extra": _value,
        },
    ),
)
_payloads = st.fixed_dictionaries(
    {},
    optional={
        "target": _value,
        "sdp": _description,
        "room": _value,
        "streamId": _value,
        "candidate": _candidate,
        "other": _value,
    },
)


_ABSENT = object()  # as a changed value: the field is removed
# Values at the edges of the checks (limits as in SCHEMAS: 1,000 SDP chars, 200 candidate chars).
_ODD_VALUES: list[Any] = [
    _ABSENT,
    *(None, True, 1.5, [], {}, 0, -1, 65535, 65536),
    *("", "answer", "offer", "room-1", "bad room", "x" * 64, "x" * 65, "c" * 200, "c" * 201),
    *("m" * 256, "m" * 257, "s" * 1000, "s" * 1001),
    *("v=0 \u00e9t\u00e9", "v=0\ud800", "\udc00"),  # text, and unpaired surrogates (not text)
    *({"type": "offer", "sdp": "v=0"}, {"type": "answer", "sdp": "v=0"}, {"type": "offer"}),
]
_odd = st.one_of(st.sampled_from(_ODD_VALUES), _value)


def _agree(loader: Any, payload: dict[str, Any]) -> None:
    """The fast path accepts only what the schema accepts, and returns what the schema returns."""
    assert isinstance(loader, FastPath)
    fast = loader.accept(payload)
    try:
        slow = loader.schema.load(payload)
    except ValidationError:
        assert fast is None, payload
        return
    assert fast is None or fast == slow, (payload, fast, slow)


@settings(max_examples=3000, deadline=None)
@given(event=st.sampled_from(["offer", "answer", "ice-candidate"]), payload=_payloads)
def test_fast_path_agrees_with_the_schema(event: str, payload: dict[str, Any]) -> None:
    _agree(SCHEMAS[event], payload)


# Valid messages with one or two fields changed to odd values (or removed): each sits at the
# edge of some check, where a fast path and its schema could disagree.
# (event, a payload it accepts); the candidates name their m-line one way each, so that one
# change can break the m-line rule.
_VALID_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("offer", {"target": "p", "sdp": "v=0"}),
    ("answer", {"target": "p", "sdp": "v=0", "room": "room-1"}),
    ("offer", {"target": "p", "sdp": {"type": "offer", "sdp": "v=0"}}),
    ("answer", {"target": "p", "streamId": "s", "sdp": {"type": "answer", "sdp": "v=0"}}),
    ("ice-candidate", {"target": "p", "streamId": "s", "candidate": {"candidate": "c:1", "sdpMid": "0"}}),
    (
        "ice-candidate",
        {"target": "p", "candidate": {"candidate": "c:1", "sdpMLineIndex": 0, "usernameFragment": "u"}},
    ),
]


_EVENT_FIELDS = [
    "target",
    "sdp",
    "room",
    "streamId",
    "candidate",
    "x",
    "candidate.candidate",
    "candidate.sdpMid",
    "candidate.sdpMLineIndex",
    "candidate.usernameFragment",
    "candidate.x",
    "sdp.type",
    "sdp.sdp",
    "sdp.x",
]


# The same for the Ant Media commands a call sends by the dozen.
AM_SCHEMAS = build_command_schemas(Limits(sdp_chars=1000, candidate_chars=200, metadata_bytes=100))
_VALID_COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("takeConfiguration", {"command": "takeConfiguration", "streamId": "s", "type": "offer", "sdp": "v=0"}),
    ("takeCandidate", {"command": "takeCandidate", "streamId": "s", "label": 0, "candidate": "c:1"}),
    ("takeCandidate", {"command": "takeCandidate", "streamId": "s", "id": "0", "candidate": "c:1"}),
]
_COMMAND_FIELDS = ["command", "streamId", "type", "sdp", "candidate", "label", "id", "token"]
# (fast path, a message it accepts, the fields to change)
_NEAR_VALID = [
    *((SCHEMAS[event], payload, _EVENT_FIELDS) for event, payload in _VALID_EVENTS),
    *((AM_SCHEMAS[command], payload, _COMMAND_FIELDS) for command, payload in _VALID_COMMANDS),
]


def _changed(valid: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    """`valid` with each (dotted field, value) change applied; _ABSENT removes the field."""
    payload = copy.deepcopy(valid)
    for path, value in changes:
        *parents, key = path.split(".")
        target: Any = payload
        for parent in parents:
            target = target.get(parent) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if value is _ABSENT:
            target.pop(key, None)
        else:
            target[key] = value
    return payload


@settings(max_examples=3000, deadline=None)
@given(data=st.data())
def test_fast_paths_agree_with_their_schemas_near_valid_messages(data: st.DataObject) -> None:
    loader, payload, fields = data.draw(st.sampled_from(_NEAR_VALID))
    changes = data.draw(st.lists(st.tuples(st.sampled_from(fields), _odd), min_size=1, max_size=2))
    _agree(loader, _changed(payload, changes))


def test_fast_paths_agree_with_their_schemas_for_every_single_change() -> None:
    for loader, payload, fields in _NEAR_VALID:
        for path in fields:
            for value in _ODD_VALUES:
                _agree(loader, _changed(payload, [(path, value)]))


def test_fast_path_takes_the_usual_messages() -> None:
    offer = SCHEMAS["offer"]
    candidate = SCHEMAS["ice-candidate"]
    assert isinstance(offer, FastPath) and isinstance(candidate, FastPath)
    assert offer.accept({"target": "p", "sdp": SDP_OFFER[:900]}) is not None
    assert offer.accept({"target": "p", "sdp": {"type": "offer", "sdp": SDP_OFFER[:900]}}) is not None
    assert candidate.accept({"target": "p", "candidate": CANDIDATE}) is not None
    assert candidate.accept({"target": "p", "candidate": None}) is not None


def test_antmedia_fast_path_takes_the_usual_commands() -> None:
    configuration, candidate = AM_SCHEMAS["takeConfiguration"], AM_SCHEMAS["takeCandidate"]
    assert isinstance(configuration, FastPath) and isinstance(candidate, FastPath)
    sdp = {"command": "takeConfiguration", "streamId": "s", "type": "offer", "sdp": SDP_OFFER[:900]}
    assert configuration.accept(sdp) is not None
    line = {
        "command": "takeCandidate",
        "streamId": "s",
        "label": 0,
        "id": "0",
        "candidate": CANDIDATE["candidate"],
    }
    assert candidate.accept(line) is not None
    assert candidate.accept({**line, "candidate": "", "label": None, "id": None}) is not None
