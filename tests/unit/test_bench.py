"""The benchmarks run (they measure; the suite only checks they work and report)."""
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_setup_rate_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "r.json"
    run = subprocess.run([sys.executable, "bench/setup_rate.py", "--seconds", "0.5", "--runs", "1", "--schedulers",
                          "rr,mh", "--persistence", "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                         timeout=180)
    assert run.returncode == 0, run.stderr
    assert "null app" in run.stdout and "lbapp mh" in run.stdout and "lbapp rr persist" in run.stdout
    summary = json.loads(out.read_text())["summary"]
    assert all(r["rate"] > 0 and r["p99_us"] > 0 and r["null_p99_us"] > 0 for r in summary.values())
    assert summary["lbapp rr"]["flow_mods"] > 0  # lbapp installed session flows
    # the fake switch's connections come from one client: its entry is written once, not per setup
    persist = summary["lbapp rr persist"]
    assert persist["completed"] > 0 and persist["flow_mods"] / persist["completed"] < 1.5


def test_vip_scale_benchmark_runs_and_reports_each_part():
    run = subprocess.run([sys.executable, "bench/vip_scale.py", "--vips", "20,40", "--backends", "2"],
                         capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert run.returncode == 0, run.stderr
    assert re.search(r"reload of one VIP's scheduler: \d+ messages", run.stdout), run.stdout
    assert re.search(r"/metrics: first scrape [\d.]+ s .*; again, nothing changed [\d.]+ s; again, 1% of VIPs changed",
                     run.stdout) and "memory per added VIP" in run.stdout, run.stdout
    assert re.search(r"lbapp status's table [\d.]+ s", run.stdout), run.stdout


def test_scale_benchmark_runs():
    run = subprocess.run([sys.executable, "bench/scale.py", "--sessions", "200,400", "--measure", "200"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "KiB/session" in run.stdout and "Maglev" in run.stdout


def test_health_cpu_benchmark_runs_and_the_fake_network_answers_the_probes():
    run = subprocess.run([sys.executable, "bench/health_cpu.py", "--backends", "20", "--interval", "0.5", "--seconds",
                          "2", "--runs", "1"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    rate = float(next(line for line in run.stdout.splitlines() if line.startswith("probes answered/s")).split()[-1])
    assert 30 <= rate <= 50, run.stdout  # 20 backends, each every 0.5 s: 40/s


def test_api_cost_benchmark_runs_and_scrapes():
    """With VIPs beyond the one in use (their pipeline waited for), scraping /metrics alone."""
    run = subprocess.run([sys.executable, "bench/api_cost.py", "--seconds", "1", "--runs", "1", "--vips", "30"],
                         capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert run.returncode == 0, run.stderr
    scrapes = int(run.stdout.split(";")[1].split()[0])
    assert scrapes >= 2 and "scrapes of /metrics in" in run.stdout and "a /metrics scrape took" in run.stdout
    assert "scraped / without" in run.stdout, run.stdout


def test_flows_explain_benchmark_runs_and_explains_every_session():
    run = subprocess.run([sys.executable, "bench/flows_explain.py", "--sessions", "300", "--runs", "1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert re.search(r"^\s*300 table\s+[\d.]+$", run.stdout, re.M) and re.search(r"^\s*300 json\s+[\d.]+$",
                                                                                 run.stdout, re.M), run.stdout


def test_the_fake_switch_has_a_command_line_that_loads_a_running_controller():
    """Before: ``bench/ofswitch.py --help`` printed nothing, so the README's status example
    could not be reproduced without writing code (issue 25)."""
    import subprocess
    import sys
    import time

    from lbapp.environment import listens
    from lbapp.labcluster import free_port

    helped = subprocess.run([sys.executable, "bench/ofswitch.py", "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert helped.returncode == 0 and "--seconds" in helped.stdout
    port = free_port()
    controller = subprocess.Popen([sys.executable, "-m", "lbapp.cli.main", "run", "-c",
                                   str(ROOT / "topologies" / "worked_example.yaml"), "--port", str(port),
                                   "--api-port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not listens("127.0.0.1", port):
            assert time.monotonic() < deadline and controller.poll() is None
            time.sleep(0.1)
        out = subprocess.run([sys.executable, "bench/ofswitch.py", "--port", str(port), "--seconds", "1"],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    finally:
        controller.terminate()
        controller.wait(timeout=20)
    assert out.returncode == 0 and "new connections set up in" in out.stdout, out.stdout + out.stderr
