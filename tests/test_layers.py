"""The layers of signaling/, read from the imports of every module (without importing any)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "signaling"
IO_LIBRARIES = {"socketio", "engineio", "aiohttp", "redis"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module the file imports, at any depth of the file (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


GRAPH = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def reachable(start: str) -> set[str]:
    """Everything `start` imports, directly or through other modules of the package."""
    seen: set[str] = set()
    pending = [start]
    while pending:
        for imported in GRAPH.get(pending.pop(), set()):
            if imported not in seen:
                seen.add(imported)
                pending.append(imported)
    return seen


def test_the_core_imports_no_transport_network_or_storage_library() -> None:
    core = [name for name in GRAPH if name.startswith("signaling.core.")]
    assert core, "no modules found under signaling/core"
    for name in core:
        libraries = {imported.split(".")[0] for imported in reachable(name)}
        assert not libraries & IO_LIBRARIES, f"{name} reaches {sorted(libraries & IO_LIBRARIES)}"
        outside = {i for i in reachable(name) if i.startswith("signaling.") and i in GRAPH}
        assert all(i.startswith("signaling.core") for i in outside), f"{name} imports {sorted(outside)}"


def test_settings_are_a_leaf_that_builds_no_transport() -> None:
    reached = reachable("signaling.settings")
    assert not {i for i in reached if i.startswith(("signaling.transports", "signaling.cluster"))}
    assert not {i.split(".")[0] for i in reached} & {"socketio", "engineio", "aiohttp", "redis"}
