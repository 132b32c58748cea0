"""A quick run of the benchmark suite, so that the scripts cannot rot. Measures nothing: the
numbers of a smoke run are not meaningful and nothing here asserts on speed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RunningServer

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.process  # the benchmark runner, its servers and the Node load generator


def test_bench_quick_run_produces_table_and_plot(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    results = json.loads((tmp_path / "results.json").read_text())
    labels = [row["label"] for row in results["rows"]]
    assert "relay throughput" in labels and "CPU per 1,000 relayed" in labels
    assert any(label.startswith("2 nodes + Redis") for label in labels)
    assert any(label.startswith("Ant Media path") for label in labels)
    compared = [row for row in results["rows"] if row["reference"] is not None]
    assert compared and all(row["ours"] > 0 and row["reference"] > 0 for row in compared)
    # The reconnect storm: both modes got every client back after the restart (run.py raises
    # otherwise), resumes by rebuilding the sessions from the clients' claims.
    storm = results["reconnect"]
    assert storm["rows"][0]["label"].startswith("reconnect storm, 50 clients")
    assert {run["mode"] for run in storm["runs"]} == {"resume", "rejoin"}
    assert all(run["restored"] == run["clients"] for run in storm["runs"] if run["mode"] == "resume")
    table = (tmp_path / "results.md").read_text()
    assert "| measure | this server | Node socket.io relay |" in table
    assert "| measure | resume | full rejoin | resume is |" in table
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")


async def test_load_generator_splits_over_processes(server: RunningServer) -> None:
    process = await asyncio.create_subprocess_exec(
        "node",
        "bench/load/load.mjs",
        "throughput",
        "--url",
        server.url,
        "--pairs",
        "4",
        "--seconds",
        "1",
        "--procs",
        "2",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["procs"] == 2 and result["pairs"] == 4 and result["messages"] > 0
