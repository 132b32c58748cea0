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
from aiohttp import web, web_protocol
from aiohttp._websocket.helpers import websocket_mask
from engineio import async_socket

from signaling.transports.engine import RELIES_ON, DirectSocket, Links, Pinger


def owner(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def instance_of(path: str) -> Any:
    """A real instance, for attributes that are set in constructors."""
    server = socketio.AsyncServer(async_mode="aiohttp")
    if path == "aiohttp.web_protocol.RequestHandler":
        return _RequestHandlerSlots()
    if path == "aiohttp._websocket.helpers":  # a module: its functions
        return importlib.import_module(path)
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
    links = Links()
    adopted = DirectSocket.adopt(session, 1024, pinger, links)
    assert adopted is session and adopted.sid == "sid" and adopted.max_unread == 1024
    assert adopted.pinger is pinger and adopted.links is links


def test_aiohttp_leaves_an_upgraded_connection_where_websocketlink_takes_it() -> None:
    # WebSocketLink.take_over takes what aiohttp read past an upgrade request's head from
    # `_message_tail`, sets aiohttp's protocol's transport to None and calls its connection_lost:
    # aiohttp must then neither read, write nor close the connection, nor cancel the handler task
    # still running (it ends when the request returns, with Detached).
    protocol = web_protocol.RequestHandler
    assert "self._message_tail += data" in inspect.getsource(protocol.data_received), (
        "aiohttp no longer keeps what follows an upgrade request in _message_tail: check "
        "WebSocketLink.take_over"
    )
    assert "if self.transport is not None:" in inspect.getsource(protocol.force_close)
    lost = inspect.getsource(protocol.connection_lost)
    assert "if handler_cancellation and self._task_handler is not None:" in lost
    assert inspect.signature(web.Server.__init__).parameters["handler_cancellation"].default is False
    start = inspect.getsource(protocol.start)
    assert "while not self._force_close:" in start and "if not self._force_close:" in start, (
        "aiohttp's request loop may now go on (or close the transport) after a lost connection"
    )


def test_aiohttp_unmasks_frames_in_place() -> None:
    payload = bytearray(b"\x61\x62\x63\x64\x65")
    websocket_mask(b"\x01\x02\x03\x04", payload)
    assert payload == bytearray([0x60, 0x60, 0x60, 0x60, 0x64])
