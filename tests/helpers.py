"""Shared test data and small helpers."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

from signaling.client import SignalingClient

ConnectPeer = Callable[..., Awaitable[SignalingClient]]


def free_port() -> int:
    """A loopback port free right now, for a server process a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def joined_pair(connect: ConnectPeer, room: str = "pair") -> tuple[SignalingClient, SignalingClient]:
    """Two peers in one room, with the first one's peer-joined notice consumed."""
    alice = await connect()
    await alice.join(room)
    bob = await connect()
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
