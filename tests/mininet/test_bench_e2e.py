"""The OVS and Mininet benchmarks run (they measure; this only checks that they work)."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.net import require_tier

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _needs_root():
    require_tier("Mininet", mininet=True)


def test_arp_latency_benchmark_runs():
    run = subprocess.run([sys.executable, "bench/arp_latency.py", "--count", "20"], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "controller / switch" in run.stdout


def test_end_to_end_benchmark_runs():
    run = subprocess.run([sys.executable, "bench/e2e.py", "--seconds", "1", "--runs", "1"], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "throughput via VIP / direct" in run.stdout and "with selection: switch / direct" in run.stdout
    assert "with pin: conntrack / direct" in run.stdout


def test_ovs_scale_benchmark_runs():
    run = subprocess.run([sys.executable, "bench/ovs_scale.py", "--count", "1500", "--rate", "1000"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "connections got a session flow" in run.stdout


def test_spread_flood_benchmark_runs():
    run = subprocess.run([sys.executable, "bench/spread_flood.py", "--vips", "3", "--seconds", "4", "--rate", "2"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "legitimate to web:" in run.stdout and "health verdicts down:" in run.stdout
