"""Peer ids: the one place their format is written.

A peer id names a connection cluster-wide. Alone, it is the connection's local id (its socket.io
session id); with several nodes it is "<node>~<local id>", so the node that holds a peer is in its
name and a message for one peer costs one targeted delivery.
"""

from __future__ import annotations

SEPARATOR = "~"
# The local ids of peers that cannot resume a session (Ant Media's SDKs come back under a new id).
NOT_RESUMABLE = "am-"


def peer_id(node: str | None, local_id: str) -> str:
    return local_id if node is None else f"{node}{SEPARATOR}{local_id}"


def node_of(peer_id: str) -> str:
    """The node holding the peer ("" for a peer of a node running alone)."""
    node, separator, _ = peer_id.partition(SEPARATOR)
    return node if separator else ""


def local_id(peer_id: str) -> str:
    return peer_id.rpartition(SEPARATOR)[2]


def node_name(wanted: str) -> str:
    """`wanted`, made fit to name a node: without the separator."""
    return wanted.replace(SEPARATOR, "-")


def resumable(peer_id: str) -> bool:
    return not local_id(peer_id).startswith(NOT_RESUMABLE)
