"""What signaling.transports.engine relies on in python-socketio and python-engineio beyond their
public API (engine.RELIES_ON), checked against the installed versions: an upgrade that renames a
method, changes its parameters or drops an attribute fails here, saying which."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import engineio
import pytest
import socketio
from aiohttp import web_protocol
from engineio import async_socket

from signaling.transports.engine import RELIES_ON, DirectSocket, Pinger


def owner(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def instance_of(path: str) -> Any:
    """A real instance, for attributes that are set in constructors."""
    server = socketio.AsyncServer(async_mode="aiohttp")
    if path == "aiohttp.web_protocol.RequestHandler":
        return _RequestHandlerSlots()
    return {
        "socketio.AsyncServer": server,
        "socketio.async_manager.AsyncManager": server.manager,
        "engineio.AsyncServer": server.eio,
        "engineio.async_socket.AsyncSocket": async_socket.AsyncSocket(server.eio, "sid"),
    }[path]


class _RequestHandlerSlots:
    """aiohttp's RequestHandler (one per connection) is slotted: its attributes are its slots
    (and its base classes')."""

    def __getattr__(self, name: str) -> None:
        if not any(name in getattr(cls, "__slots__", ()) for cls in web_protocol.RequestHandler.__mro__):
            raise AttributeError(name)


@pytest.mark.parametrize(("path", "name", "parameters"), RELIES_ON, ids=[f"{p}.{n}" for p, n, _ in RELIES_ON])
def test_the_libraries_still_have_what_the_engine_module_relies_on(
    path: str, name: str, parameters: tuple[str, ...] | None
) -> None:
    if parameters is None:
        assert hasattr(instance_of(path), name), f"{path} instances no longer have {name!r}"
        return
    member = getattr(owner(path), name, None)
    assert callable(member), f"{path}.{name} is gone"
    found = tuple(inspect.signature(member).parameters)[: len(parameters)]
    assert found == parameters, f"{path}.{name} now takes {found}, engine.py expects {parameters}"


def test_the_websocket_driver_and_reasons_are_where_engine_py_replaces_and_reads_them() -> None:
    server = socketio.AsyncServer(async_mode="aiohttp")
    assert "websocket" in server.eio._async, "engine.io's async drivers no longer have a 'websocket'"
    for reason in ("TRANSPORT_ERROR", "TRANSPORT_CLOSE", "CLIENT_DISCONNECT"):
        assert hasattr(server.eio.reason, reason), f"engine.io reasons lost {reason}"
    assert engineio.packet.packet_names, "engine.io packet names are gone"


def test_switching_a_session_to_directsocket_keeps_its_state() -> None:
    # DirectSocket.adopt swaps the class of sessions engine.io built: possible only while neither
    # class has __slots__ and DirectSocket adds no constructor.
    server = socketio.AsyncServer(async_mode="aiohttp")
    session = async_socket.AsyncSocket(server.eio, "sid")
    assert not hasattr(async_socket.AsyncSocket, "__slots__")
    assert DirectSocket.__init__ is async_socket.AsyncSocket.__init__
    pinger = Pinger(25)
    adopted = DirectSocket.adopt(session, 1024, pinger)
    assert adopted is session and adopted.sid == "sid" and adopted.max_unread == 1024
    assert adopted.pinger is pinger


def test_aiohttp_lets_go_of_its_http_parser_where_engine_py_drops_it() -> None:
    # DirectWebSocket sets an upgraded connection's `_parser` to None, which is what aiohttp does
    # when a connection is lost: its data_received must not use the parser once upgraded.
    source = inspect.getsource(web_protocol.RequestHandler.data_received)
    assert "self._payload_parser is None and not self._upgraded" in source, (
        "aiohttp's RequestHandler.data_received no longer reads upgraded connections past the HTTP "
        "parser: check DirectWebSocket.__call__, which drops that parser"
    )
    assert "self._parser = None" in inspect.getsource(web_protocol.RequestHandler.connection_lost)
