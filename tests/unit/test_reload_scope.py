"""A reload that changes VIPs sends only the flows and groups that differ (#27): from the same
start, model switches that took it hold exactly what model switches that took a whole reload
(every flow sent again, the old generation swept) hold; and it is a handful of messages where
the whole one is every flow."""
import copy
import re
import sys
from pathlib import Path

import pytest
import yaml
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp import reload as reload_module
from lbapp.config import parse_config
from lbapp.pipeline import cookies
from lbapp.pipeline.tables import TABLES, group_vip
from lbapp.service import Balancer
from tests.helpers.frames import tcp_frame
from tests.helpers.oftables import Switch

ROOT = Path(__file__).resolve().parents[2]
CROSS_VLAN = yaml.safe_load((ROOT / "tests" / "data" / "cross_vlan.yaml").read_text())
NEW_CONN = cookies.make(cookies.STAGE_SESSION, vip=1)


def _edit(doc, change):
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


def _add_backend(doc):
    doc["vips"][1]["backends"].append({"ip": "10.11.13.14"})
    doc["edges"][0]["backends"].append("10.11.13.14")


def _remove_backend(doc):
    doc["vips"][0]["backends"].pop(0)  # 10.11.12.11 stays a backend of other VIPs


def _remove_vip(doc):
    doc["vips"].pop(2)


def _add_vip(doc):
    doc["vips"].insert(1, dict(doc["vips"][0], name="web2", ip="117.78.6.30", port=81))


def _persistence(doc):
    doc["vips"][0]["persistence"] = {"timeout": 300, "netmask": 24}


def _switch_selection(doc):
    doc["vips"][1].update(selection="switch", scheduler="mh")


def _drain_and_reweigh(doc):
    doc["vips"][2]["backends"][0]["weight"] = 0
    doc["vips"][0]["backends"][1]["weight"] = 5


def _persistent(doc):
    doc["vips"][1]["persistence"] = {"timeout": 300, "group": "shop"}


# what changes, whether the reload stays within the VIPs (else every flow goes again, under the
# next generation), and the config it starts from
CHANGES = {
    "a scheduler": (lambda d: d["vips"][0].update(scheduler="wlc"), True, None),
    "an idle timeout": (lambda d: d["vips"][3].update(idle_timeout=45), True, None),
    "a backend added": (_add_backend, True, None),
    "a backend removed, with live connections on it": (_remove_backend, True, None),
    "a VIP added": (_add_vip, True, None),
    "a VIP removed": (_remove_vip, True, None),
    "selection by the switch": (_switch_selection, True, None),
    "a drain and a weight": (_drain_and_reweigh, True, None),
    "the first persistent VIP (the affinity stage comes)": (_persistence, False, None),
    "a VIP joins a persistence group": (lambda d: d["vips"][0].update(persistence={"timeout": 300, "group": "shop"}),
                                        True, _persistent),
    "a gateway": (lambda d: d["gateways"].append({"name": "r1", "ip": "10.0.0.3"}), False, None),
}


def _started(doc):
    lb = Balancer(parse_config(doc))
    switches = {}
    for dpid in (1, 2):
        switches[dpid] = Switch()
        switches[dpid].apply(m for _, m in lb.switch_connected(dpid, 0.0))
    for port in range(40000, 40006):  # live connections, some on the backend that leaves
        out = lb.packet_in(1, 1, NEW_CONN, tcp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "200.1.1.19",
                                                     "117.78.6.19", port, 80), 1.0)
        switches[1].apply(m for _, m in out)
    return lb, switches


def _reloaded(doc, new_doc, whole: bool, monkeypatch):
    lb, switches = _started(doc)
    with monkeypatch.context() as patch:
        if whole:
            patch.setattr(reload_module, "_touched", lambda before, after: None)
        out = lb.reconfigure(parse_config(new_doc), 2.0)
    for dpid, switch in switches.items():
        switch.apply(m for d, m in out if d == dpid)
    return lb, switches, out


def _held(lb, switch) -> tuple:
    """What a switch holds, VIP ids named by their VIPs' keys and generations left out (the
    whole reload starts the next one)."""
    key = {vip.id: tuple(vip.key) for vip in lb.running.vips}

    def cookie(value):
        c = cookies.decode(value)
        return (c.stage, key.get(c.vip, c.vip), c.obj) if c else value

    def action(a):  # (a serialised action knows its length; one built has None)
        return ("group", key[group_vip(a.group_id)]) if isinstance(a, parser.OFPActionGroup) else \
            re.sub(r"\blen=\w+,", "", str(a))

    flows = sorted((f.table_id, f.priority, repr(sorted(f.match.fields.items())), cookie(f.cookie),
                    tuple(action(a) for a in f.actions), f.goto, f.meter)
                   for table in switch.tables.values() for f in table)
    groups = sorted((key[group_vip(g.group_id)], tuple(tuple(map(action, b)) for b in g.buckets))
                    for g in switch.groups.values())
    return flows, groups


@pytest.mark.parametrize("name", CHANGES)
def test_the_switches_hold_what_a_whole_reload_leaves(name, monkeypatch):
    change, within, base_change = CHANGES[name]
    doc = _edit(CROSS_VLAN, base_change) if base_change else CROSS_VLAN
    new_doc = _edit(doc, change)
    lb, scoped, sent = _reloaded(doc, new_doc, whole=False, monkeypatch=monkeypatch)
    reference, whole, sent_whole = _reloaded(doc, new_doc, whole=True, monkeypatch=monkeypatch)
    for dpid in scoped:
        assert _held(lb, scoped[dpid]) == _held(reference, whole[dpid]), f"switch {dpid}"
    assert lb.running.generation == (1 if within else 2) and reference.running.generation == 2
    assert len(sent) < len(sent_whole) if within else len(sent) == len(sent_whole)


def test_changing_one_vip_of_many_sends_its_flows_alone(monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    from config_scale import generate
    doc = yaml.safe_load(generate(60, 4))
    new_doc = _edit(doc, lambda d: d["vips"][7].update(scheduler="rr"))
    lb, scoped, sent = _reloaded(doc, new_doc, whole=False, monkeypatch=monkeypatch)
    reference, whole, sent_whole = _reloaded(doc, new_doc, whole=True, monkeypatch=monkeypatch)
    assert _held(lb, scoped[1]) == _held(reference, whole[1])
    # its select group (kept for an overload) and the flows that name its scheduler, if any
    assert len(sent) <= 4 < 100 < len(sent_whole)
    assert {cookies.vip_of(m.cookie) for _, m in sent if hasattr(m, "cookie") and m.cookie} <= {8}
