"""Builds the aiohttp application: socket.io, the Ant Media WebSocket, health check, the browser
client and its demo pages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from signaling.core.errors import ErrorCode, SignalingError
from signaling.core.hub import Hub, LocalDelivery
from signaling.core.sessions import MemorySessions
from signaling.core.store import MemoryStore, Store
from signaling.operations.admin import AdminApi
from signaling.operations.listener import TcpConnections
from signaling.operations.logs import brief, client_address
from signaling.operations.metrics import Metrics
from signaling.security.guard import Guard
from signaling.security.session_keys import SessionKeys, load_key
from signaling.security.turn import IceServers
from signaling.settings import Settings
from signaling.transports import fastjson
from signaling.transports.antmedia import AntMediaTransport
from signaling.transports.engine import SignalingServer
from signaling.transports.socketio import SocketIOTransport

if TYPE_CHECKING:
    from signaling.cluster.nodes import Cluster

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
# In a checkout the browser client is client_js/ beside the package; `pip install` puts a copy of
# what browsers load inside the package (pyproject's package data), as there is no checkout then.
INSTALLED_CLIENT_DIR = Path(__file__).resolve().parent / "client_js"
CLIENT_DIR = INSTALLED_CLIENT_DIR if INSTALLED_CLIENT_DIR.is_dir() else ROOT / "client_js"
SWEEP_INTERVAL = 1.0  # seconds between looks for held sessions whose grace is over

HUB = web.AppKey("hub", Hub)
SOCKETIO = web.AppKey("socketio", SignalingServer)
ANTMEDIA = web.AppKey("antmedia", AntMediaTransport)
CLUSTER: web.AppKey[Cluster] = web.AppKey("cluster")
TCP_CONNECTIONS = web.AppKey("tcp_connections", TcpConnections)
GUARD = web.AppKey("guard", Guard)


HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def client_requests(request: web.Request, handler: HttpHandler) -> web.StreamResponse:
    """Every HTTP request, WebSockets included: the lines logged while it is handled count against
    its client's budget (signaling.operations.logs), and nothing it provokes writes a traceback."""
    client_address.set(request.remote or "unknown")
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except OSError as exc:
        if isinstance(request.match_info.route.resource, web.StaticResource):
            raise web.HTTPNotFound() from None  # a path the file system cannot even look up
        return _failed(request, exc)
    except Exception as exc:
        return _failed(request, exc)


def _failed(request: web.Request, exc: Exception) -> web.Response:
    log.error("%s %s failed: %s", request.method, request.path, brief(exc))
    log.debug(
        "the failure of %s %s", request.method, request.path, exc_info=(type(exc), exc, exc.__traceback__)
    )
    failure = SignalingError(ErrorCode.INTERNAL_ERROR, "the server failed to handle this request")
    return web.json_response({"error": failure.to_dict()}, status=500)


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers. Says which node answered, useful behind a load balancer."""
    cluster = request.app.get(CLUSTER)
    return web.json_response({"status": "ok", "node": cluster.node_id if cluster else None})


async def readyz(request: web.Request) -> web.Response:
    """Ready to serve: always alone; with Redis, only while Redis answers and the node is in."""
    cluster = request.app.get(CLUSTER)
    if cluster is None or cluster.ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "unavailable", "reason": "Redis unreachable"}, status=503)


def ice_servers_endpoint(
    ice: IceServers, guard: Guard
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """GET /api/ice-servers: for apps that set up peer connections without this server's
    signaling. With JWT auth on, it needs `Authorization: Bearer <JWT>` like any client."""

    async def serve(request: web.Request) -> web.StreamResponse:
        user = "anonymous"
        if guard.verifier is not None:
            header = request.headers.get("Authorization", "")
            try:
                grant = guard.verifier.verify(header.removeprefix("Bearer ").strip() or None)
            except SignalingError as error:
                return web.json_response({"error": error.to_dict()}, status=401)
            user = grant.subject or "user"
        issued = ice.issue(user)
        expires = None if issued.expires_at == math.inf else int(issued.expires_at)
        return web.json_response({"iceServers": issued.servers, "expiresAt": expires})

    return serve


def refresh_ice_forever(
    ice: IceServers, transports: list[SocketIOTransport | AntMediaTransport]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(min(60.0, ice.ttl / 10))
                for transport in transports:
                    await transport.refresh_ice()

        task = asyncio.create_task(loop(), name="ice-refresh")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


# What browsers load from /client/, by folder and file suffix: the library's modules, the demo
# pages' assets and the vendored socket.io-client. Not its unit tests, lockfile, node_modules or
# READMEs, which would only tell the world what the browser has no use for.
CLIENT_FILES = {"": (".js",), "demo": (".js", ".css", ".html"), "vendor": (".js", ".js.map")}
SOCKETIO_CLIENT = Path("vendor", "socket.io.esm.min.js")


async def client_file(request: web.Request) -> web.StreamResponse:
    folder, _, name = request.match_info["path"].rpartition("/")
    suffixes = CLIENT_FILES.get(folder)
    if suffixes is None or not name.endswith(suffixes) or name.startswith("."):
        raise web.HTTPNotFound()
    path = CLIENT_DIR / folder / name
    try:
        found = path.is_file()
    except OSError:  # a name the file system cannot even look up (too long)
        found = False
    if not found:
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    path = CLIENT_DIR / "demo" / name

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path)

    return serve


async def _started(sio: SignalingServer) -> None:
    sio.start_service()


async def _draining(hub: Hub) -> None:
    # Shutting down: every client is told to reconnect (socket.io clients see their transport
    # close and reconnect by themselves; Ant Media SDKs get server_will_stop), so that none waits
    # on a process that no longer serves it.
    await hub.delivery.evict_all("the server is restarting: connect again")


def sweep_sessions_forever(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    """End held sessions once their grace is over (or they overflowed), within a second or so."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(SWEEP_INTERVAL)
                try:
                    await hub.sweep()
                except SignalingError as error:
                    log.warning("held sessions not swept now: %s", error.message)

        task = asyncio.create_task(loop(), name="session-sweeper")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


