"""A node's view of the links that concern its peers, built from notices alone (no network)."""

from __future__ import annotations

import pytest

from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.store import Route
from signaling.core.view import Notice, RouteView, StreamState

ME, OTHER = "n1", "n2"


def room(seq: int, name: str, *members: tuple[str, str]) -> Notice:
    return Notice(seq, {name: list(members)}, {})


def stream(seq: int, key: str, state: StreamState | None) -> Notice:
    return Notice(seq, {}, {key: state})


def test_routes_like_the_store_between_peers_it_knows() -> None:
    view = RouteView(ME)
    view.apply(room(1, "r", ("a", ME), ("b", OTHER), ("c", ME)))
    assert view.find_route("a", "b") == Route(room="r")
    assert view.find_route("a", "c", room="r") == Route(room="r")
    assert view.home("b") == OTHER and view.home("c") == ME
    assert view.here("a") and not view.here("b")
    with pytest.raises(SignalingError) as refused:
        view.find_route("a", "stranger")
    assert refused.value.code is ErrorCode.UNKNOWN_TARGET
    assert view.seen == 1


def test_a_newer_state_replaces_the_older_and_keeps_the_rooms_order() -> None:
    view = RouteView(ME)
    view.apply(room(1, "first", ("a", ME), ("b", OTHER)))
    view.apply(room(2, "second", ("a", ME), ("b", OTHER)))
    view.apply(room(3, "first", ("a", ME), ("b", OTHER), ("c", OTHER)))
    assert view.rooms_now("a") == ["first", "second"]  # the default route stays the first room
    view.apply(room(4, "first", ("a", ME), ("c", OTHER)))
    assert view.find_route("a", "b") == Route(room="second")
    view.apply(room(5, "second", ("a", ME)))
    assert not view.linked("a", "b") and view.home("b") is None  # forgotten with its last link


def test_what_concerns_no_peer_here_is_forgotten() -> None:
    view = RouteView(ME)
    view.apply(room(1, "r", ("a", ME), ("b", OTHER)))
    view.apply(room(2, "r", ("b", OTHER)))  # a left: nothing here needs r
    assert view.rooms_now("b") == [] and view.home("b") is None
    view.apply(room(3, "elsewhere", ("x", OTHER), ("y", "n3")))
    assert view.home("x") is None


def test_streams_link_publisher_and_viewers_only() -> None:
    view = RouteView(ME)
    view.apply(room(1, "r", ("a", ME), ("v", OTHER), ("w", OTHER)))
    view.apply(stream(2, "r/cam", StreamState(("a", ME), "r", None, [("v", OTHER)])))
    assert view.find_route("a", "v", stream_id="r/cam") == Route(stream_id="r/cam")
    with pytest.raises(SignalingError):
        view.find_route("a", "w", stream_id="r/cam")
    assert view.streams_now("a") == (["r/cam"], [])
    counterparts = view.find_counterparts("a", "cam")
    assert counterparts is not None and counterparts.peers == ["v"]
    view.apply(stream(3, "r/cam", None))  # ended
    assert view.streams_now("a") == ([], []) and view.streams_now("v") == ([], [])


def test_a_stream_played_here_from_another_node() -> None:
    view = RouteView(ME)
    view.apply(stream(1, "live", StreamState(("p", OTHER), None, 2, [("me", ME), ("x", "n3")])))
    assert view.linked("me", "p") and view.linked("p", "me") and not view.linked("x", "me")
    assert view.home("p") == OTHER
    view.apply(stream(2, "live", StreamState(("p", OTHER), None, 2, [("x", "n3")])))  # stopped here
    assert not view.linked("me", "p") and view.home("p") is None


def test_retain_forgets_what_only_departed_peers_held() -> None:
    view = RouteView(ME)
    view.apply(room(1, "kept", ("a", ME), ("b", OTHER)))
    view.apply(room(2, "stale", ("gone", ME), ("b", OTHER)))
    view.retain(lambda peer: peer == "a")
    assert view.rooms_now("b") == ["kept"] and view.rooms_now("gone") == []


def test_reset_forgets_everything() -> None:
    view = RouteView(ME)
    view.apply(room(9, "r", ("a", ME), ("b", OTHER)))
    view.reset()
    assert view.seen == 0 and view.home("b") is None and not view.linked("a", "b")
