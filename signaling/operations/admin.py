"""Operator endpoints: the admin REST API (bearer token) and /metrics.

The admin API reads and changes the shared state through the hub, so with Redis it sees and acts
on the whole cluster from any node. Its OpenAPI description is admin-openapi.json beside this file.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from signaling.core.errors import SignalingError
from signaling.core.hub import Hub
from signaling.operations.metrics import Metrics

OPENAPI = Path(__file__).with_name("admin-openapi.json")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class AdminApi:
    def __init__(self, hub: Hub, metrics: Metrics, *, token: str | None, ready: Callable[[], bool]) -> None:
        self._hub = hub
        self._metrics = metrics
        self._token = token
        self._ready = ready

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/admin/rooms", self._guarded(self.list_rooms)),
            web.get("/api/admin/rooms/{room}", self._guarded(self.get_room)),
            web.post("/api/admin/peers/{peer}/kick", self._guarded(self.kick)),
            web.get("/api/admin/openapi.json", self.openapi),
            web.get("/metrics", self.metrics),
        ]

    def _guarded(self, handler: Handler) -> Handler:
        async def check(request: web.Request) -> web.StreamResponse:
            if not self._token:
                return _error(403, "admin_disabled", "the admin API is off: set ADMIN_TOKEN to turn it on")
            # aiohttp keeps undecodable header bytes as surrogates: compare the bytes as sent.
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, f"Bearer {self._token}".encode()):
                return _error(401, "unauthorized", "send Authorization: Bearer <ADMIN_TOKEN>")
            try:
                return await handler(request)
            except SignalingError as error:
                return _error(503, str(error.code), error.message)

        return check

    async def _room(self, room: str) -> dict[str, Any]:
        members = await self._hub.members(room)
        streams = await self._hub.room_streams(room)
        return {
            "room": room,
            "peers": [{"peerId": m.peer_id, "metadata": m.metadata} for m in members],
            "streams": [
                {"streamId": s.stream_id, "publisher": s.publisher, "viewers": list(s.viewers)}
                for s in streams
            ],
        }

    async def list_rooms(self, request: web.Request) -> web.Response:
        rooms = [await self._room(name) for name in await self._hub.room_names()]
        return web.json_response({"rooms": [room for room in rooms if room["peers"]]})

    async def get_room(self, request: web.Request) -> web.Response:
        room = await self._room(request.match_info["room"])
        if not room["peers"]:
            return _error(404, "not_found", f"no room {request.match_info['room']!r}")
        return web.json_response(room)

    async def kick(self, request: web.Request) -> web.Response:
        peer = request.match_info["peer"]
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return _error(400, "invalid_payload", 'the body must be JSON: {"reason": "..."}')
        reason = body.get("reason") if isinstance(body, dict) else None
        if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
            return _error(400, "validation_failed", "reason must be a string of at most 200 characters")
        if not await self._hub.kick(peer, reason or "removed by an operator"):
            return _error(404, "not_found", f"no peer {peer!r}")
        return web.json_response({"kicked": peer})

    async def openapi(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(OPENAPI, headers={"Content-Type": "application/json"})

    async def metrics(self, request: web.Request) -> web.Response:
        self._metrics.redis_up.set(1 if self._ready() else 0)
        try:
            rooms, peers = await self._hub.stats()
        except SignalingError:  # the counts stay as last scraped while the store is unreachable
            pass
        else:
            self._metrics.rooms.set(rooms)
            self._metrics.peers.set(peers)
        return web.Response(body=self._metrics.render(), content_type="text/plain", charset="utf-8")
