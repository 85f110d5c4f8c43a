"""The switches' flows after a known traffic run, normalised, against flows/ (reviewed diffs).
Regenerate with LBAPP_UPDATE_FLOWS=1 after an intended pipeline change."""
import os
from pathlib import Path

import pytest

from lbapp.flows import normalize
from lbapp.lab import MininetLab
from tests.helpers.net import require_tier

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "flows"


@pytest.mark.parametrize("topology", ["worked_example", "cross_vlan", "large", "two_balancers"])
def test_flows_after_known_traffic_match_reference(topology, tmp_path):
    require_tier("Mininet", mininet=True)
    with MininetLab(topology, tmp_path) as lab:
        for vip in lab.cfg.vips:
            if vip.external_director:
                continue
            for _ in range(sum(b.weight for b in vip.backends)):
                assert lab.ask(lab.module.LAB.clients[0], vip)
        info = lab.module.LAB
        ours = info.balancer_switches + info.edge_switches
        # with ECMP the router decides which balancer gets each connection: sessions left out
        dumps = {sw: normalize(lab.dump_flows(sw), sessions=len(info.balancer_switches) == 1) for sw in ours}
    for switch, text in dumps.items():
        path = REFERENCE / f"{topology}.{switch}.flows"
        if os.environ.get("LBAPP_UPDATE_FLOWS") == "1":
            path.write_text(text)
        assert path.exists(), f"{path} missing: run with LBAPP_UPDATE_FLOWS=1 to create it"
        assert text == path.read_text(), f"{switch} flows differ from {path} (LBAPP_UPDATE_FLOWS=1 to accept)"
