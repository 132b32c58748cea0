"""`pip install <checkout>` as a user runs it: into a fresh virtualenv, then used from a folder
outside the checkout: the `signaling-server` command and its pages, the README's bot example as
written, and the pytest plugin found through its entry point."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from signaling.testing import RunningServer
from tests.helpers import free_port, readme_code
from tests.hostile_support import wait_healthy

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_is_installed() -> None:
    """The packages are listed in pyproject (client_js/ is mapped into the package): a new one
    missing from that list would be missing from every install."""
    found = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "signaling").rglob("__init__.py")
    }
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == found | {"signaling.client_js"}


@dataclass
class Installed:
    venv: Path
    elsewhere: Path  # a working directory outside the checkout

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def env(self, **extra: str) -> dict[str, str]:
        # Nothing of the checkout on the path: only the installed package can be imported.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SESSION_SECRET")}
        return {**env, "PATH": f"{self.venv / 'bin'}:{env.get('PATH', '')}", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("installed")
    # A copy of the checkout as a fresh clone has it: setuptools builds inside the source tree,
    # which would leave build/ in ours, under other test runs' feet.
    source = base / "checkout"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "node_modules", "test-artifacts", "__pycache__", ".*cache", ".hypothesis"
        ),
    )
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The dependencies are this environment's (the same pins): the venv sees them through a .pth
    # file instead of downloading them again. pip, too, comes from here.
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(source)],
        check=True,
        timeout=300,
    )
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return Installed(venv, elsewhere)


@pytest.fixture
async def installed_server(installed: Installed) -> AsyncIterator[str]:
    """`signaling-server` as installed, started from outside the checkout."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(installed.venv / "bin" / "signaling-server"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        cwd=installed.elsewhere,
        env=installed.env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)


def run(installed: Installed, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed.python, *args],
        cwd=installed.elsewhere,
        env=installed.env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.process
def test_the_package_is_the_installed_copy_with_the_pinned_dependencies(installed: Installed) -> None:
    where = run(installed, "-c", "import signaling.client, signaling.server; print(signaling.__file__)")
    assert where.stdout.startswith(str(installed.venv)), where.stdout + where.stderr
    requires = run(installed, "-c", "import importlib.metadata as m; print(m.requires('webrtc-signaling'))")
    declared = {line for line in eval(requires.stdout) if "extra ==" not in line}
    pinned = {
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert declared == pinned


@pytest.mark.process
async def test_the_server_command_serves_its_pages(
    installed: Installed, installed_server: str, server: RunningServer
) -> None:
    """Every file of client_js/ the checkout's server serves, the installed one serves too (and
    nothing it refuses): the package data holds what browsers load."""
    client_js = ROOT / "client_js"
    files = [
        path.relative_to(client_js).as_posix()
        for path in sorted(client_js.rglob("*"))
        if path.is_file() and "node_modules" not in path.parts
    ]
    async with aiohttp.ClientSession() as http:

        async def status(url: str) -> int:
            async with http.get(url) as response:
                return response.status

        for path in ["/", "/broadcast", *(f"/client/{name}" for name in files)]:
            assert await status(installed_server + path) == await status(server.url + path), path
        assert await status(f"{installed_server}/client/vendor/socket.io.esm.min.js") == 200
    # Not beside the installed package, in site-packages: in the folder it was started from.
    assert (installed.elsewhere / ".session-key").is_file()


@pytest.mark.process
def test_the_readme_bot_example_runs_as_written(installed: Installed, installed_server: str) -> None:
    (example,) = readme_code("### Bots")
    (installed.elsewhere / "bots.py").write_text(example)
    result = run(installed, "bots.py", SIGNALING_URL=installed_server)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("calling bot: answered by ") for line in lines), lines
    assert any(line.startswith("answering bot: answered ") for line in lines), lines


@pytest.mark.process
def test_the_installed_pytest_plugin_runs_the_readme_example(installed: Installed) -> None:
    """Loaded by its entry point, also where a conftest names it too (not registered twice)."""
    tests = installed.elsewhere / "user-tests"
    tests.mkdir()
    (example,) = readme_code("### Testing your app or bot: pytest fixtures")
    (tests / "test_example.py").write_text(example)
    (tests / "conftest.py").write_text('pytest_plugins = ["signaling.testing"]\n')
    (tests / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [installed.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tests,
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout
