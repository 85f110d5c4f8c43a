"""The switches' flows after a known traffic run, normalised, against flows/ (reviewed diffs).
Regenerate with LBAPP_UPDATE_FLOWS=1 after an intended pipeline change."""
import os
from pathlib import Path

import pytest

from lbapp.flows import normalize
from lbapp.lab import MininetLab
from tests.helpers.net import have_root_and_ovs

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "flows"


@pytest.mark.parametrize("topology", ["cross_vlan"])
def test_flows_after_known_traffic_match_reference(topology, tmp_path):
    why_not = have_root_and_ovs()
    if why_not:
        pytest.skip(f"Mininet tier: {why_not}")
    with MininetLab(topology, tmp_path) as lab:
        for vip in lab.cfg.vips:
            if vip.external_director:
                continue
            for _ in range(sum(b.weight for b in vip.backends)):
                ok = (lab.http_get(lab.module.CLIENTS[0], f"http://{vip.ip}:{vip.port}/") if vip.protocol == "tcp"
                      else lab.udp_ask(lab.module.CLIENTS[0], str(vip.ip), vip.port))
                assert ok
        dumps = {sw: normalize(lab.dump_flows(sw)) for sw in lab.module.SWITCHES}
    for switch, text in dumps.items():
        path = REFERENCE / f"{topology}.{switch}.flows"
        if os.environ.get("LBAPP_UPDATE_FLOWS") == "1":
            path.write_text(text)
        assert path.exists(), f"{path} missing: run with LBAPP_UPDATE_FLOWS=1 to create it"
        assert text == path.read_text(), f"{switch} flows differ from {path} (LBAPP_UPDATE_FLOWS=1 to accept)"
