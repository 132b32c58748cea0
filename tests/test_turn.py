"""TURN credentials: issued by the server, refreshed, and accepted by a real coturn."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time

import aiohttp
import jwt
from playwright.async_api import Browser

from signaling.security.turn import IceServers, turn_credentials
from tests.browser_support import open_page, wait, wait_mesh_media
from tests.conftest import ConnectAntMedia, StartServer
from tests.helpers import ConnectPeer
from tests.turn_support import Coturn

SELECTED_RELAY = """async () => {
  const [link] = [...window.demo.client.links.values()];
  const stats = await link.pc.getStats();
  let pair;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  });
  return Boolean(pair) && stats.get(pair.localCandidateId).candidateType === "relay"
    && stats.get(pair.remoteCandidateId).candidateType === "relay";
}"""


def test_credentials_follow_the_turn_rest_scheme() -> None:
    username, credential = turn_credentials("secret", "user-1", 1700000000)
    assert username == "1700000000:user-1"
    expected = base64.b64encode(hmac.new(b"secret", username.encode(), hashlib.sha1).digest()).decode()
    assert credential == expected


def test_ice_servers_sign_with_the_first_secret_and_expire() -> None:
    clock = [1000.0]
    ice = IceServers(
        [{"urls": "stun:s:3478"}],
        turn_urls=["turn:t:3478"],
        secrets=["new", "old"],
        ttl=100,
        clock=lambda: clock[0],
    )
    issued = ice.issue("a:b")
    stun, turn = issued.servers
    assert stun == {"urls": "stun:s:3478"}
    assert turn["username"] == "1100:a_b"
    assert turn["credential"] == turn_credentials("new", "a_b", 1100)[1]
    assert issued.expires_at == 1100
    assert not ice.due(issued.expires_at)
    clock[0] = 1080
    assert ice.due(issued.expires_at)
    plain = IceServers([{"urls": "stun:s"}])
    assert plain.issue("x").expires_at == math.inf and not plain.expiring


async def test_clients_get_and_refresh_credentials(
    start_server: StartServer, connect: ConnectPeer, antmedia: ConnectAntMedia
) -> None:
    server = await start_server(
        ice_servers=(), turn_urls=("turn:127.0.0.1:3478",), turn_secrets=("s3cret",), turn_ttl=3.0
    )
    alice = await connect(server.url)
    reply = await alice.join("turn-room")
    (turn,) = reply["iceServers"]
    expiry, user = turn["username"].split(":", 1)
    assert user == alice.peer_id and int(expiry) > time.time()
    assert turn["credential"] == turn_credentials("s3cret", user, int(expiry))[1]
    # Before they expire, fresh ones arrive by themselves.
    fresh = (await alice.next("ice-servers", timeout=10))["iceServers"][0]
    assert int(fresh["username"].split(":")[0]) > int(expiry)

    am = await antmedia(server.url)
    config = await am.request("getIceServerConfig", "iceServerConfig")
    assert config["stunServerUri"] == "turn:127.0.0.1:3478" and config["turnServerCredential"]
    pushed = await am.next("iceServerConfig", timeout=10)
    assert pushed["turnServerUsername"] != config["turnServerUsername"]

    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/api/ice-servers") as response:
        body = await response.json()
    assert body["iceServers"][0]["username"].endswith(":anonymous") and body["expiresAt"] > time.time()


async def test_ice_servers_endpoint_needs_a_token_when_auth_is_on(start_server: StartServer) -> None:
    secret = "jwt-secret-long-enough-for-hs256-xxxx"
    server = await start_server(turn_urls=("turn:t:3478",), turn_secrets=("s",), jwt_secret=secret)
    url = f"{server.url}/api/ice-servers"
    good = jwt.encode({"sub": "user-7", "exp": int(time.time()) + 60}, secret, algorithm="HS256")
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 401
        async with http.get(url, headers={"Authorization": f"Bearer {good}"}) as response:
            body = await response.json()
    assert body["iceServers"][-1]["username"].endswith(":user-7")


async def test_call_through_coturn_with_issued_credentials(
    browser: Browser, start_server: StartServer, coturn: Coturn
) -> None:
    server = await start_server(ice_servers=(), turn_urls=(coturn.url,), turn_secrets=(coturn.secret,))
    alice = await open_page(browser, f"{server.url}/?room=relayed&name=A&relay=1")
    bob = await open_page(browser, f"{server.url}/?room=relayed&name=B&relay=1")
    for page in (alice, bob):
        await wait(page, "window.demo && window.demo.client.peerId")
        await wait_mesh_media(page, 1)
        assert await page.evaluate(SELECTED_RELAY)


async def test_coturn_refuses_forged_and_expired_credentials(
    browser: Browser, pages_url: str, coturn: Coturn
) -> None:
    page = await open_page(browser, f"{pages_url}/pages/turn-probe.html")
    now = int(time.time())

    def servers(secret: str, expires_at: int) -> list[dict[str, object]]:
        username, credential = turn_credentials(secret, "probe", expires_at)
        return [{"urls": coturn.url, "username": username, "credential": credential}]

    assert await page.evaluate("(s) => window.relayCandidates(s)", servers(coturn.secret, now + 600)) >= 1
    assert await page.evaluate("(s) => window.relayCandidates(s)", servers("forged-secret", now + 600)) == 0
    assert await page.evaluate("(s) => window.relayCandidates(s)", servers(coturn.secret, now - 60)) == 0
