"""JWT authentication and authorization on both protocols, and allowed origins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signaling.client import RequestFailed, SignalingClient
from signaling.core.errors import ErrorCode, SignalingError
from signaling.operations.metrics import Metrics
from signaling.security.auth import Grant, TokenVerifier
from signaling.security.guard import Guard
from signaling.security.ratelimit import RateLimits
from signaling.server import GUARD
from tests.conftest import ConnectAntMedia, RunningServer, StartServer
from tests.helpers import ConnectPeer

SECRET = "test-secret-that-is-long-enough-for-hs256"


def token(secret: str = SECRET, algorithm: str = "HS256", ttl: float = 300, **claims: Any) -> str:
    return jwt.encode({"exp": int(time.time() + ttl), **claims}, secret, algorithm=algorithm)


def refused(call: object) -> SignalingError:
    with pytest.raises(SignalingError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_grant_patterns_and_expiry() -> None:
    grant = Grant("u", time.time() + 60, rooms=("team-*",), publish=("u-cam",), play=("*",))
    grant.check("rooms", "team-red")
    grant.check("publish", "u-cam")
    grant.check("play", "anything")
    assert refused(lambda: grant.check("rooms", "other")).code == ErrorCode.FORBIDDEN
    assert refused(lambda: grant.check("publish", "u-cam2")).code == ErrorCode.FORBIDDEN
    assert refused(lambda: grant.check("play", "x", now=time.time() + 120)).code == ErrorCode.UNAUTHORIZED


def test_verifier_hs256() -> None:
    verifier = TokenVerifier(SECRET, ["HS256"])
    grant = verifier.verify(token(sub="u1", rooms=["a"], play="b"))
    assert (grant.subject, grant.rooms, grant.play, grant.publish) == ("u1", ("a",), ("b",), ())
    assert (
        refused(lambda: verifier.verify(token(secret="another-secret-of-the-same-size-xx"))).code
        == "unauthorized"
    )
    assert "expired" in refused(lambda: verifier.verify(token(ttl=-10))).message
    no_exp = jwt.encode({"sub": "u"}, SECRET, algorithm="HS256")
    assert refused(lambda: verifier.verify(no_exp)).code == ErrorCode.UNAUTHORIZED
    assert refused(lambda: verifier.verify(None)).code == ErrorCode.UNAUTHORIZED
    # A token signed with "none" or another algorithm than configured is refused.
    unsigned = jwt.encode({"exp": int(time.time()) + 60}, key="", algorithm="none")
    assert refused(lambda: verifier.verify(unsigned)).code == ErrorCode.UNAUTHORIZED


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
def test_verifier_public_keys(kind: str) -> None:
    private = (
        rsa.generate_private_key(65537, 2048) if kind == "RS256" else ec.generate_private_key(ec.SECP256R1())
    )
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    verifier = TokenVerifier(public_pem, ["RS256", "ES256"])
    assert verifier.verify(token(private, kind, sub="k")).subject == "k"  # type: ignore[arg-type]
    with pytest.raises(SignalingError):
        verifier.verify(token(SECRET, "HS256"))


def verifying_guard(clock: Callable[[], float]) -> Guard:
    """A guard checking this file's tokens, on the clock given."""
    return Guard(
        rate_limits=RateLimits(),
        connections_per_address=5,
        metrics=Metrics(),
        verifier=TokenVerifier(SECRET, ["HS256"]),
        clock=clock,
    )


