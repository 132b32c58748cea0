"""`--workers N`: N server processes on one port (SO_REUSEPORT), each a node of the Redis cluster.

The parent only supervises: it starts the workers, restarts one that dies (its peers are freed by
the others when its lease lapses), and passes SIGTERM/SIGINT on for a clean shutdown.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

log = logging.getLogger(__name__)

# Set in a worker's environment: bind with SO_REUSEPORT and never supervise.
WORKER_ENV = "SIGNALING_WORKER"
RESTART_DELAY = 1.0


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def supervise(count: int, argv: list[str], drain_timeout: float) -> int:
    env = {**os.environ, WORKER_ENV: "1", "WORKERS": "1"}
    command = [sys.executable, os.path.abspath(sys.argv[0]), *_without_workers(argv)]
    stopping = False

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env)

    workers = [start() for _ in range(count)]
    log.info("started %d workers: %s", count, [w.pid for w in workers])

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        for index, worker in enumerate(workers):
            code = worker.poll()
            if code is None or stopping:
                continue
            log.warning("worker %d exited with %s; restarting it", worker.pid, code)
            time.sleep(RESTART_DELAY)
            workers[index] = start()
        if stopping:
            # A worker drains (DRAIN_TIMEOUT for its connections, then its cluster cleanup) before
            # it exits: it is killed only well past that.
            for worker in workers:
                try:
                    worker.wait(2 * drain_timeout + 10)
                except subprocess.TimeoutExpired:
                    worker.kill()
            return 0
        time.sleep(0.2)


def _without_workers(argv: list[str]) -> list[str]:
    """The same flags for the workers, less --workers itself."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out
