"""JSON for the socket.io wire: orjson's speed with the standard library's meaning.

python-socketio and python-engineio call `dumps`/`loads` on every packet; orjson is several times
faster. Where orjson refuses what `json` accepts (integers beyond 64 bits, NaN from a client), the
standard library takes over, so clients see exactly the behaviour they would without it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(obj: Any, **kwargs: Any) -> str:
    return dumpb(obj).decode()


def dumpb(obj: Any) -> bytes:
    """UTF-8 JSON, for frames written without a round trip through str."""
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj, separators=(",", ":")).encode()


# Text orjson refuses is handed to the slower standard library only up to this size: a large
# message with a NaN would otherwise cost milliseconds each (no event accepts NaN anyway).
FALLBACK_MAX = 8192


def loads(text: str | bytes, **kwargs: Any) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        if len(text) > FALLBACK_MAX:
            raise
        return json.loads(text)
