"""Benchmark suite: this server and the classic Node.js socket.io relay, side by side, one run.

    bench/run            # the full suite (a few minutes); bench/run --quick for a smoke run

Starts the servers itself (and a redis-server for the two-node scenario), drives them with the
Node load generator in bench/load, measures server CPU and memory from /proc, and writes
bench/results/results.md, results.json and results.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOAD = BENCH / "load" / "load.mjs"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

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
def start_ours(nodes: int = 1, redis_url: str | None = None, **env: str) -> Iterator[Server]:
    server = Server("this server" if nodes == 1 else f"this server, {nodes} nodes", "")
    ports = [free_port() for _ in range(nodes)]
    extra = {"REDIS_URL": redis_url, **env} if redis_url else env
    try:
        for port in ports:
            server.processes.append(
                subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=ours_env(port, **extra))
            )
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/healthz")
        server.url = " ".join(f"http://127.0.0.1:{port}" for port in ports)
        yield server
    finally:
        stop(server.processes)


@contextmanager
def start_reference() -> Iterator[Server]:
    port = free_port()
    process = subprocess.Popen(
        ["node", str(BENCH / "reference" / "server.js"), str(port)], stdout=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        yield Server("Node socket.io relay", f"http://127.0.0.1:{port}", [process])
    finally:
        stop([process])


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


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
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
    joining (costlier here than in the Node relay) do not count against relaying."""
    urls = server.url.split()
    gated = scenario == "throughput"
    command = ["node", str(LOAD), scenario, "--url", urls[0], *flags, *(["--gated", "1"] if gated else [])]
    if len(urls) > 1:
        command += ["--url2", urls[1]]
    before = server.cpu_seconds()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    load_before = 0.0
    try:
        if gated:
            json.loads(process.stdout.readline())  # {"ready": pairs}
            before, load_before = server.cpu_seconds(), tree_cpu_seconds(process.pid)
            process.stdin.write("go\n")
            process.stdin.flush()
        line = process.stdout.readline()
        after, load_after = server.cpu_seconds(), tree_cpu_seconds(process.pid)
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


