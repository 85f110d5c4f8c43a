"""Health checks through the data path, on Mininet with real services: when a backend's service
stops, its checks (HTTP for a controller-picked VIP, TCP for a switch-picked one, UDP for a UDP
VIP) take it out, and no request fails after that; when it starts again it comes back. The
times and failure counts are written to the test's folder (health.json) and printed."""
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from lbapp.lab import parse_answer, wait_for
from tests.helpers.net import lab_with_config, require_tier

ROOT = Path(__file__).resolve().parents[2]
VIP = "117.78.6.19"
FAST = {"interval": 0.5, "timeout": 0.4, "rise": 2, "fall": 2}
CHECKS = {"web": {"type": "http", "path": "/", **FAST}, "stream-fast": {"type": "tcp", **FAST},
          "echo-udp": {"type": "udp", **FAST}}
B1 = "10.11.12.11"  # host b1


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_tier("Mininet", mininet=True)
    workdir = tmp_path_factory.mktemp("health")
    doc = yaml.safe_load((ROOT / "topologies" / "cross_vlan.yaml").read_text())
    for vip in doc["vips"]:
        if vip["name"] in CHECKS:  # no panic (tests/mininet/test_panic.py): every backend stopped is refused
            vip.update(health=CHECKS[vip["name"]], panic_below=0)
    with lab_with_config("cross_vlan", workdir, doc) as running:
        yield running


def logged(lab, pattern: str) -> bool:
    return re.search(pattern, lab.controller_log.read_text()) is not None


def last_state(lab, check: str) -> str | None:
    """What the controller last said of ``check``: up, down, or None."""
    found = re.findall(rf"{check}: (up|down) \(", lab.controller_log.read_text())
    return found[-1] if found else None


def requests_until(lab, ask, stop, limit: float = 30.0) -> list[tuple[float, str | None]]:
    """(start time, backend or None) of requests made one after another until ``stop()``."""
    out = []
    deadline = time.monotonic() + limit
    while not stop() and time.monotonic() < deadline:
        started = time.monotonic()
        answer = ask()
        out.append((started, parse_answer(answer)["backend"] if answer else None))
    return out


def test_a_stopped_service_is_taken_out_and_comes_back(lab):
    checks = (rf"http check of {B1}:80", rf"tcp check of {B1}:7002", rf"udp check of {B1}:5353")
    wait_for(lambda: all(logged(lab, f"{c}: up") for c in checks), 20, "every check of b1 to pass")
    # the checks start with the switches, the services after: one probed before its service
    # listened is down until its checks pass again
    webs = [rf"http check of {ip}:80" for ip in ("10.11.12.12", "10.11.13.13")]
    wait_for(lambda: all(last_state(lab, c) == "up" for c in webs), 20, "web's other backends to pass")
    web = lambda: lab.http_get("h1", f"http://{VIP}/", timeout=2)  # noqa: E731
    assert {parse_answer(web())["backend"] for _ in range(6)} == {"b1", "b2", "b3"}

    lab.stop_service("b1")
    stopped = time.monotonic()
    down = {}

    def all_down() -> bool:
        for check in checks:
            if check not in down and logged(lab, f"{check}: down"):
                down[check] = time.monotonic()
        return len(down) == len(checks)

    before = requests_until(lab, web, all_down)
    out_at = max(down.values())
    after = requests_until(lab, web, lambda: time.monotonic() > out_at + 3)
    fast = [lab.ask("h1", next(v for v in lab.cfg.vips if v.name == "stream-fast")) for _ in range(12)]
    udp = [lab.udp_ask("h1", VIP, 5353) for _ in range(6)]
    assert after and all(backend in ("b2", "b3") for _, backend in after), after  # none failed, none to b1
    assert all(a and parse_answer(a)["backend"] != "b1" for a in fast), fast
    assert all(a and parse_answer(a)["backend"] == "b3" for a in udp), udp  # echo-udp: b1 (weight 2) and b3

    lab.start_service("b1")
    started = time.monotonic()
    wait_for(lambda: all(last_state(lab, c) == "up" for c in checks), 20, "b1's checks to pass again")
    back = time.monotonic() - started
    again = [parse_answer(web())["backend"] for _ in range(6)]
    assert "b1" in again, again

    figures = {"detection_s": {c.split(" of ")[0]: round(t - stopped, 2) for c, t in down.items()},
               "failed_before_out": sum(1 for _, b in before if b is None), "requests_before_out": len(before),
               "failed_after_out": sum(1 for _, b in after if b is None), "requests_after_out": len(after),
               "recovery_s": round(back, 2)}
    (lab.workdir / "health.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    assert figures["failed_after_out"] == 0
    assert max(figures["detection_s"].values()) < 5  # fall 2 x interval 0.5 s, and a tick


PROBE = """
import socket, sys, time
kind, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
s.settimeout(3)
start = time.monotonic()
try:
    s.connect((ip, port))
    if kind == "udp":
        s.send(b"hello")
        s.recv(512)
    result = "answered"
except ConnectionRefusedError:
    result = "refused"
except socket.timeout:
    result = "timeout"
print(result, round((time.monotonic() - start) * 1000, 1))
"""


def test_with_every_backend_stopped_clients_are_refused_at_once_not_left_to_time_out(lab):
    from lbapp.lab import SYSTEM_PYTHON
    names = [name for name, _ in lab.module.LAB.backends]
    checks = [rf"http check of {ip}:80" for _, ip in lab.module.LAB.backends]
    for name in names:
        lab.stop_service(name)
    try:
        wait_for(lambda: all(last_state(lab, c) == "down" for c in checks), 20, "every web check to fail")
        wait_for(lambda: all(last_state(lab, rf"udp check of {ip}:5353") == "down"
                             for ip in ("10.11.12.11", "10.11.13.13")), 20, "the udp checks to fail")
        script = lab.workdir / "probe.py"
        script.write_text(PROBE)
        results = {}
        for what, kind, port in (("web", "tcp", 80), ("stream-fast", "tcp", 7002), ("echo-udp", "udp", 5353)):
            out = lab.net.get("h1").cmd(f"{SYSTEM_PYTHON} {script} {kind} {VIP} {port}").split()
            results[what] = (out[0], float(out[1]))
        print(json.dumps({"refusals_ms": results}))
        (lab.workdir / "refusals.json").write_text(json.dumps(results))
        assert all(result == "refused" for result, _ in results.values()), results
        assert all(ms < 100 for _, ms in results.values()), results
    finally:
        for name in names:
            lab.start_service(name)