async def test_the_expiry_timer_follows_the_grant() -> None:
    now = time.time()
    guard = verifying_guard(lambda: now)
    session = guard.open("10.0.0.1", "test", token(ttl=60))
    expired, narrowed = asyncio.Event(), asyncio.Event()

    async def set_expired() -> None:
        expired.set()

    async def set_narrowed() -> None:
        narrowed.set()

    guard.watch_expiry(session, set_expired, set_narrowed)
    first = session._expiry
    assert first is not None and 55 < first.when() - asyncio.get_running_loop().time() <= 60
    assert guard.authenticate(session, token(ttl=600))  # a fresh token moves the expiry
    assert first.cancelled() and session._expiry is not None
    assert not guard.authenticate(session, token(ttl=600))  # the same grant changes nothing
    # Tokens that add to the grants (Ant Media's, per command): when one of two expires, what
    # only it covered ends; when the last one does, the session ends.
    assert guard.authenticate(session, token(ttl=1200, rooms=["x"]), replace=False)
    assert len(session.grants) == 2 and guard.allows(session)("rooms", "x")
    now += 900  # the first has expired by the guard's clock: re-armed, the timer fires now
    assert guard.authenticate(session, token(ttl=1200, rooms=["x"]), replace=False) is False
    guard.watch_expiry(session, set_expired, set_narrowed)
    await asyncio.wait_for(narrowed.wait(), 5)
    assert not expired.is_set() and len(session.grants) == 1
    now += 3600
    guard.watch_expiry(session, set_expired, set_narrowed)
    await asyncio.wait_for(expired.wait(), 5)
    assert session.grants == []
    guard.close(session)


async def test_socketio_requires_a_valid_token(start_server: StartServer, connect: ConnectPeer) -> None:
    secured = await start_server(jwt_secret=SECRET)
    for auth in (None, {"token": "garbage"}, {"token": token(ttl=-5)}):
        client = SignalingClient()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(secured.url, auth=auth)
        assert (await client.next("connect_error"))["data"]["code"] == "unauthorized"

    alice = await connect(
        secured.url, auth={"token": token(sub="alice", rooms=["team-*"], publish=["alice-*"])}
    )
    await alice.join("team-red")
    with pytest.raises(RequestFailed) as forbidden:
        await alice.join("board-room")
    assert forbidden.value.code == "forbidden"
    assert "board-room" in forbidden.value.error["message"] and "peers" not in forbidden.value.error
    await alice.publish("alice-cam")
    with pytest.raises(RequestFailed) as not_yours:
        await alice.publish("bob-cam")
    assert not_yours.value.code == "forbidden"
    with pytest.raises(RequestFailed) as no_play:
        await alice.play("alice-cam")
    assert no_play.value.code == "forbidden"
    # A fresh token replaces the grant on the open connection, and what it no longer grants ends.
    assert await alice.request("authenticate", {"token": token(rooms=["board-*"])}) == {
        "ok": True,
        "revoked": {"rooms": ["team-red"], "streams": ["alice-cam"]},
    }
    await alice.join("board-room")
    bad = await alice.request("authenticate", {"token": "garbage"})
    assert bad["error"]["code"] == "unauthorized"


def expire_grants(server: RunningServer) -> None:
    """From now on every grant the server holds has expired, without waiting for one to."""
    server.app[GUARD].clock = lambda: time.time() + 3600


async def test_socketio_grant_expiring_on_an_open_connection(
    start_server: StartServer, connect: ConnectPeer
) -> None:
    secured = await start_server(jwt_secret=SECRET)
    short = await connect(secured.url, auth={"token": token(ttl=60, rooms=["*"])})
    await short.join("early")
    expire_grants(secured)  # the grant is checked on every join, so it lapses mid-connection
    reply = await short.request("join", {"room": "late"})
    assert reply["error"]["code"] == "unauthorized"


async def test_an_expired_token_ends_the_session_at_once(
    start_server: StartServer, connect: ConnectPeer, antmedia: ConnectAntMedia
) -> None:
    secured = await start_server(jwt_secret=SECRET)
    bob = await connect(secured.url, auth={"token": token(rooms=["*"])})
    await bob.join("room")
    alice = await connect(secured.url, auth={"token": token(ttl=60, rooms=["*"])})
    await alice.join("room")
    assert (await bob.next("peer-joined"))["peerId"] == alice.peer_id
    publisher = await antmedia(secured.url)
    short = token(ttl=60, publish=["cam"])
    await publisher.request("publish", "notification:publish_started", streamId="cam", token=short)
    # Every grant expires (by the server's clock); a token that has expired as well moves the
    # expiry timers to now. The server takes them out of everything; nobody keeps hearing of them.
    expire_grants(secured)
    await alice.request("authenticate", {"token": token(ttl=120, rooms=["*"])})
    assert "expired" in (await alice.next("kicked", timeout=5))["reason"]
    left = await bob.next("peer-left")
    assert (left["peerId"], left["reason"]) == (alice.peer_id, "expired")
    await alice.next("disconnect")
    await publisher.send("getIceServerConfig", token=token(ttl=120))
    assert "expired" in (await publisher.next("notification:kicked", timeout=5))["reason"]
    assert await publisher.closed == 1008
    assert "cam" not in secured.store._streams


