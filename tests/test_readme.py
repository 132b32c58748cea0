"""The README is the protocol and settings reference: it must name every code, event and setting."""

from __future__ import annotations

from pathlib import Path

from signaling.core.errors import ErrorCode
from signaling.core.messages import Kicked
from signaling.settings import OPTIONS, Settings
from signaling.transports.antmedia import ERROR_DEFINITIONS, AntMediaTransport
from signaling.transports.socketio import SocketIOTransport, render
from tests.test_codec import MESSAGES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_error_code_is_documented() -> None:
    for code in ErrorCode:
        assert f"| `{code}` |" in README, code


def test_every_setting_is_documented_with_its_default() -> None:
    defaults = Settings()
    for option in OPTIONS:
        assert f"| `{option.env}` |" in README, option.env
        default = getattr(defaults, option.attribute)
        if isinstance(default, (int, float, str)) and not isinstance(default, bool):
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            assert f"| `{option.env}` | `{shown}` |" in README, option.env


def test_every_event_and_command_is_documented() -> None:
    """Read from the transports' own tables: a new event or command fails here until documented."""
    for event in SocketIOTransport.EVENTS:
        assert f"| `{event.name}` |" in README, event.name  # a row of the client -> server table
    for message in MESSAGES:  # every kind of core message, as socket.io clients get it
        if not isinstance(message, Kicked):
            name, _ = render(message)
            assert f"| `{name}` |" in README or f"`{name}` /" in README, name
    assert "| `kicked` |" in README and "| `error` |" in README
    for command in AntMediaTransport.COMMANDS:  # a row of the Ant Media command table
        assert f"| `{command.name}` |" in README or f"| `{command.name} {{" in README, command.name
    for definition in {*ERROR_DEFINITIONS.values(), "invalid_json", "missing_command", "unknown_command"}:
        assert f"`{definition}`" in README, definition


def test_the_design_map_names_every_module() -> None:
    design = README[README.index("## Design") : README.index("## Tests")]
    package = Path(__file__).resolve().parent.parent / "signaling"
    for path in package.rglob("*.py"):
        if path.name != "__init__.py":
            shown = str(path.relative_to(package.parent)) if path.parent == package else f"  {path.name} "
            assert shown in design, f"{path.relative_to(package.parent)} is not in the README's design map"


def test_two_commands() -> None:
    assert "bin/serve\n" in README and "bin/test\n" in README
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "exec bin/test" in ci
