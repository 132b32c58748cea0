"""The classic relay of server.js on python-socketio and aiohttp, as its documentation shows, with
python-socketio's own way to scale out: nodes that share rooms through `AsyncRedisManager`. A
message to `target` on another node reaches it through Redis. Without a Redis URL: one plain node.

    .venv/bin/python bench/reference/asyncredis_relay.py PORT [REDIS_URL]
"""

import sys
from typing import Any

import socketio
from aiohttp import web

port = int(sys.argv[1])
manager = socketio.AsyncRedisManager(sys.argv[2]) if len(sys.argv) > 2 else None
sio = socketio.AsyncServer(cors_allowed_origins="*", transports=["websocket"], client_manager=manager)
app = web.Application()
sio.attach(app)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


app.router.add_get("/", health)


@sio.on("join")  # type: ignore[untyped-decorator]
async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    await sio.enter_room(sid, data["room"])
    await sio.emit("peer-joined", {"room": data["room"], "peerId": sid}, to=data["room"], skip_sid=sid)
    return {"ok": True, "peerId": sid}


for event in ("offer", "answer", "ice-candidate"):

    async def relay(sid: str, data: dict[str, Any], event: str = event) -> None:
        await sio.emit(event, {**data, "from": sid}, to=data["target"], skip_sid=sid)

    sio.on(event, relay)

web.run_app(app, host="127.0.0.1", port=port, print=None)
