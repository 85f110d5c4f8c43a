"""The conntrack zone policy kept by the controller (issue 22): applied when a balancer switch of
this machine's OVS connects, again when its datapath was re-created, shown by ``lbapp status``;
a switch elsewhere gets one warning with the command to run there."""
from __future__ import annotations

import json
import logging

from lbapp import ctzone
from lbapp.ctkeeper import ZonePolicyKeeper
from tests.helpers.net import PYTHON, sh, wait_for
from tests.ovs.test_pipeline import balancer_with_gateway, config


def _status(lab) -> dict:
    return json.loads(sh(PYTHON, "-m", "lbapp.cli.main", "status", "--json", "--api", lab.api_url))


def _applied(lab) -> int:
    return lab.controller_log.read_text().count("conntrack zone policy applied")


def test_the_controller_applies_the_policy_as_its_switch_connects_and_again_on_a_new_datapath(lab, tmp_path):
    br, _ = balancer_with_gateway(lab, config(tmp_path))
    wait_for(lambda: _applied(lab) == 1, 10, "the controller to apply the zone policy")
    assert ctzone.in_ovsdb("netdev", ctzone.DEFAULT_PIN_SECONDS)
    assert _status(lab)["ct_policy"]["0000000000000001"]["state"] == "in force"
    status = sh(PYTHON, "-m", "lbapp.cli.main", "status", "--api", lab.api_url)
    assert "conntrack zone policy on 0000000000000001: in force" in status
    # the bridge goes and comes back: OVS makes a new userspace datapath, without the policy
    port = lab.of_port
    sh("ovs-vsctl", "del-br", br)  # the lab's only netdev bridge: the datapath goes with it
    lab.bridges.remove(br)
    br = lab.bridge("lb", 1)
    sh("ovs-vsctl", "set-controller", br, f"tcp:127.0.0.1:{port}")
    wait_for(lambda: _applied(lab) == 2, 15, "the controller to apply the zone policy to the new datapath")


def test_a_switch_elsewhere_is_warned_about_once_with_the_command(caplog):
    keeper = ZonePolicyKeeper(seconds=700)
    with caplog.at_level(logging.WARNING, logger="lbapp"):
        keeper.ensure(0xFEEDFACE)
        keeper.ensure(0xFEEDFACE)
    state = keeper.as_data()[f"{0xFEEDFACE:016x}"]
    assert state["state"] == "not checked" and "lbapp ct-policy --apply --seconds 700" in state["detail"]
    assert len(caplog.records) == 1 and "not a bridge of this machine's OVS" in caplog.records[0].getMessage()
