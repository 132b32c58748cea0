"""What operators get: metrics, the admin API with kick, JSON logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest

from signaling.operations.logs import JsonFormatter
from tests.cluster_support import StartNodes
from tests.conftest import ConnectAntMedia, RunningServer, StartServer
from tests.helpers import CANDIDATE, SDP_OFFER, ConnectPeer, joined_pair

TOKEN = "s3cret-admin-token"


async def call(method: str, url: str, token: str | None = TOKEN, **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, **kwargs) as response,
    ):
        return response.status, await response.json(content_type=None)


async def scrape(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_metrics(server: RunningServer, connect: ConnectPeer, antmedia: ConnectAntMedia) -> None:
    alice, bob = await joined_pair(connect)
    am = await antmedia()
    await am.request("join", "notification:joined", streamId="metered")
    assert bob.peer_id
    await alice.offer(bob.peer_id, SDP_OFFER)
    await alice.ice_candidate(bob.peer_id, CANDIDATE)
    await alice.request("offer", {"target": "nobody", "sdp": SDP_OFFER})
    await am.request("bogus", "error")
    samples = await scrape(server.url)
    assert samples['signaling_connections{transport="socketio"}'] == 2
    assert samples['signaling_connections{transport="antmedia"}'] == 1
    assert samples['signaling_messages_relayed_total{kind="offer"}'] == 1
    assert samples['signaling_messages_relayed_total{kind="candidate"}'] == 1
    assert samples['signaling_errors_total{code="unknown_target",transport="socketio"}'] == 1
    assert samples['signaling_errors_total{code="unknown_event",transport="antmedia"}'] == 1
    assert samples["signaling_relay_seconds_count"] == 2
    assert samples["signaling_rooms"] == 2
    assert samples["signaling_peers"] == 3
    assert samples["signaling_redis_up"] == 1


async def test_admin_api_needs_its_token(start_server: StartServer) -> None:
    off = await start_server()
    assert (await call("GET", f"{off.url}/api/admin/rooms"))[0] == 403
    on = await start_server(admin_token=TOKEN)
    assert (await call("GET", f"{on.url}/api/admin/rooms", token=None))[0] == 401
    assert (await call("GET", f"{on.url}/api/admin/rooms", token="wrong"))[0] == 401
    assert await call("GET", f"{on.url}/api/admin/rooms") == (200, {"rooms": []})
    status, spec = await call("GET", f"{on.url}/api/admin/openapi.json", token=None)
    assert status == 200 and spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/api/admin/rooms",
        "/api/admin/rooms/{room}",
        "/api/admin/peers/{peer}/kick",
    }


async def test_admin_lists_rooms_and_kicks(
    start_server: StartServer, connect: ConnectPeer, antmedia: ConnectAntMedia
) -> None:
    admin = await start_server(admin_token=TOKEN)
    alice = await connect(admin.url)
    await alice.join("ops", {"name": "alice"})
    bob = await connect(admin.url)
    await bob.join("ops")
    await alice.next("peer-joined")
    await bob.publish("bob-cam", room="ops")
    status, rooms = await call("GET", f"{admin.url}/api/admin/rooms")
    assert status == 200
    assert rooms == {
        "rooms": [
            {
                "room": "ops",
                "peers": [
                    {"peerId": alice.peer_id, "metadata": {"name": "alice"}},
                    {"peerId": bob.peer_id, "metadata": {}},
                ],
                "streams": [{"streamId": "bob-cam", "publisher": bob.peer_id, "viewers": []}],
            }
        ]
    }
    assert (await call("GET", f"{admin.url}/api/admin/rooms/ops"))[1]["room"] == "ops"
    assert (await call("GET", f"{admin.url}/api/admin/rooms/nowhere"))[0] == 404

    status, body = await call(
        "POST", f"{admin.url}/api/admin/peers/{bob.peer_id}/kick", json={"reason": "spam"}
    )
    assert (status, body) == (200, {"kicked": bob.peer_id})
    assert await bob.next("kicked") == {"reason": "spam"}
    await bob.next("disconnect")
    assert await alice.next("peer-left") == {"room": "ops", "peerId": bob.peer_id, "reason": "kicked"}
    assert (await alice.next("stream-unpublished"))["streamId"] == "bob-cam"
    assert (await call("POST", f"{admin.url}/api/admin/peers/nobody/kick"))[0] == 404
    assert (await call("POST", f"{admin.url}/api/admin/peers/x/kick", data="not json"))[0] == 400

    am = await antmedia(admin.url)
    await am.request("join", "notification:joined", streamId="ops-call")
    am_id = (await call("GET", f"{admin.url}/api/admin/rooms/ops-call"))[1]["peers"][0]["peerId"]
    await call("POST", f"{admin.url}/api/admin/peers/{am_id}/kick", json={"reason": "bye"})
    assert (await am.next("notification:kicked"))["reason"] == "bye"
    assert await am.closed is not None


async def test_kick_across_nodes(start_nodes: StartNodes, connect: ConnectPeer) -> None:
    a, b = await start_nodes(2, ADMIN_TOKEN=TOKEN)
    alice = await connect(a.url)
    await alice.join("far")
    bob = await connect(b.url)
    await bob.join("far")
    await alice.next("peer-joined")
    _, rooms = await call("GET", f"{a.url}/api/admin/rooms")
    assert [p["peerId"] for p in rooms["rooms"][0]["peers"]] == [alice.peer_id, bob.peer_id]
    # Asked on node A, the peer held by node B is told and disconnected.
    assert (await call("POST", f"{a.url}/api/admin/peers/{bob.peer_id}/kick", json={"reason": "far away"}))[
        0
    ] == 200
    assert await bob.next("kicked") == {"reason": "far away"}
    assert (await alice.next("peer-left"))["reason"] == "kicked"


def test_json_logs() -> None:
    record = logging.LogRecord(
        "signaling.core.hub", logging.INFO, __file__, 1, "peer=%s room=%s joined", ("p1", "r"), None
    )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "peer=p1 room=r joined"
    assert entry["level"] == "INFO" and entry["logger"] == "signaling.core.hub"
    assert "\n" not in line


@pytest.mark.parametrize("value", ["xml"])
def test_log_format_is_checked(value: str) -> None:
    from signaling.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        Settings.load([], {"LOG_FORMAT": value})
