"""Several real server processes sharing one real redis-server: the cluster under test."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis

from signaling.cluster import channels
from tests.helpers import free_port
from tests.redis_support import RedisServer

ROOT = Path(__file__).resolve().parent.parent
LEASE_SECONDS = 1.5


@dataclass
class NodeProcess:
    url: str
    process: asyncio.subprocess.Process
    node_id: str = ""

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws")

    def kill(self) -> None:
        """kill -9: no goodbye, no cleanup; the others must notice by themselves."""
        self.process.send_signal(signal.SIGKILL)


async def get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def wait_until(check: Callable[[], Awaitable[bool] | bool], what: str, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        held = check()
        if await held if inspect.isawaitable(held) else held:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


async def channel_clients(spy: redis.Redis, node_id: str) -> list[dict[str, str]]:
    """A node's channel connections as Redis lists them (CLIENT LIST): `cmd` "subscribe" is the
    one it listens on."""
    name = channels.client_name(node_id)
    return [client for client in await spy.client_list() if client["name"] == name]


async def start_node(redis_url: str, *extra: str, **env: str) -> NodeProcess:
    port = free_port()
    environment = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "REDIS_URL": redis_url,
        "NODE_LEASE_SECONDS": str(LEASE_SECONDS),
        "ICE_SERVERS": "stun:127.0.0.1:3478",
        "LOG_LEVEL": os.environ.get("NODE_LOG_LEVEL", "WARNING"),
        "RATE_RELAY": "100000/100000",
        "RATE_CONTROL": "100000/100000",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "app.py", *extra, cwd=ROOT, env=environment
    )
    node = NodeProcess(f"http://127.0.0.1:{port}", process)

    async def ready() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"node exited with {process.returncode}")
        try:
            status, _ = await get_json(f"{node.url}/readyz")
        except aiohttp.ClientError:
            return False
        return status == 200

    await wait_until(ready, f"node on port {port} to be ready")
    node.node_id = str((await get_json(f"{node.url}/healthz"))[1]["node"])
    return node


StartNodes = Callable[..., Awaitable[list[NodeProcess]]]


@pytest.fixture
async def start_nodes(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[StartNodes]:
    """Start server processes on a flushed Redis; all are stopped at the end of the test. Their
    session key file is the test's own (each node's, unless a test gives one)."""
    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    started: list[NodeProcess] = []

    async def start(count: int, *extra: str, **env: str) -> list[NodeProcess]:
        nodes = [
            await start_node(
                redis_server.url,
                *extra,
                **{"SESSION_KEY_FILE": str(tmp_path / f"node-{len(started) + n}.key"), **env},
            )
            for n in range(count)
        ]
        started.extend(nodes)
        return nodes

    yield start
    for node in started:
        if node.process.returncode is None:
            node.process.terminate()
    for node in started:
        try:
            await asyncio.wait_for(node.process.wait(), 10)
        except TimeoutError:
            node.kill()
            await node.process.wait()
