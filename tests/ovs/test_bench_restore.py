"""bench/restore.py runs on a real bridge and every session flow comes back (issue 22)."""
import re
import subprocess
from pathlib import Path

from tests.helpers.net import PYTHON, require_tier

ROOT = Path(__file__).resolve().parents[2]


def test_the_restore_bench_sees_every_session_flow_come_back():
    require_tier("OVS")
    run = subprocess.run([PYTHON, "bench/restore.py", "--count", "300", "--rate", "1000", "--limit", "20"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    made = int(re.search(r"^(\d+) connections with a session flow", run.stdout, re.M)[1])
    assert made > 250, run.stdout
    for event in ("reconnect", "flush"):
        assert re.search(rf"^{event}: {made} of {made} session flows back", run.stdout, re.M), run.stdout