async def test_a_narrower_token_gives_up_what_it_no_longer_grants(
    start_server: StartServer, connect: ConnectPeer, antmedia: ConnectAntMedia
) -> None:
    secured = await start_server(jwt_secret=SECRET)
    alice = await connect(secured.url, auth={"token": token(rooms=["*"], publish=["*"])})
    bob = await connect(secured.url, auth={"token": token(rooms=["*"])})
    await bob.join("red")
    await alice.join("red")
    await alice.join("blue")
    await alice.publish("cam", room="red")
    assert bob.peer_id is not None
    reply = await alice.request("authenticate", {"token": token(rooms=["blue"])})
    assert reply["revoked"] == {"rooms": ["red"], "streams": ["cam"]}
    assert (await bob.next("stream-unpublished"))["streamId"] == "cam"
    assert (await bob.next("peer-left"))["reason"] == "expired"
    refused = await alice.request("offer", {"target": bob.peer_id, "sdp": "v=0"})
    assert refused["error"]["code"] in ("not_joined", "unknown_target")

    # Ant Media: the SDK sends a token with each command, and each adds to what the connection
    # may do; when one expires, what only it granted ends.
    caller = await antmedia(secured.url)
    await caller.request("join", "notification:joined", streamId="call", token=token(rooms=["call"]))
    publishing = token(ttl=600, publish=["cam2"])
    await caller.request("publish", "notification:publish_started", streamId="cam2", token=publishing)
    assert "notification:leaved" not in caller.pending()  # the publish token added to the grants
    secured.app[GUARD].clock = lambda: time.time() + 400  # the call's token (300 s) has expired
    await caller.send("getIceServerConfig", token=token(ttl=900))  # moves the timer to now
    assert (await caller.next("notification:leaved"))["streamId"] == "call"
    assert "cam2" in secured.store._streams


async def test_leave_and_stop_need_no_live_grant(
    start_server: StartServer, connect: ConnectPeer, antmedia: ConnectAntMedia
) -> None:
    secured = await start_server(jwt_secret=SECRET)
    alice = await connect(secured.url, auth={"token": token(rooms=["*"], publish=["*"])})
    await alice.join("room")
    await alice.publish("cam")
    caller = await antmedia(secured.url)
    await caller.request("join", "notification:joined", streamId="call", token=token(rooms=["call"]))
    expire_grants(secured)
    assert (await alice.request("join", {"room": "other"}))["error"]["code"] == "unauthorized"
    # Giving things up is always allowed.
    await alice.stop("cam")
    await alice.leave("room")
    await caller.request("leave", "notification:leaved", streamId="call")
    refused = await caller.request("getIceServerConfig", "error")
    assert refused["definition"] == "unauthorized_access"


async def test_antmedia_tokens_on_url_or_command(
    start_server: StartServer, antmedia: ConnectAntMedia
) -> None:
    secured = await start_server(jwt_secret=SECRET)
    anonymous = await antmedia(secured.url)
    assert (await anonymous.request("publish", "error", streamId="cam"))[
        "definition"
    ] == "unauthorized_access"
    cam = await anonymous.request(
        "publish", "notification:publish_started", streamId="cam", token=token(publish=["cam"])
    )
    assert cam["streamId"] == "cam"
    forbidden = await anonymous.request("play", "error", streamId="cam", token=token(play=["other"]))
    assert forbidden["definition"] == "unauthorized_access" and forbidden["code"] == "forbidden"

    async with aiohttp.ClientSession() as http:
        base = secured.url.replace("http", "ws")
        async with http.get(f"{base}/WebRTCAppEE/websocket?token=garbage") as response:
            assert response.status == 401
    viewer = await antmedia(secured.url, query=f"token={token(play=['cam'], rooms=['*'])}")
    await viewer.send("play", streamId="cam")
    await viewer.request("join", "notification:joined", streamId="call")


