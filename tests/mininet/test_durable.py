"""Established connections survive a balancer switch that loses its tables (issue 22): its
controller deleted and set again with its flows wiped, its session table flushed while connected,
and ovs-vswitchd killed and started again (flows and userspace conntrack gone). Six long-lived
connections each (more than the three backends) through a controller-picked VIP (`stream`,
`pin: flow`, round robin), one that pins in conntrack (`stream-ct`, added here: `pin:
conntrack`, round robin) and a switch-picked one (`stream-fast`, Maglev in the select group)."""
from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from lbapp.lab import parse_answer, run, wait_for
from tests.helpers.net import ROOT, lab_with_config, require_tier

VIP = "117.78.6.19"
STREAMS = {"stream": 7000, "stream-ct": 7001, "stream-fast": 7002}
PER_VIP = 6
OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
VSWITCHD_PID = Path("/var/run/openvswitch/ovs-vswitchd.pid")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_tier("Mininet", mininet=True)
    doc = yaml.safe_load((ROOT / "topologies" / "cross_vlan.yaml").read_text())
    stream = next(v for v in doc["vips"] if v["name"] == "stream")
    doc["vips"].append(copy.deepcopy(stream) | {"name": "stream-ct", "port": STREAMS["stream-ct"], "pin": "conntrack"})
    with lab_with_config("cross_vlan", tmp_path_factory.mktemp("durable"), doc) as running:
        yield running


def _open_streams(lab) -> list[tuple[str, subprocess.Popen, str]]:
    """Six long-lived connections per VIP, each answered once (so picked and pinned): (VIP name,
    client process, the backend of its first answer). 120 lines at 0.1 s, 40 s per answer at most."""
    streams = []
    for name, port in STREAMS.items():
        for _ in range(PER_VIP):
            proc = lab.stream("h1", VIP, port, 120, 0.1, timeout=40)
            line = proc.stdout.readline()
            assert line.startswith("backend="), f"{name}: {line!r}"
            streams.append((name, proc, parse_answer(line)["backend"]))
    assert all(len({b for n, _, b in streams if n == name}) > 1 for name in STREAMS), streams  # spread
    return streams


def _broken(streams) -> dict[str, list[str]]:
    """Per VIP, what went wrong with each connection that did not keep its backend to the end."""
    broken: dict[str, list[str]] = {name: [] for name in STREAMS}
    for name, proc, first in streams:
        out, _ = proc.communicate(timeout=120)
        lines = out.splitlines()
        backends = {parse_answer(line)["backend"] for line in lines if line.startswith("backend=")}
        if proc.returncode != 0 or backends != {first} or len(lines) != 119:
            broken[name].append(f"rc {proc.returncode}, {len(lines)} lines, backends {sorted(backends)}: "
                                f"{lines[-1] if lines else ''}")
    return broken


def _new_connections_work(lab) -> None:
    for name, port in STREAMS.items():
        vip = next(v for v in lab.cfg.vips if v.name == name)
        answers = [lab.ask(lab.module.LAB.clients[0], vip) for _ in range(3)]
        assert all(answers), f"{name}: {answers}"


def _log_since(lab, start: int) -> str:
    return lab.controller_log.read_text()[start:]


def _survives(lab, event, restored: str) -> None:
    """Eighteen long-lived connections through ``event``; the controller logs ``restored`` once it
    gave the switch its sessions back. Every connection keeps its backend, and new ones work."""
    streams = _open_streams(lab)
    start = len(lab.controller_log.read_text())
    event(start)
    wait_for(lambda: restored in _log_since(lab, start), 30, f"the controller to log {restored!r}")
    assert _broken(streams) == {name: [] for name in STREAMS}
    _new_connections_work(lab)


def test_controller_deleted_and_set_again_with_the_switch_wiped_loses_no_connection(lab):
    def event(start: int) -> None:
        run("ovs-vsctl", "del-controller", "s1")
        wait_for(lambda: "switch 0000000000000001 disconnected" in _log_since(lab, start), 15,
                 "the controller to see s1 go")
        run("ovs-ofctl", "-O", "OpenFlow13", "del-flows", "s1")  # whatever del-controller left: the tables are gone
        run("ovs-vsctl", "set-controller", "s1", lab.openflow)
    _survives(lab, event, "lost its session table")


def test_a_session_table_flushed_while_connected_loses_no_connection(lab):
    _survives(lab, lambda start: run("ovs-ofctl", "-O", "OpenFlow13", "del-flows", "s1", "table=20"),
              "flushed while connected")


def test_ovs_vswitchd_killed_and_started_again_loses_no_connection(lab):
    """Last in the module: every bridge of the machine goes down with ovs-vswitchd (the lab's only)."""
    def event(start: int) -> None:
        pid = int(VSWITCHD_PID.read_text().strip())
        subprocess.run(["kill", "-9", str(pid)], check=True)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "ovs-vswitchd to die")
        subprocess.run([OVS_CTL, "--no-ovsdb-server", "start"], capture_output=True, check=False)
        wait_for(lambda: run("ovs-vsctl", "--timeout=2", "show", check=False), 30, "ovs-vswitchd to answer again")
    _survives(lab, event, "lost its session table")
