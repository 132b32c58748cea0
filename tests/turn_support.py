"""A real coturn (Debian's turnserver) on loopback, checking credentials with a shared secret.

No skipping: without the turnserver binary the fixture fails and says how to get it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.helpers import free_port

TURN_SECRET = "coturn-shared-secret-for-tests"


@dataclass(frozen=True)
class Coturn:
    port: int
    secret: str

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"


def _udp_port_answers(port: int) -> bool:
    # A STUN binding request; coturn answers it without credentials.
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"\x00" * 12
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(request, ("127.0.0.1", port))
        try:
            return len(sock.recv(1024)) > 0
        except OSError:
            return False


@pytest.fixture(scope="session")
def coturn() -> Iterator[Coturn]:
    binary = shutil.which("turnserver")
    assert binary, "turnserver is missing: bin/test installs Debian's coturn package"
    port = free_port()
    relay_start = 49152 + (port % 1000) * 10
    with tempfile.TemporaryDirectory() as workdir:
        process = subprocess.Popen(
            [
                binary,
                "-n",  # no configuration file: everything is on this command line
                "--listening-ip=127.0.0.1",
                f"--listening-port={port}",
                "--relay-ip=127.0.0.1",
                f"--min-port={relay_start}",
                f"--max-port={relay_start + 9}",
                "--use-auth-secret",
                f"--static-auth-secret={TURN_SECRET}",
                "--realm=signaling.test",
                "--allow-loopback-peers",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--no-software-attribute",
                f"--log-file={workdir}/turn.log",
                "--simple-log",
                f"--pidfile={workdir}/turn.pid",
                f"--userdb={workdir}/turndb",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not _udp_port_answers(port):
                assert process.poll() is None, f"turnserver exited with {process.returncode}"
                assert time.monotonic() < deadline, "turnserver did not answer on its port"
                time.sleep(0.05)
            yield Coturn(port, TURN_SECRET)
        finally:
            process.terminate()
            process.wait(10)
