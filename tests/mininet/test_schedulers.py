"""Connection-aware scheduling and draining with real traffic: lc steers new connections away
from backends holding long-lived ones; a drained backend (weight 0, applied by SIGHUP reload)
finishes its open connection while new ones go elsewhere; with ``selection: switch`` the switch
picks, and the controller sees none of the connections."""
import re
import signal
from pathlib import Path

import pytest
import yaml

from lbapp.flows import explain
from lbapp.lab import parse_answer, wait_for
from tests.helpers.net import lab_with_config, require_tier

ROOT = Path(__file__).resolve().parents[2]
VIP = "117.78.6.19"
STREAM = 7000
SWITCH_PICKS = 7002  # cross_vlan's stream-fast: selection: switch


def stream_vip(doc):
    return next(v for v in doc["vips"] if v["name"] == "stream")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_tier("Mininet", mininet=True)
    workdir = tmp_path_factory.mktemp("schedulers")
    doc = yaml.safe_load((ROOT / "topologies" / "cross_vlan.yaml").read_text())
    stream_vip(doc).update(scheduler="lc", idle_timeout=1)  # a short connection's session ends 1 s after it
    with lab_with_config("cross_vlan", workdir, doc) as running:
        yield running


def first_backend(proc):
    line = proc.stdout.readline()
    assert line.startswith("backend="), line
    return parse_answer(line)["backend"]


def finish(proc):
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, [parse_answer(line)["backend"] for line in out.splitlines() if line.startswith("backend=")]


def short_connection(lab):
    """One request on a new connection; its backend, once its session has idled out at the
    controller (so least-connection no longer counts it)."""
    proc = lab.stream("h1", VIP, STREAM, 1, 0)
    line = proc.stdout.readline()
    assert line.startswith("backend="), line
    proc.communicate(timeout=10)
    answer = parse_answer(line)
    ended = re.compile(rf"ended \(idle\) after [\d.]+s: {re.escape(answer['client'])} -> ")
    wait_for(lambda: ended.search(lab.controller_log.read_text()), 15, f"the session of {answer['client']} to end")
    return answer["backend"]


def test_switch_selection_spreads_real_connections_across_vlans_without_the_controller(lab):
    answers = []
    for _ in range(24):
        proc = lab.stream("h1", VIP, SWITCH_PICKS, 1, 0)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0 and out.startswith("backend="), out
        answers.append(parse_answer(out))
    # each connection reached a backend in VLAN 20 or 30 with the client's own address, and the
    # hash used all three; the controller made no session for any of them
    assert {a["backend"] for a in answers} == {"b1", "b2", "b3"}
    assert all(a["client"].startswith("200.1.1.19:") and a["server"].endswith(f":{SWITCH_PICKS}") for a in answers)
    assert f"{VIP}:{SWITCH_PICKS}" not in lab.controller_log.read_text()  # its session lines name the VIP
    assert "group:" in lab.dump_flows("s1")


def test_lc_steers_new_connections_away_from_backends_holding_long_lived_ones(lab):
    long1 = lab.stream("h1", VIP, STREAM, 50, 0.25)
    held1 = first_backend(long1)
    long2 = lab.stream("h1", VIP, STREAM, 50, 0.25)
    held2 = first_backend(long2)
    assert held1 != held2  # lc spread the long-lived ones
    free = {"b1", "b2", "b3"} - {held1, held2}
    shorts = []
    for _ in range(3):
        shorts.append(short_connection(lab))
    assert set(shorts) == free, (held1, held2, shorts)  # rr would have rotated over all three
    for proc, held in ((long1, held1), (long2, held2)):
        rc, backends = finish(proc)
        assert rc == 0 and set(backends) == {held}


def test_draining_a_backend_lets_its_open_connection_finish(lab):
    long_lived = lab.stream("h1", VIP, STREAM, 40, 0.25)
    held = first_backend(long_lived)
    held_ip = {"b1": "10.11.12.11", "b2": "10.11.12.12", "b3": "10.11.13.13"}[held]
    doc = yaml.safe_load(lab.config.read_text())
    for b in stream_vip(doc)["backends"]:
        if b["ip"] == held_ip:
            b["weight"] = 0
    lab.config.write_text(yaml.safe_dump(doc))
    lab.controller.send_signal(signal.SIGHUP)
    wait_for(lambda: "reconfigured" in lab.controller_log.read_text(), 10, "the controller to reload")
    news = []
    for _ in range(4):
        news.append(short_connection(lab))
    assert len(news) == 4 and held not in news, (held, news)  # drained: no new connection
    rc, backends = finish(long_lived)
    assert rc == 0 and len(backends) == 39 and set(backends) == {held}  # every line after the first


def test_removing_a_backend_keeps_its_open_connection_and_source_nat(lab):
    long_lived = lab.stream("h1", VIP, STREAM, 30, 0.25)
    held = first_backend(long_lived)
    held_ip = {"b1": "10.11.12.11", "b2": "10.11.12.12", "b3": "10.11.13.13"}[held]
    doc = yaml.safe_load(lab.config.read_text())
    vip = stream_vip(doc)
    vip["backends"] = [b | {"weight": 1} for b in vip["backends"] if b["ip"] != held_ip]
    lab.config.write_text(yaml.safe_dump(doc))
    log_lines = len(lab.controller_log.read_text().splitlines())
    lab.controller.send_signal(signal.SIGHUP)
    wait_for(lambda: "reconfigured" in "\n".join(lab.controller_log.read_text().splitlines()[log_lines:]), 10,
             "the controller to reload")
    assert f"backend {held_ip} left" in lab.controller_log.read_text()
    assert held not in {short_connection(lab) for _ in range(3)}
    assert lingering_owners(lab), "no lingering source NAT on the edge"
    rc, backends = finish(long_lived)
    assert rc == 0 and len(backends) == 29 and set(backends) == {held}  # replies still leave as the VIP
    # once its session idles out, the lingering source NAT goes too
    wait_for(lambda: "its source NAT goes" in lab.controller_log.read_text(), 15, "the lingering flows to go")
    assert lingering_owners(lab) == []


def lingering_owners(lab):
    result = explain(lab.dump_flows("s2"), lab.cfg)
    return [f.owner for flows in result.stages.values() for f in flows if f.owner.startswith("lingering")]

