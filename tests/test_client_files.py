"""What /client/ serves: the files browsers load (the library, the demo assets and the vendored
socket.io-client), every import among them resolvable, and nothing else of client_js/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import RunningServer

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "client_js"
VENDORED = CLIENT / "vendor" / "socket.io.esm.min.js"
# Static imports and re-exports with a relative or /client/ path (the vendored bundle has none).
IMPORT = re.compile(r"""^\s*(?:import|export)\b[^"';]*?\bfrom\s*["']([./][^"']+)["']""", re.MULTILINE)


def test_the_vendored_socketio_client_is_the_pinned_npm_package() -> None:
    # The copy browsers load is committed (a deploy without npm still works); package.json and its
    # lockfile pin the version, and bin/setup --dev installs that package to compare against.
    package = CLIENT / "node_modules" / "socket.io-client"
    assert package.is_dir(), "client_js/node_modules is missing: bin/setup --dev runs npm ci there"
    pinned = json.loads((CLIENT / "package.json").read_text())["dependencies"]["socket.io-client"]
    assert json.loads((package / "package.json").read_text())["version"] == pinned
    for name in ("socket.io.esm.min.js", "socket.io.esm.min.js.map"):
        assert (CLIENT / "vendor" / name).read_bytes() == (package / "dist" / name).read_bytes(), (
            f"client_js/vendor/{name} differs from socket.io-client {pinned}: copy "
            f"client_js/node_modules/socket.io-client/dist/{name} there (client_js/vendor/README.md)"
        )
    assert f"Socket.IO v{pinned}" in VENDORED.read_text()[:200]


def _imports(url_path: str, source: str) -> list[str]:
    base = url_path.rsplit("/", 1)[0]
    found = []
    for target in IMPORT.findall(source):
        if target.startswith("/"):
            found.append(target)
        else:
            parts = f"{base}/{target}".split("/")
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            found.append("/".join(resolved))
    return found


async def test_every_module_the_demo_pages_load_is_served(server: RunningServer) -> None:
    """Follows the pages' scripts and every static import from them, as a browser would."""
    pending = ["/client/demo/room.js", "/client/demo/broadcast.js", "/client/demo/demo.css"]
    seen: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for page, script in (("/", "room.js"), ("/broadcast", "broadcast.js")):
            async with http.get(f"{server.url}{page}") as response:
                assert response.status == 200
                html = await response.text()
            assert f'src="/client/demo/{script}"' in html and 'href="/client/demo/demo.css"' in html
        while pending:
            path = pending.pop()
            if path in seen:
                continue
            seen.add(path)
            async with http.get(f"{server.url}{path}") as response:
                assert response.status == 200, path
                if path.endswith(".js"):
                    # Browsers refuse a module served as anything but JavaScript.
                    assert response.content_type in ("text/javascript", "application/javascript"), path
                    pending.extend(_imports(path, await response.text()))
    assert "/client/vendor/socket.io.esm.min.js" in seen
    assert "/client/signaling-client.js" in seen


@pytest.mark.parametrize(
    "path",
    [
        "/client/test/client.test.js",
        "/client/test/fakes.js",
        "/client/package-lock.json",
        "/client/package.json",
        "/client/README.md",
        "/client/vendor/README.md",
        "/client/node_modules/socket.io-client/package.json",
        "/client/node_modules/socket.io-client/dist/socket.io.js",
        "/client/node_modules/ws/index.js",
        "/client/demo/%2e%2e/package.json",
        "/client/%2e%2e/app.py",
        "/client/demo/",
        "/client/",
    ],
)
async def test_client_serves_nothing_browsers_do_not_load(server: RunningServer, path: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}{path}") as response:
        assert response.status == 404, await response.text()


async def test_the_library_and_its_source_map_are_served(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/client/vendor/socket.io.esm.min.js", "/client/vendor/socket.io.esm.min.js.map"):
            async with http.get(f"{server.url}{path}") as response:
                assert response.status == 200, path
                assert await response.read() == (CLIENT / path.removeprefix("/client/")).read_bytes()