async def test_antmedia_origin_must_be_allowed(start_server: StartServer) -> None:
    strict = await start_server(cors_allowed_origins=["https://app.example"])
    url = strict.url.replace("http", "ws") + "/WebRTCAppEE/websocket"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Origin": "https://evil.example"}) as response:
            assert response.status == 403
        async with http.ws_connect(url, headers={"Origin": "https://app.example"}) as ws:
            await ws.send_str('{"command":"ping"}')
            assert (await ws.receive_json(timeout=5)) == {"command": "pong"}
        async with http.ws_connect(url) as ws:  # not a browser: no Origin, no CORS to apply
            await ws.send_str('{"command":"ping"}')
            assert (await ws.receive_json(timeout=5)) == {"command": "pong"}


async def test_every_message_needs_a_live_grant(
    start_server: StartServer, connect: ConnectPeer, antmedia: ConnectAntMedia
) -> None:
    secured = await start_server(jwt_secret=SECRET, turn_urls=("turn:t:3478",), turn_secrets=("s",))
    # No TURN credentials (or anything but pings) for an Ant Media client without a token.
    anonymous = await antmedia(secured.url)
    await anonymous.sync()
    refused_ice = await anonymous.request("getIceServerConfig", "error")
    assert refused_ice["definition"] == "unauthorized_access"
    granted = await anonymous.request("getIceServerConfig", "iceServerConfig", token=token(sub="am-user"))
    assert granted["turnServerUsername"].endswith(":am-user")

    # An expired grant stops relays, not only joins.
    alice = await connect(secured.url, auth={"token": token(rooms=["*"])})
    bob = await connect(secured.url, auth={"token": token(rooms=["*"])})
    await alice.join("relay-room")
    await bob.join("relay-room")
    assert bob.peer_id
    expire_grants(secured)
    reply = await alice.request("peer-message", {"target": bob.peer_id, "data": "x"})
    assert reply["error"]["code"] == "unauthorized"


async def test_a_token_for_another_key_type_is_refused_cleanly(start_server: StartServer) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    rsa_public = (
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    secured = await start_server(jwt_public_key=rsa_public)
    client = SignalingClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(secured.url, auth={"token": token(private, "ES256")})  # type: ignore[arg-type]
    assert (await client.next("connect_error"))["data"]["code"] == "unauthorized"


def test_huge_tokens_and_absurd_expiries_are_refused_as_invalid() -> None:
    verifier = TokenVerifier(SECRET, ["HS256"])
    huge = refused(lambda: verifier.verify("a" * 9000))
    assert huge.code == ErrorCode.UNAUTHORIZED and "8192" in huge.message
    forever = jwt.encode({"exp": 10**400}, SECRET, algorithm="HS256")  # float() cannot hold it
    assert refused(lambda: verifier.verify(forever)).code == ErrorCode.UNAUTHORIZED


def test_a_remembered_token_still_expires_and_a_connection_holds_so_many() -> None:
    now = time.time()
    guard = verifying_guard(lambda: now)
    session = guard.open("10.0.0.1", "test")
    first = token(ttl=60, rooms=["a"])
    assert guard.authenticate(session, first, replace=False)
    now += 120
    with pytest.raises(SignalingError) as expired:
        guard.authenticate(session, first, replace=False)  # verified before, expired since
    assert expired.value.code == ErrorCode.UNAUTHORIZED
    for index in range(15):
        guard.authenticate(session, token(ttl=600, rooms=[f"r{index}"]), replace=False)
    with pytest.raises(SignalingError) as too_many:
        guard.authenticate(session, token(ttl=600, rooms=["one-more"]), replace=False)
    assert "16 tokens" in too_many.value.message
