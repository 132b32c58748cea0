"""What clients may send, in numbers: the one place the schemas and their fast paths read them."""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_MAX = 64  # rooms and streams
ROOM_PATTERN = re.compile(rf"\A[A-Za-z0-9_.\-]{{1,{NAME_MAX}}}\Z")
ROOM_RULE = f"1 to {NAME_MAX} characters from A-Z, a-z, 0-9, '_', '.', '-'"
STREAM_ID_RULE = f"Stream ids are {ROOM_RULE}."
PEER_ID_MAX = 128
SDP_MID_MAX = 64
MLINE_INDEX_MAX = 65535
USERNAME_FRAGMENT_MAX = 256
DEFINITION_MAX = 128  # a peer message's definition
TOKEN_MAX = 8192
SESSION_SECRET_MAX = 128
CLAIMS_MAX = 64  # rooms, published and played streams a resume may claim, each
CLAIMED_PEERS_MAX = 256  # peers one claimed room or stream may name


@dataclass(frozen=True)
class Limits:
    """Size limits on what a client may send; sized for real SDP, with room to spare (settings
    override them)."""

    sdp_chars: int = 65536
    candidate_chars: int = 2048
    metadata_bytes: int = 4096
    peer_message_bytes: int = 16384
