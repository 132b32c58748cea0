"""The pytest plugin users get (signaling.testing), run the way a user's project runs it: a pytest
of its own, in pytest-asyncio's strict mode, on the README's example and a conftest of its own.
(Our suite runs on the same fixtures through tests/conftest.py; tests/test_packaging.py loads the
plugin from an installed package, through its entry point.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import readme_code

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = "### Testing your app or bot: pytest fixtures"

# A user's conftest that also names the plugin, as one would where it is not installed: with our
# `-p` below it must not be registered twice. Its settings override reaches every server.
CONFTEST = """
import dataclasses

import pytest

pytest_plugins = ["signaling.testing"]


@pytest.fixture
def signaling_settings(signaling_settings):
    return dataclasses.replace(signaling_settings, ice_servers=({"urls": "stun:conftest.test:3478"},))
"""

MORE_TESTS = """
import pytest

opened = []


@pytest.mark.asyncio
async def test_servers_start_from_the_conftest_settings(signaling_server, signaling_client):
    client = await signaling_client()
    opened.append(client)
    joined = await client.join("lobby")
    assert joined["iceServers"] == [{"urls": "stun:conftest.test:3478"}]
    assert await signaling_server.store.rooms_of(client.peer_id) == ["lobby"]


def test_clients_are_closed_at_teardown():
    assert opened and not opened[0].sio.connected
"""


def run_pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    (folder / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "signaling.testing"],
        cwd=folder,
        # A checkout, not an installed package: the plugin is found on the path.
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_readme_fixtures_example_passes_as_written(tmp_path: Path) -> None:
    (example,) = readme_code(FIXTURES)
    (tmp_path / "test_readme_example.py").write_text(example)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_more.py").write_text(MORE_TESTS)
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout, result.stdout


def test_the_readme_names_every_fixture_of_the_plugin() -> None:
    import signaling.testing

    section = "".join(readme_table_rows(FIXTURES))
    # What @pytest.fixture makes of a function (its type has no public name).
    kind = "FixtureFunctionDefinition"
    fixtures = [name for name, v in vars(signaling.testing).items() if type(v).__name__ == kind]
    assert len(fixtures) == 4
    for name in fixtures:
        assert f"| `{name}` |" in section, name


def readme_table_rows(section: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(section)
    lines = readme[start : readme.index("\n## ", start)].splitlines()
    return [line for line in lines if line.startswith("| `")]


def test_without_pytest_asyncio_only_the_tests_using_the_fixtures_fail(tmp_path: Path) -> None:
    """pytest loads the plugin in every run of an environment that has the package: one without
    pytest-asyncio must still run its other tests."""
    missing = tmp_path / "shadow" / "pytest_asyncio"
    missing.mkdir(parents=True)
    (missing / "__init__.py").write_text('raise ImportError("pytest-asyncio is not installed")\n')
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_mine.py").write_text(
        "def test_unrelated():\n    pass\n\n\ndef test_with_a_server(signaling_server):\n    pass\n"
    )
    # pytest-asyncio's own entry point would not load either: left out, as if not installed.
    command = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "signaling.testing"]
    result = subprocess.run(
        [sys.executable, *command],
        cwd=project,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(missing.parent), str(ROOT)])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "1 passed, 1 error" in result.stdout, result.stdout + result.stderr
    assert "need pytest-asyncio: pip install 'webrtc-signaling[testing]'" in result.stdout
