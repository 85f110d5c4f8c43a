"""Panic (issue 23), on Mininet (cross_vlan, real OVS userspace datapath): the balancer's probe
path fails while every backend is fine, so every check of `web` fails. With the default
`panic_below` the VIP panics instead of refusing everything: new connections still reach all
three backends, and when the probes come through again the VIP leaves panic."""
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from lbapp.lab import parse_answer, wait_for
from lbapp.pipeline.tables import TABLES
from tests.helpers.net import lab_with_config, require_tier

ROOT = Path(__file__).resolve().parents[2]
VIP = "117.78.6.19"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_tier("Mininet", mininet=True)
    workdir = tmp_path_factory.mktemp("panic")
    doc = yaml.safe_load((ROOT / "topologies" / "cross_vlan.yaml").read_text())
    web = next(v for v in doc["vips"] if v["name"] == "web")
    web["health"] = {"type": "http", "path": "/", "interval": 0.5, "timeout": 0.4, "rise": 2, "fall": 2}
    web.pop("panic_below", None)  # the default
    with lab_with_config("cross_vlan", workdir, doc) as running:
        yield running


def _checks(lab, state: str) -> set[str]:
    """The web checks whose last verdict is ``state``."""
    last = dict(re.findall(r"http check of (\S+):80: (up|down) \(", lab.controller_log.read_text()))
    return {ip for ip, s in last.items() if s == state}


def test_when_every_check_fails_but_the_backends_do_not_the_vip_panics_and_serves(lab):
    wait_for(lambda: len(_checks(lab, "up")) == 3, 20, "every web check to pass")
    switch = lab.module.LAB.balancer_switches[0]
    probe_table = TABLES["probe"].table_id
    # the probes' answers are lost on their way to the controller (a stand-in for its path failing)
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", switch,
                    f"table={probe_table},priority=1000,ip,actions=drop"], check=True)
    try:
        wait_for(lambda: len(_checks(lab, "down")) == 3, 20, "every web check to fail")
        wait_for(lambda: re.search(r"VIP web .*: panic: 0 of 3", lab.controller_log.read_text()), 5, "the panic")
        answers = [lab.http_get("h1", f"http://{VIP}/", timeout=2) for _ in range(12)]
        assert all(answers), answers  # every new connection answered: none refused
        assert {parse_answer(a)["backend"] for a in answers} == {"b1", "b2", "b3"}  # over all of them
    finally:
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", "--strict", switch,
                        f"table={probe_table},priority=1000,ip"], check=True)
    wait_for(lambda: "out of panic" in lab.controller_log.read_text(), 20, "the panic to end")
    wait_for(lambda: len(_checks(lab, "up")) == 3, 20, "every web check to pass again")
