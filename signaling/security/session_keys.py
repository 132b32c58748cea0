"""Session secrets: what proves that a reconnecting client owns the session it resumes.

A session's secret is an HMAC of its peer id under the server's key, so it verifies with the key
alone: after a restart, on another node, with nothing remembered. Other peers know a peer's id,
never its secret. The key comes from `SESSION_SECRET`, or else from a file beside the app that is
generated once and kept (on a platform whose file system does not survive a restart, set
`SESSION_SECRET`, or sessions cannot be resumed across restarts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

KEY_BYTES = 32


class SessionKeys:
    def __init__(self, key: bytes, *, shared: bool = False) -> None:
        self._key = key
        # True when every node has the same key already (from SESSION_SECRET); else a cluster
        # agrees on one through Redis (see `offer` and `use`).
        self.shared = shared

    def offer(self) -> str:
        """This node's key, for a cluster that has none yet."""
        return self._key.hex()

    def use(self, key: str) -> None:
        """Sign and verify with the cluster's key from now on."""
        self._key = bytes.fromhex(key)

    def secret(self, peer_id: str) -> str:
        digest = hmac.new(self._key, b"session:" + peer_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode()

    def verify(self, peer_id: str, secret: str) -> bool:
        return hmac.compare_digest(self.secret(peer_id), secret)


def load_key(setting: str | None, path: Path) -> bytes:
    """The key: from the setting, else from `path` (made on first use, readable by this user
    only). A key that cannot be kept is made for this process alone, with a warning: sessions then
    resume within this process, not across a restart."""
    if setting:
        return hashlib.sha256(setting.encode()).digest()
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot read the session key %s (%s): sessions will not survive a restart", path, exc)
        return secrets.token_bytes(KEY_BYTES)
    key = secrets.token_bytes(KEY_BYTES)
    draft = path.with_name(f"{path.name}.{secrets.token_hex(4)}")
    try:
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(key.hex())
        # A link appears whole or not at all: workers starting at once all end up with one key.
        os.link(draft, path)
    except FileExistsError:
        return _read(path)
    except OSError as exc:
        log.warning(
            "cannot keep a session key in %s (%s): sessions will not survive a restart; set SESSION_SECRET",
            path,
            exc,
        )
        return key
    finally:
        draft.unlink(missing_ok=True)
    log.info("made a session key in %s", path)
    return key


def _read(path: Path) -> bytes:
    text = path.read_text().strip()
    key = bytes.fromhex(text) if len(text) >= 2 * KEY_BYTES else b""
    if len(key) < KEY_BYTES:
        raise OSError(f"{path} does not hold a key of {KEY_BYTES} bytes")
    return key