def session_keys(settings: Settings) -> SessionKeys:
    path = Path(settings.session_key_file)
    # Relative paths are beside app.py in a checkout; installed, beside the package would be in
    # site-packages, so they mean the working directory, as for any command.
    base = ROOT if (ROOT / "app.py").is_file() else Path.cwd()
    key = load_key(settings.session_secret, path if path.is_absolute() else base / path)
    return SessionKeys(key, shared=bool(settings.session_secret))


def _hub(
    app: web.Application, settings: Settings, store: Store | None, keys: SessionKeys, metrics: Metrics
) -> Hub:
    if not settings.redis_url:
        sessions = MemorySessions(grace=settings.session_grace, buffer_bytes=settings.session_buffer_bytes)
        return Hub(
            store or MemoryStore(settings.peer_limits),
            LocalDelivery(sessions),
            room_capacity=settings.room_capacity,
        )
    # Imported only here: a single process needs neither Redis nor its client library.
    from signaling.cluster.nodes import Cluster

    cluster = Cluster(
        settings.redis_url,
        limits=settings.peer_limits,
        lease_seconds=settings.node_lease,
        grace=settings.session_grace,
        buffer_bytes=settings.session_buffer_bytes,
        keys=keys,
    )
    hub = Hub(
        cluster.store,
        cluster.delivery,
        room_capacity=settings.room_capacity,
        node=cluster.node_id,
    )
    cluster.bind(hub)
    cluster.delivery.on_skipped = lambda why: metrics.envelopes_skipped.labels(why).inc()
    metrics.view_synced.set_function(lambda: int(cluster.delivery.replica.synced))
    app[CLUSTER] = cluster
    app.cleanup_ctx.append(cluster.lifecycle)
    return hub


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    """The whole server; `store` replaces the in-memory state (tests, other backends)."""
    if not (CLIENT_DIR / SOCKETIO_CLIENT).is_file():
        # Committed with the code: missing only from a broken copy or package. The demo pages say
        # so to their users; this says so to whoever deployed it.
        log.warning(
            "%s is missing: the browser library and demo pages cannot load", CLIENT_DIR / SOCKETIO_CLIENT
        )
    metrics = Metrics()
    guard = Guard(
        rate_limits=settings.rate_limits,
        connections_per_address=settings.max_connections_per_ip,
        metrics=metrics,
        verifier=settings.token_verifier,
        flood_cooldown=settings.flood_cooldown,
    )
    app = web.Application(middlewares=[client_requests])
    app[TCP_CONNECTIONS] = TcpConnections(guard, settings.max_connections_per_ip)
    app[GUARD] = guard
    keys = session_keys(settings)
    hub = _hub(app, settings, store, keys, metrics)
    hub.observer = metrics
    sio = SignalingServer(
        max_unread=settings.max_unread_bytes,
        async_mode="aiohttp",
        cors_allowed_origins=settings.cors_allowed_origins,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_http_buffer_size=settings.max_message_bytes,
        # Long-polling needs every request of a session on one process; several workers on one
        # port cannot promise that, so they speak WebSocket only.
        transports=["websocket"] if settings.workers > 1 else ["polling", "websocket"],
        # The libraries' own loggers would each get a handler of their own, past our format and
        # the clients' log budgets: given loggers, they log through the root handler like ours.
        logger=logging.getLogger("socketio.server"),
        engineio_logger=logging.getLogger("engineio.server"),
        json=fastjson,
    )
    ice = settings.ice
    socketio_transport = SocketIOTransport(hub, sio, limits=settings.limits, guard=guard, ice=ice, keys=keys)
    antmedia = AntMediaTransport(
        hub,
        limits=settings.limits,
        max_message_bytes=settings.max_message_bytes,
        max_unread=settings.max_unread_bytes,
        idle_timeout=settings.antmedia_idle_timeout,
        guard=guard,
        allowed_origins=settings.cors_allowed_origins,
        ice=ice,
    )

    app[HUB] = hub
    app[SOCKETIO] = sio
    app[ANTMEDIA] = antmedia
    sio.attach(app)
    app.on_startup.append(lambda _: _started(sio))
    app.on_shutdown.append(lambda _: _draining(hub))
    # WebSockets are no longer aiohttp's once open (see WebSocketLink): both protocols' are cut
    # off and their ends waited for here, together, before the app cleans up.
    app.on_shutdown.append(
        lambda _: asyncio.gather(
            sio.links.cut_off(settings.drain_timeout), antmedia.links.cut_off(settings.drain_timeout)
        )
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    cluster = app.get(CLUSTER)
    admin = AdminApi(hub, metrics, token=settings.admin_token, ready=lambda: cluster is None or cluster.ready)
    app.router.add_routes(admin.routes())
    app.router.add_get("/api/ice-servers", ice_servers_endpoint(ice, guard))
    app.cleanup_ctx.append(sweep_sessions_forever(hub))
    if ice.expiring:
        app.cleanup_ctx.append(refresh_ice_forever(ice, [socketio_transport, antmedia]))
    app.router.add_get("/{app}/websocket", antmedia.handle)
    # aiohttp tries the routes under /client/ before /{app}/..., so that app name needs its own.
    app.router.add_get("/client/websocket", antmedia.handle)
    app.router.add_get("/", page("room.html"))
    app.router.add_get("/broadcast", page("broadcast.html"))
    app.router.add_get("/client/{path:.+}", client_file)
    return app
