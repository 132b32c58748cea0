"""The server as a command: `python app.py [flags]` from a checkout, `signaling-server [flags]`
once installed; settings come from env vars and flags (see --help)."""

from __future__ import annotations

import logging
import os
import sys

import uvloop

from signaling.operations.listener import serve
from signaling.operations.logs import configure
from signaling.operations.workers import is_worker, supervise
from signaling.server import TCP_CONNECTIONS, create_app
from signaling.settings import Settings, SettingsError


def main(argv: list[str]) -> int:
    try:
        settings = Settings.load(argv, os.environ)
    except SettingsError as exc:
        print(f"{os.path.basename(sys.argv[0])}: invalid setting: {exc}", file=sys.stderr)
        return 2
    configure(
        settings.log_level, settings.log_format, settings.log_rate_per_ip, settings.log_summary_interval
    )
    log = logging.getLogger("signaling")
    if settings.workers > 1 and not is_worker():
        log.info("serving on %s:%d with %d workers", settings.host, settings.port, settings.workers)
        return supervise(settings.workers, argv, settings.drain_timeout)
    log.info("serving on %s:%d (room size %d)", settings.host, settings.port, settings.room_capacity)
    app = create_app(settings)
    listening = serve(
        app,
        app[TCP_CONNECTIONS],
        host=settings.host,
        port=settings.port,
        header_timeout=settings.header_timeout,
        drain_timeout=settings.drain_timeout,
        reuse_port=is_worker() or None,
    )
    # uvloop runs the same asyncio code on libuv, with a markedly cheaper event loop.
    uvloop.run(listening)
    return 0


def run() -> None:
    """The `signaling-server` console command."""
    sys.exit(main(sys.argv[1:]))
