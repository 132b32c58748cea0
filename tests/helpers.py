"""Shared test data and small helpers."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from signaling.client import SignalingClient

ConnectPeer = Callable[..., Awaitable[SignalingClient]]


def free_port() -> int:
    """A loopback port free right now, for a server process a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def joined_pair(
    connect: ConnectPeer, room: str = "pair", *urls: str
) -> tuple[SignalingClient, SignalingClient]:
    """Two peers in one room, with the first one's peer-joined notice consumed; with two `urls`,
    each connected to its own (two nodes of a cluster)."""
    alice = await connect(*urls[:1])
    await alice.join(room)
    bob = await connect(*urls[1:2])
    await bob.join(room)
    await alice.next("peer-joined")
    return alice, bob


SDP_OFFER = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    "c=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n"
    "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"
    ":00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n"
    "a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n"
)
SDP_ANSWER = SDP_OFFER.replace("a=setup:actpass", "a=setup:active")
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "abcd",
}


def readme_code(section: str, language: str = "python") -> list[str]:
    """The `language` code blocks of one README section (its heading line, say "### Bots", up to
    the next heading of its level or above), exactly as written."""
    level = len(section) - len(section.lstrip("#"))
    blocks: list[str] = []
    inside = False
    fence: str | None = None  # the language of the code block being read
    lines: list[str] = []
    for line in (Path(__file__).resolve().parent.parent / "README.md").read_text().splitlines():
        if fence is None and line.startswith("#"):
            depth = len(line) - len(line.lstrip("#"))
            if inside and depth <= level:
                break
            inside = inside or line == section
        elif line.startswith("```"):
            if fence is None:
                fence, lines = line[3:], []
            else:
                if inside and fence == language:
                    blocks.append("\n".join(lines) + "\n")
                fence = None
        elif fence is not None:
            lines.append(line)
    return blocks
