"""Benchmark suite: this server and the classic Node.js socket.io relay, side by side, one run.

    bench/run            # the full suite (a few minutes); bench/run --quick for a smoke run
    bench/run --only reconnect   # one part of it (see GROUPS), printed, not written unless --out

Starts the servers itself (and for the cluster part, this server, Node socket.io with
@socket.io/redis-adapter and python-socketio with AsyncRedisManager, each on two nodes with a
redis-server of its own: see bench/reference), drives them with the Node load generator in
bench/load, measures server CPU and memory from /proc, and writes bench/results/results.md,
results.json and results.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOAD = BENCH / "load" / "load.mjs"
TICKS = os.sysconf("SC_CLK_TCK")
# The parts of the suite, for --only.
GROUPS = ("relay", "latency", "memory", "setup", "antmedia", "abuse", "cluster", "reconnect")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # A cluster's own Redis, whose commands a throughput run counts (see `load`).
    redis_url: str | None = None

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
        return total

    def rss_bytes(self) -> int:
        total = 0
        for process in self.processes:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total


def wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def ours_env(port: int, **extra: str) -> dict[str, str]:
    # Limits meant for people, not for a load generator on one address.
    return {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "RATE_RELAY": "1000000/1000000",
        "RATE_CONTROL": "1000000/1000000",
        "MAX_CONNECTIONS_PER_IP": "1000000",
        "MAX_PEER_UNREAD_BYTES": str(64 << 20),
        "ICE_SERVERS": "",
        **extra,
    }


# The server's own limits, for the runs that are about them (the others lift them).
DEFAULT_LIMITS = {
    "RATE_RELAY": "100/400",
    "RATE_CONTROL": "5/20",
    "MAX_CONNECTIONS_PER_IP": "50",
    "MAX_PEER_UNREAD_BYTES": "1048576",
}


@contextmanager
def start_nodes(
    name: str, nodes: int, spawn: Callable[[int], subprocess.Popen[bytes]], health: str = "/"
) -> Iterator[Server]:
    """`nodes` processes of one server, each started by `spawn(port)` on a port of its own."""
    server = Server(name, "")
    ports = [free_port() for _ in range(nodes)]
    try:
        for port in ports:
            server.processes.append(spawn(port))
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}{health}")
        server.url = " ".join(f"http://127.0.0.1:{port}" for port in ports)
        yield server
    finally:
        stop(server.processes)


def start_ours(
    nodes: int = 1, redis_url: str | None = None, env: Mapping[str, str] | None = None
) -> ContextManager[Server]:
    extra = {**(env or {}), **({"REDIS_URL": redis_url} if redis_url else {})}
    return start_nodes(
        "this server" if nodes == 1 else f"this server, {nodes} nodes",
        nodes,
        lambda port: subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=ours_env(port, **extra)),
        health="/healthz",
    )


def start_reference() -> ContextManager[Server]:
    """The classic Node.js socket.io relay (bench/reference/server.js)."""
    script = str(BENCH / "reference" / "server.js")
    return start_nodes(
        "Node socket.io relay",
        1,
        lambda port: subprocess.Popen(["node", script, str(port)], stdout=subprocess.DEVNULL),
    )


def start_reference_cluster(redis_url: str, nodes: int = 2) -> ContextManager[Server]:
    """The same relay on nodes sharing rooms through @socket.io/redis-adapter
    (bench/reference/cluster.js)."""
    script = str(BENCH / "reference" / "cluster.js")
    return start_nodes(
        f"Node socket.io + redis-adapter, {nodes} nodes",
        nodes,
        lambda port: subprocess.Popen(["node", script, str(port), redis_url], stdout=subprocess.DEVNULL),
    )


def start_python_relay(redis_url: str | None = None, nodes: int = 1) -> ContextManager[Server]:
    """The same relay on python-socketio and aiohttp (bench/reference/asyncredis_relay.py); with
    `redis_url`, nodes sharing rooms through python-socketio's AsyncRedisManager."""
    command = [sys.executable, str(BENCH / "reference" / "asyncredis_relay.py")]
    return start_nodes(
        "python-socketio relay" if redis_url is None else f"python-socketio AsyncRedisManager, {nodes} nodes",
        nodes,
        lambda port: subprocess.Popen([*command, str(port), *([redis_url] if redis_url else [])]),
    )