def capacity(server: Server, clients: int) -> dict[str, Any]:
    baseline = server.rss_bytes()
    process = subprocess.Popen(
        ["node", str(LOAD), "capacity", "--url", server.url.split()[0], "--clients", str(clients)],
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


def run(quick: bool) -> dict[str, Any]:
    size = {
        "pairs": "10" if quick else "50",
        "seconds": "2" if quick else "6",
        "latency_pairs": "5" if quick else "20",
        "rate": "100" if quick else "500",
        "calls": "10" if quick else "100",
        "capacities": [100] if quick else [1000, 5000, 10000],
    }
    results: dict[str, Any] = {"quick": quick, "machine": machine(), "rows": []}
    rows: list[dict[str, Any]] = results["rows"]

    # This machine kind's speed drifts from minute to minute (the same run varies by a third):
    # each comparison alternates the two servers over several short rounds (see `several`).
    rounds = 1 if quick else 7
    results["rounds"] = rounds

    def both(label: str, metric: str, unit: str, better: str, measure: Any) -> None:
        several([(label, metric, unit, better, None)], measure, rounds=1)

    def pick(value: Any, key: str | None) -> Any:
        return value if key is None else value[key]

    def median(values: list[Any], key: str | None) -> float:
        return float(statistics.median(pick(v, key) for v in values))

    def several(
        specs: list[tuple[str, str, str, str, str | None]], measure: Any, rounds: int = rounds
    ) -> tuple[list[Any], list[Any]]:
        """Measure both servers, alternating, `rounds` times; a row per spec, whose last field
        picks a key of what `measure` returns (None: the value itself). A row holds the medians,
        and as its ratio the median of the rounds' ratios: each round compares two runs made
        moments apart, which this machine's drifting speed affects alike. Returns the
        measurements."""
        mine, theirs = [], []
        with start_ours() as ours, start_reference() as reference:
            for _ in range(rounds):
                mine.append(measure(ours))
                theirs.append(measure(reference))
        for label, metric, unit, better, key in specs:
            row = {
                "label": label,
                "metric": metric,
                "unit": unit,
                "better": better,
                "ours": median(mine, key),
                "reference": median(theirs, key),
            }
            paired = [
                ratio({**row, "ours": pick(m, key), "reference": pick(t, key)})
                for m, t in zip(mine, theirs, strict=True)
            ]
            if None not in paired:
                row["ratio"] = float(statistics.median(paired))  # type: ignore[type-var]
            rows.append(row)
        return mine, theirs

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
        return 1000 * result["server_cpu_seconds"] / max(1, result["messages"])

    def relay(server: Server) -> dict[str, float]:
        result = tp(server)
        return {
            "rate": float(result["rate"]),
            "cpu": cpu_per_1000(result),
            "load_cores": result["load_cpu_seconds"] / result["seconds"],
        }

    mine, theirs = several(
        [
            ("relay throughput", "messages/s", "msg/s", "higher", "rate"),
            ("CPU per 1,000 relayed", "server CPU-seconds", "s", "lower", "cpu"),
        ],
        relay,
    )
    # Context for the table: whether the load generator, not the server, was the limit.
    results["load_generator_cores"] = {
        "this server": median(mine, "load_cores"),
        "Node socket.io relay": median(theirs, "load_cores"),
    }
    several(
        [(f"latency at {size['rate']} msg/s, {q}", q, "ms", "lower", q) for q in ("p50", "p99", "max")],
        lambda s: load(s, "latency", *latency),
    )
    for clients in size["capacities"]:
        both(
            f"memory, {clients} idle clients",
            "bytes per client",
            "B",
            "lower",
            lambda s, c=clients: capacity(s, c)["bytes_per_client"],
        )
    both("call setup, p50", "ms", "ms", "lower", lambda s: load(s, "setup", "--calls", size["calls"])["p50"])

    # Only this server speaks Ant Media's protocol and runs as a cluster.
    with start_ours() as ours:
        am = load(ours, "throughput", *throughput, "--protocol", "antmedia")
        am_latency = load(ours, "latency", *latency, "--protocol", "antmedia")
    rows.append(single("Ant Media path throughput", "msg/s", am["rate"]))
    rows.append(single("Ant Media path CPU per 1,000", "s", cpu_per_1000(am)))
    rows.append(single(f"Ant Media path latency at {size['rate']} msg/s, p99", "ms", am_latency["p99"]))
    # Honest pairs' latency with and without 20 connections flooding, being cut off and coming
    # back, on a server with its default limits (the attackers have an address of their own).
    flooders = 5 if quick else 20
    with start_ours(**DEFAULT_LIMITS) as guarded:
        calm = load(guarded, "latency", *latency)
        with attacking(guarded, flooders) as attack:
            stormy = load(guarded, "latency", *latency)
    rows.append(single(f"default limits: latency at {size['rate']} msg/s, p99", "ms", calm["p99"]))
    rows.append(
        single(f"the same while {flooders} flooders are cut off and reconnect, p99", "ms", stormy["p99"])
    )
    rows.append(single("flooder connections during that run", "connections", attack.get("connections", 0)))
    rows.append(single("of which got to flood before being cut off", "connections", attack.get("flooded", 0)))
    with start_redis() as (redis_url, redis_process), start_ours(nodes=2, redis_url=redis_url) as cluster:
        cluster.processes.append(redis_process)  # Redis's CPU counts against the cluster too
        pair = load(cluster, "throughput", *throughput)
        pair_latency = load(cluster, "latency", *latency)
        setup = load(cluster, "setup", "--calls", size["calls"])
    rows.append(single("2 nodes + Redis, peers on different nodes: throughput", "msg/s", pair["rate"]))
    rows.append(single("2 nodes + Redis: CPU per 1,000 (both nodes + Redis)", "s", cpu_per_1000(pair)))
    rows.append(single(f"2 nodes + Redis: latency at {size['rate']} msg/s, p99", "ms", pair_latency["p99"]))
    rows.append(single("2 nodes + Redis: call setup, p50", "ms", setup["p50"]))
    return results


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
    lines = [
        f"Machine: {m['cpu']}; Python {m['python']}, Node {m['node']}; {m['date']}"
        + (" (quick smoke run: numbers not meaningful)" if results["quick"] else ""),
        "Load generator and servers share the machine; server CPU is read from /proc. Throughput and "
        f"latency figures are medians of {results.get('rounds', 1)} rounds that alternate the two "
        "servers; their ratio is the median of the rounds' ratios.",
        "Load generator CPU during the throughput runs, in cores: "
        + ", ".join(f"{name} {share:.2f}" for name, share in results.get("load_generator_cores", {}).items())
        + ".",
        "",
        "| measure | this server | Node socket.io relay | this server is |",
        "|---|---|---|---|",
    ]
    for row in results["rows"]:
        r = ratio(row)
        verdict = "—" if r is None else (f"{r:.2f}x better" if r >= 1 else f"{1 / r:.2f}x worse")
        unit = "" if row["unit"] in ("B",) else f" ({row['unit']})"
        ours, theirs = fmt(row["ours"], row["unit"]), fmt(row["reference"], row["unit"])
        lines.append(f"| {row['label']}{unit} | {ours} | {theirs} | {verdict} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in results["rows"] if ratio(row) is not None]
    labels = [row["label"] for row in rows]
    values = [ratio(row) for row in rows]
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    colors = ["#2e9e5b" if v is not None and v >= 1 else "#d0583a" for v in values]
    axes.barh(labels, values, color=colors)
    axes.axvline(1, color="black", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("this server vs the Node socket.io relay (x better; log scale, right of 1 is better)")
    axes.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny loads (seconds)")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    results = run(options.quick)
    (options.out / "results.json").write_text(json.dumps(results, indent=2))
    (options.out / "results.md").write_text(markdown(results))
    plot(results, options.out / "results.png")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