@contextmanager
def start_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is missing: bin/setup --dev installs it")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        stop([process])


@contextmanager
def clustered(start: Callable[[str], ContextManager[Server]]) -> Iterator[Server]:
    """Nodes started by `start(redis_url)` around a fresh redis-server of their own, whose CPU
    counts against them and whose commands a throughput run counts."""
    with start_redis() as (redis_url, redis_process), start(redis_url) as server:
        server.processes.append(redis_process)
        server.redis_url = redis_url
        yield server


def redis_commands(url: str) -> dict[str, int]:
    """The commands a Redis has run so far, by name, as its INFO commandstats counts them: those
    that scripts ran included (the script's own EVALSHA too), this reading's INFO not yet."""
    address = urllib.parse.urlsplit(url)
    with socket.create_connection((address.hostname or "127.0.0.1", address.port or 6379), 5) as sock:
        sock.sendall(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        reply = b""
        while b"\r\n" not in reply:
            reply += sock.recv(65536)
        head, reply = reply.split(b"\r\n", 1)
        if not head.startswith(b"$"):
            raise RuntimeError(f"INFO commandstats: unexpected reply {head!r}")
        while len(reply) < int(head[1:]):
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("INFO commandstats: the connection closed mid-reply")
            reply += chunk
    counts: dict[str, int] = {}
    for line in reply[: int(head[1:])].decode().splitlines():
        if line.startswith("cmdstat_"):
            name, stats = line[len("cmdstat_") :].split(":", 1)
            counts[name] = int(dict(pair.split("=", 1) for pair in stats.split(","))["calls"])
    return counts


def stop(processes: Sequence[subprocess.Popen[Any]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def load(server: Server, scenario: str, *flags: str) -> dict[str, Any]:
    """Run one scenario against `server`. Throughput runs are gated: the server's CPU is read
    from the moment all pairs have joined to the moment the result is in, so connecting and
    joining (costlier here than in the Node relay) do not count against relaying; and so are the
    commands of a cluster's Redis (INFO commandstats), in `redis_commands`."""
    urls = server.url.split()
    gated = scenario == "throughput"
    command = ["node", str(LOAD), scenario, "--url", urls[0], *flags, *(["--gated", "1"] if gated else [])]
    if len(urls) > 1:
        command += ["--url2", urls[1]]
    before = server.cpu_seconds()
    counting = server.redis_url if gated else None
    commands_before: dict[str, int] = {}
    commands_after: dict[str, int] = {}
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    load_before = 0.0
    try:
        if gated:
            json.loads(process.stdout.readline())  # {"ready": pairs}
            before, load_before = server.cpu_seconds(), tree_cpu_seconds(process.pid)
            if counting:
                commands_before = redis_commands(counting)
            process.stdin.write("go\n")
            process.stdin.flush()
        line = process.stdout.readline()
        after, load_after = server.cpu_seconds(), tree_cpu_seconds(process.pid)
        if counting:
            commands_after = redis_commands(counting)
        process.stdin.close()
        if process.wait(900) != 0 or not line:
            raise RuntimeError(f"load generator failed: {' '.join(command)}")
    finally:
        if process.poll() is None:
            process.kill()
    result: dict[str, Any] = json.loads(line)
    result["server_cpu_seconds"] = after - before
    # The load generator's own CPU over the same window: whether it, not the server, was the limit.
    result["load_cpu_seconds"] = load_after - load_before
    if counting:
        # What Redis ran over the same window, less the INFO that took the first reading.
        commands_after["info"] = commands_after.get("info", 0) - 1
        delta = {name: calls - commands_before.get(name, 0) for name, calls in commands_after.items()}
        result["redis_commands"] = {name: calls for name, calls in sorted(delta.items()) if calls}
    return result


@contextmanager
def attacking(server: Server, connections: int = 20) -> Iterator[dict[str, Any]]:
    """bench/attack.py against `server` for the duration of the block; then holds its report."""
    port = server.url.split()[0].rsplit(":", 1)[1]
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "attack.py"), port, str(connections)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    report: dict[str, Any] = {}
    try:
        time.sleep(1)  # under way before the measurement starts
        yield report
    finally:
        process.stdin.close()
        report.update(json.loads(process.stdout.readline() or "{}"))
        stop([process])


def tree_cpu_seconds(pid: int) -> float:
    """CPU-seconds used so far by a process and its live descendants (a split load generator)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
    return total


class Restartable:
    """This server on a fixed port, killed and started again (the same command, port and session
    key) while clients are connected: a crash and its restart."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = ours_env(self.port, **env)
        self.server = Server("this server", self.url)

    def start(self) -> None:
        self.server.processes = [subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env)]

    def wait_listening(self, seconds: float = 30) -> float:
        """Polls the port until it accepts; returns when (epoch seconds, as the load generator's)."""
        process = self.server.processes[0]
        deadline = time.monotonic() + seconds
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return time.time()
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the restarted server did not listen on {self.port}") from None
                time.sleep(0.002)

    def kill(self) -> float:
        """SIGKILL (no drain, nothing said to the clients: their connections just close)."""
        process = self.server.processes[0]
        killed = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return killed

    def stop(self) -> None:
        stop(self.server.processes)


def listen_overflows() -> int:
    """The kernel's count of connections dropped for a full listen queue (all sockets here):
    a client whose handshake was dropped tries again a second later."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True)).get("ListenOverflows", 0))
    return 0


STORM_ROOM_SIZE = 4
STORM_TIMEOUT = 120  # seconds the load generator waits for everyone to be back


def reconnect_storm(server: Restartable, clients: int, mode: str) -> dict[str, Any]:
    """`clients` idle joined clients (rooms of STORM_ROOM_SIZE) on `server`, which is killed and
    started again; each client's own reconnection brings it back, by `resume` or a full `join`
    (`mode`). Timed from the new process listening (and from the kill) until the last one is
    back; the new process's CPU is read over the same period (its start-up excluded)."""
    command = ["node", str(LOAD), "storm", "--url", server.url, "--clients", str(clients), "--mode", mode]
    command += ["--room-size", str(STORM_ROOM_SIZE), "--timeout", str(STORM_TIMEOUT)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    # The generator bounds itself; this bounds a generator that hangs anyway.
    watchdog = threading.Timer(3 * STORM_TIMEOUT, process.kill)
    watchdog.start()
    try:
        if not process.stdout.readline():  # {"ready": clients, "rooms": n}
            raise RuntimeError(f"load generator failed: {' '.join(command)}")
        overflows = listen_overflows()
        killed = server.kill()
        server.start()
        listening = server.wait_listening()
        startup_cpu, load_before = server.server.cpu_seconds(), tree_cpu_seconds(process.pid)
        line = process.stdout.readline()
        cpu, load_after = server.server.cpu_seconds(), tree_cpu_seconds(process.pid)
        overflows = listen_overflows() - overflows
        if process.wait(60) != 0 or not line:
            raise RuntimeError(f"load generator failed: {' '.join(command)}")
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    result: dict[str, Any] = json.loads(line)
    if result["outcome"] != "all back" or result["errors"] or result["refused"]:
        raise RuntimeError(f"reconnect storm ({mode}, {clients} clients) went wrong: {result}")
    back = result["lastBack"] / 1000
    return {
        **result,
        "seconds_from_listening": back - listening,
        "seconds_half_back": result["back"]["p50"] / 1000 - listening,
        "seconds_from_kill": back - killed,
        "seconds_to_listen": listening - killed,
        "server_cpu_seconds": cpu - startup_cpu,
        "server_startup_cpu_seconds": startup_cpu,
        "load_cpu_seconds": load_after - load_before,
        "listen_overflows": overflows,
    }


def storms(sizes: list[int], rounds: int) -> dict[str, Any]:
    """Both modes at each size, `rounds` times, alternating which goes first; one server port
    throughout (each storm's new process is the next one's victim)."""
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as keys:
        # A key file the restarted process finds again, as in production without SESSION_SECRET.
        server = Restartable(SESSION_KEY_FILE=str(Path(keys) / "session-key"))
        server.start()
        try:
            server.wait_listening()
            for clients in sizes:
                measured: dict[str, list[dict[str, Any]]] = {"resume": [], "rejoin": []}
                for round_ in range(rounds):
                    for mode in ("resume", "rejoin") if round_ % 2 == 0 else ("rejoin", "resume"):
                        measured[mode].append(reconnect_storm(server, clients, mode))
                        runs.append(measured[mode][-1])
                for label, key, unit in (
                    ("time from the new process listening until all are back", "seconds_from_listening", "s"),
                    ("the same until half are back", "seconds_half_back", "s"),
                    ("server CPU until all are back", "server_cpu_seconds", "s"),
                    # Why the time is what it is: a dropped handshake is tried again a second later.
                    ("handshakes dropped for a full listen queue", "listen_overflows", "count"),
                ):
                    mine = [run[key] for run in measured["resume"]]
                    theirs = [run[key] for run in measured["rejoin"]]
                    row = {
                        "label": f"reconnect storm, {clients} clients: {label}",
                        "metric": key,
                        "unit": unit,
                        "better": "lower",
                        "ours": float(statistics.median(mine)),
                        "reference": float(statistics.median(theirs)),
                    }
                    # CPU is read in clock ticks: a tiny quick run may read 0 (and drop nothing).
                    if all(mine) and all(theirs):
                        # Each round compares two storms made moments apart.
                        paired = (t / m for m, t in zip(mine, theirs, strict=True))
                        row["ratio"] = float(statistics.median(paired))
                    rows.append(row)
        finally:
            server.stop()
    first = runs[0]
    return {
        "rows": rows,
        "runs": runs,
        "rounds": rounds,
        "room_size": STORM_ROOM_SIZE,
        "reconnection": {
            "delay_ms": first["reconnectDelay"],
            "delay_max_ms": first["reconnectDelayMax"],
            "randomization": first["randomizationFactor"],
        },
        "startup_cpu_seconds": float(statistics.median(r["server_startup_cpu_seconds"] for r in runs)),
        "seconds_to_listen": float(statistics.median(r["seconds_to_listen"] for r in runs)),
    }


def capacity(server: Server, clients: int, protocol: str = "socketio") -> dict[str, Any]:
    baseline = server.rss_bytes()
    url = server.url.split()[0]
    process = subprocess.Popen(
        ["node", str(LOAD), "capacity", "--url", url, "--clients", str(clients), "--protocol", protocol],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    ready = json.loads(process.stdout.readline())
    time.sleep(1)  # let the server settle after the last join before reading its memory
    held = server.rss_bytes()
    process.stdin.close()
    process.wait(120)
    return {
        "clients": ready["ready"],
        "rss_bytes": held,
        "bytes_per_client": (held - baseline) / ready["ready"],
    }


def within_descriptors(clients: int) -> int:
    """At most `clients`, as many as the descriptor limit lets a server hold (main raises it to
    the hard limit, which a process cannot pass: 20,000 on some machines), less room for the
    server's own files."""
    return min(clients, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)


def run(quick: bool, only: tuple[str, ...] = GROUPS, pairs: int | None = None) -> dict[str, Any]:
    size: dict[str, Any] = {
        "pairs": str(pairs) if pairs else "10" if quick else "50",
        "seconds": "2" if quick else "6",
        "latency_pairs": "5" if quick else "20",
        "rate": "100" if quick else "500",
        "calls": "10" if quick else "100",
        "antmedia_clients": 100 if quick else 10000,
        "capacities": [100] if quick else [1000, 5000, 10000, within_descriptors(20000)],
        "storms": [50] if quick else [1000, 5000],
    }
    results: dict[str, Any] = {"quick": quick, "machine": machine(), "rows": [], "only": list(only)}
    rows: list[dict[str, Any]] = results["rows"]

    # This machine kind's speed drifts from minute to minute (the same run varies by a third):
    # each comparison alternates the servers over several short rounds (see `several`).
    rounds = 1 if quick else 7
    results["rounds"] = rounds
    results["pairs"] = int(size["pairs"])

    def both(label: str, metric: str, unit: str, better: str, measure: Callable[[Server], Any]) -> None:
        several([(label, metric, unit, better, None)], measure, rounds=1)

    def pick(value: Any, key: str | None) -> Any:
        return value if key is None else value[key]

    def median(values: list[Any], key: str | None) -> float:
        return float(statistics.median(pick(v, key) for v in values))

    def several(
        specs: list[tuple[str, str, str, str, str | None]],
        measure: Callable[[Any], Any],
        setups: Sequence[Setup] = (("this server", start_ours), ("Node socket.io relay", start_reference)),
        rounds: int = rounds,
    ) -> dict[str, list[Any]]:
        """Measure each setup (this server first, then what it is compared with) `rounds` times,
        taking turns, each round starting from the next setup; a row per spec, whose last field
        picks a key of what `measure` returns (None: the value itself). A row holds the medians:
        this server's as `ours`, the first anchor's as `reference`, and with more than one anchor
        all of theirs by name in `anchors`. Its ratio is the median of the rounds' ratios (each
        round compares runs made moments apart, which this machine's drifting speed affects
        alike): against the first anchor in `ratio`, against each by name in `ratios`. Returns
        the measurements by setup."""
        measured: dict[str, list[Any]] = {name: [] for name, _ in setups}
        with contextlib.ExitStack() as stack:
            started = [(name, stack.enter_context(start())) for name, start in setups]
            for round_ in range(rounds):
                turn = round_ % len(started)
                for name, server in started[turn:] + started[:turn]:
                    measured[name].append(measure(server))
        (mine, *_), anchors = measured.values(), [name for name, _ in setups[1:]]
        for label, metric, unit, better, key in specs:
            values = {name: median(measured[name], key) for name in anchors}
            ratios: dict[str, float] = {}
            for name in anchors:
                paired = [
                    ratio({"better": better, "ours": pick(m, key), "reference": pick(t, key)})
                    for m, t in zip(mine, measured[name], strict=True)
                ]
                if all(r is not None for r in paired):
                    ratios[name] = float(statistics.median(r for r in paired if r is not None))
            row: dict[str, Any] = {
                "label": label,
                "metric": metric,
                "unit": unit,
                "better": better,
                "ours": median(mine, key),
                "reference": values[anchors[0]],
            }
            if anchors[0] in ratios:
                row["ratio"] = ratios[anchors[0]]
            if len(anchors) > 1:
                row["anchors"], row["ratios"] = values, ratios
            rows.append(row)
        return measured

    # Half the cores for the load generator, half for the server under test.
    procs = str(max(1, (os.cpu_count() or 2) // 2))
    throughput = ["--pairs", size["pairs"], "--seconds", size["seconds"], "--procs", procs]
    latency = [
        "--pairs",
        size["latency_pairs"],
        "--seconds",
        size["seconds"],
        "--rate",
        size["rate"],
        "--procs",
        procs,
    ]

    def tp(server: Server, *extra: str) -> dict[str, Any]:
        return load(server, "throughput", *throughput, *extra)

    def cpu_per_1000(result: dict[str, Any]) -> float:
        return float(1000 * result["server_cpu_seconds"] / max(1, result["messages"]))

    def relay(server: Server) -> dict[str, float]:
        result = tp(server)
        return {
            "rate": float(result["rate"]),
            "cpu": cpu_per_1000(result),
            "load_cores": result["load_cpu_seconds"] / result["seconds"],
        }

    if "relay" in only:
        measured = several(
            [
                ("relay throughput", "messages/s", "msg/s", "higher", "rate"),
                ("CPU per 1,000 relayed", "server CPU-seconds", "s", "lower", "cpu"),
            ],
            relay,
        )
        # Context for the table: whether the load generator, not the server, was the limit.
        results["load_generator_cores"] = {
            name: median(runs, "load_cores") for name, runs in measured.items()
        }
    if "latency" in only:
        several(
            [(f"latency at {size['rate']} msg/s, {q}", q, "ms", "lower", q) for q in ("p50", "p99", "max")],
            lambda s: load(s, "latency", *latency),
        )
    for clients in size["capacities"] if "memory" in only else []:

        def per_client(server: Server, clients: int = clients) -> float:
            return float(capacity(server, clients)["bytes_per_client"])

        both(f"memory, {clients} idle clients", "bytes per client", "B", "lower", per_client)
    if "setup" in only:
        both(
            "call setup, p50",
            "ms",
            "ms",
            "lower",
            lambda s: load(s, "setup", "--calls", size["calls"])["p50"],
        )

    # Only this server speaks Ant Media's protocol and resumes sessions.
    if "antmedia" in only:
        with start_ours() as ours:
            am = load(ours, "throughput", *throughput, "--protocol", "antmedia")
            am_latency = load(ours, "latency", *latency, "--protocol", "antmedia")
        with start_ours() as ours:  # a fresh server: its memory grows by the clients alone
            am_clients = size["antmedia_clients"]
            am_memory = capacity(ours, am_clients, "antmedia")["bytes_per_client"]
        rows.append(single("Ant Media path throughput", "msg/s", am["rate"]))
        rows.append(single("Ant Media path CPU per 1,000", "s", cpu_per_1000(am)))
        rows.append(single(f"Ant Media path latency at {size['rate']} msg/s, p99", "ms", am_latency["p99"]))
        rows.append(single(f"Ant Media path memory, {am_clients} idle clients", "B", am_memory))
    if "abuse" in only:
        # Honest pairs' latency with and without 20 connections flooding, being cut off and
        # coming back, on a server with its default limits (the attackers have an address of
        # their own).
        flooders = 5 if quick else 20
        with start_ours(env=DEFAULT_LIMITS) as guarded:
            calm = load(guarded, "latency", *latency)
            with attacking(guarded, flooders) as attack:
                stormy = load(guarded, "latency", *latency)
        rows.append(single(f"default limits: latency at {size['rate']} msg/s, p99", "ms", calm["p99"]))
        rows.append(
            single(f"the same while {flooders} flooders are cut off and reconnect, p99", "ms", stormy["p99"])
        )
        rows.append(
            single("flooder connections during that run", "connections", attack.get("connections", 0))
        )
        rows.append(
            single("of which got to flood before being cut off", "connections", attack.get("flooded", 0))
        )
    if "cluster" in only:
        # Three ways to scale the relay out, each on 2 nodes with a fresh Redis of its own and
        # with every pair's peers on different nodes (every message crosses Redis); and each
        # stack's 1-node relay, without Redis, so that what the cluster costs it reads off too.
        stacks: list[Setup] = [
            (
                "this server",
                lambda: started(start_ours(), clustered(lambda url: start_ours(nodes=2, redis_url=url))),
            ),
            (
                "Node socket.io + redis-adapter",
                lambda: started(start_reference(), clustered(start_reference_cluster)),
            ),
            (
                "python-socketio + AsyncRedisManager",
                lambda: started(
                    start_python_relay(), clustered(lambda url: start_python_relay(url, nodes=2))
                ),
            ),
        ]

        def scale_out(servers: tuple[Server, Server]) -> dict[str, Any]:
            local, cluster = servers
            alone, pair = tp(local), tp(cluster)
            messages = max(1, pair["messages"])
            commands: dict[str, int] = pair["redis_commands"]
            return {
                "rate": float(pair["rate"]),
                "cpu": cpu_per_1000(pair),
                "local_cpu": cpu_per_1000(alone),
                # CPU is read in clock ticks: a tiny quick run may read 0.
                "growth": cpu_per_1000(pair) / cpu_per_1000(alone) if cpu_per_1000(alone) else 0.0,
                "p99": float(load(cluster, "latency", *latency)["p99"]),
                "setup": float(load(cluster, "setup", "--calls", size["calls"])["p50"]),
                "redis": sum(commands.values()) / messages,
                "redis_by_command": {name: calls / messages for name, calls in commands.items()},
                "load_cores": pair["load_cpu_seconds"] / pair["seconds"],
            }

        measured = several(
            [
                ("2 nodes + Redis, peers on different nodes: throughput", "msg/s", "msg/s", "higher", "rate"),
                (
                    "2 nodes + Redis: CPU per 1,000 (both nodes + Redis)",
                    "server CPU-seconds",
                    "s",
                    "lower",
                    "cpu",
                ),
                ("1 node, no Redis: CPU per 1,000", "server CPU-seconds", "s", "lower", "local_cpu"),
                (
                    "2 nodes + Redis: CPU per 1,000, as a multiple of 1 node's",
                    "ratio",
                    "x",
                    "lower",
                    "growth",
                ),
                (f"2 nodes + Redis: latency at {size['rate']} msg/s, p99", "p99", "ms", "lower", "p99"),
                ("2 nodes + Redis: call setup, p50", "ms", "ms", "lower", "setup"),
                ("2 nodes + Redis: Redis commands", "commands", "per relayed message", "lower", "redis"),
            ],
            scale_out,
            setups=stacks,
        )
        results["cluster"] = {
            # Medians over the rounds, a command a round did not run counting 0 there.
            "redis_commands_per_message": {
                name: {
                    command: float(
                        statistics.median(run["redis_by_command"].get(command, 0.0) for run in runs)
                    )
                    for command in sorted({command for run in runs for command in run["redis_by_command"]})
                }
                for name, runs in measured.items()
            },
            "load_generator_cores": {name: median(runs, "load_cores") for name, runs in measured.items()},
        }
    if "reconnect" in only:
        # Resume against the full rejoin of clients from before sessions, on this server alone.
        results["reconnect"] = storms(size["storms"], rounds=1 if quick else 3)
    return results


# A server (or servers) to compare, by name: what starts it.
Setup = tuple[str, Callable[[], ContextManager[Any]]]


@contextmanager
def started(*servers: ContextManager[Server]) -> Iterator[tuple[Server, ...]]:
    """Several servers up at once, as one setup."""
    with contextlib.ExitStack() as stack:
        yield tuple(stack.enter_context(server) for server in servers)


def single(label: str, unit: str, value: float) -> dict[str, Any]:
    return {"label": label, "metric": unit, "unit": unit, "better": "", "ours": value, "reference": None}


def machine() -> dict[str, str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": f"{model}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "node": node,
        "date": time.strftime("%Y-%m-%d"),
    }


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "B":
        return f"{value / 1024:,.1f} KiB"
    if unit == "s":
        return f"{value:.4f}"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def ratio(row: dict[str, Any]) -> float | None:
    """How many times better this server is (above 1: better, below 1: worse)."""
    if "ratio" in row:
        return float(row["ratio"])
    if row["reference"] in (None, 0) or row["ours"] in (None, 0):
        return None
    if row["better"] == "higher":
        return float(row["ours"] / row["reference"])
    return float(row["reference"] / row["ours"])


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    rounds = results.get("rounds", 1)
    lines = [
        f"Machine: {m['cpu']}; Python {m['python']}, Node {m['node']}; {m['date']}"
        + (" (quick smoke run: numbers not meaningful)" if results["quick"] else "")
        + (
            f" (only: {', '.join(results['only'])})"
            if set(results.get("only", GROUPS)) != set(GROUPS)
            else ""
        )
        + (f" (throughput runs with {results['pairs']} pairs)" if "pairs" in results else ""),
        "Load generator and servers share the machine; server CPU is read from /proc."
        + (
            f" Throughput and latency figures are medians of {rounds} round{'s' * (rounds != 1)} that "
            "alternate the servers compared; their ratios are medians of the rounds' ratios."
            if results["rows"]
            else ""
        ),
    ]
    if "load_generator_cores" in results:
        lines.append(
            "Load generator CPU during the throughput runs, in cores: "
            + ", ".join(f"{name} {share:.2f}" for name, share in results["load_generator_cores"].items())
            + "."
        )
    pair = [row for row in results["rows"] if "anchors" not in row]
    if pair:
        lines += ["", *table(pair, ("this server", "Node socket.io relay", "this server is"))]
    if "cluster" in results:
        cluster = results["cluster"]
        names = list(cluster["load_generator_cores"])
        lines += [
            "",
            "Scale-out, three ways in the same run: each on 2 nodes with a fresh redis-server of its "
            "own, every pair's peers on different nodes (every relayed message crosses Redis), the "
            "stacks taking turns in each round. This server; the Node relay of "
            "`bench/reference/cluster.js` (`server.js` on `@socket.io/redis-adapter` with node-redis); "
            "and the same relay on python-socketio and aiohttp with python-socketio's "
            "`AsyncRedisManager` (`bench/reference/asyncredis_relay.py`). CPU counts both nodes and "
            "Redis. The 1-node row is each stack alone without Redis (this server, `server.js`, "
            "`asyncredis_relay.py` without a manager), measured in the same rounds. Redis commands are "
            "Redis's own count (INFO commandstats: commands run inside scripts count, and so does the "
            "script's EVALSHA) over the throughput runs' relaying, per message relayed.",
            "Redis commands per relayed message, by command (medians): "
            + "; ".join(
                f"{name} "
                + ", ".join(
                    f"{command} {per:.2f}"
                    for command, per in sorted(by_command.items(), key=lambda item: -item[1])
                    if per >= 0.005
                )
                for name, by_command in cluster["redis_commands_per_message"].items()
            )
            + ".",
            "Load generator CPU during the 2-node throughput runs, in cores: "
            + ", ".join(f"{name} {share:.2f}" for name, share in cluster["load_generator_cores"].items())
            + ".",
            "",
            *table(
                [row for row in results["rows"] if "anchors" in row],
                (*names, *(f"vs {name}" for name in names[1:])),
            ),
        ]
    if "reconnect" in results:
        storm = results["reconnect"]
        again = storm["reconnection"]
        lines += [
            "",
            f"Reconnect storm, this server alone: idle joined clients in rooms of {storm['room_size']} "
            "ride out a restart (SIGKILL, then the same command on the same port with the same "
            "session key file). Resume: each client sends `resume` with its old peerId and secret and "
            "its room and members (restore claims), and is back when the ack is ok; full rejoin, as "
            "clients did before sessions: each sends `join` again and gets a fresh peer id. Timed from "
            "the new process accepting connections until the last client is back; server CPU is the "
            f"new process's over that time (its start-up, {storm['startup_cpu_seconds']:.2f} s of CPU "
            f"and {storm['seconds_to_listen']:.2f} s from the kill to listening, excluded). Clients use "
            f"socket.io-client's own reconnection: {again['delay_ms']} ms doubling to at most "
            f"{again['delay_max_ms']} ms, ±{again['randomization']:.0%} at random. Medians of "
            f"{storm['rounds']} rounds that alternate the two modes; the ratio is the median of the "
            "rounds' ratios. The last row of each size counts the handshakes the kernel dropped "
            "because the server's listen queue was full: each is tried again a second later, then "
            "after two, four... seconds.",
            "",
            *table(storm["rows"], ("resume", "full rejoin", "resume is")),
        ]
    return "\n".join(lines) + "\n"


def verdict(r: float | None) -> str:
    return "—" if r is None else (f"{r:.2f}x better" if r >= 1 else f"{1 / r:.2f}x worse")


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """A markdown table: a column per server compared (this server first), then a verdict per
    anchor; a row with `anchors` has one for each, the others the one `reference`."""
    lines = [f"| measure | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        if "anchors" in row:
            values = [row["ours"], *row["anchors"].values()]
            verdicts = [verdict(row["ratios"].get(name)) for name in row["anchors"]]
        else:
            values, verdicts = [row["ours"], row["reference"]], [verdict(ratio(row))]
        unit = "" if row["unit"] in ("B",) else f" ({row['unit']})"
        cells = [fmt(value, row["unit"]) for value in values] + verdicts
        lines.append(f"| {row['label']}{unit} | {' | '.join(cells)} |")
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    bars: list[tuple[str, float]] = []
    for row in results["rows"]:
        if "anchors" in row:
            bars += [(f"{row['label']}, vs {name}", r) for name, r in row["ratios"].items()]
        elif (r := ratio(row)) is not None:
            bars.append((row["label"], r))
    figure, axes = plt.subplots(figsize=(13, 0.45 * len(bars) + 1.5))
    colors = ["#2e9e5b" if value >= 1 else "#d0583a" for _, value in bars]
    axes.barh([label for label, _ in bars], [value for _, value in bars], color=colors)
    axes.axvline(1, color="black", linewidth=1)
    axes.set_xscale("log", base=2)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_title("this server vs the Node socket.io relay, or the anchor named")
    axes.set_xlabel("x better (log scale; right of 1 is better)")
    axes.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny loads (seconds)")
    parser.add_argument(
        "--only",
        type=lambda text: tuple(text.split(",")),
        default=GROUPS,
        help=f"run only these parts, comma-separated: {', '.join(GROUPS)}; the results are "
        "printed, and written only with --out (not over the full run's)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        help="pairs in the throughput runs (default 50): fewer pairs give each server fewer "
        "messages per wake-up, which is what every message costs on a lightly loaded server",
    )
    parser.add_argument("--out", type=Path, help="where to write the results (default: bench/results)")
    options = parser.parse_args()
    unknown = set(options.only) - set(GROUPS)
    if unknown:
        parser.error(f"--only: no such part {', '.join(sorted(unknown))} (parts: {', '.join(GROUPS)})")
    full = options.only == GROUPS and options.pairs is None
    out = options.out or (BENCH / "results" if full else None)
    # Thousands of connections on each side of loopback (bench/run raises this limit too).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = run(options.quick, options.only, options.pairs)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        (out / "results.md").write_text(markdown(results))
        plot(results, out / "results.png")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
