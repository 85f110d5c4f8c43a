"""Client persistence (issue 26), on model switches: the balancer's flows and the controller's
answers as OVS would run them. A client's new connections keep their backend, whoever picks
(the switch's select group, learned; the controller, installed), across ports of one group and
within a netmask; a backend that loses its slots loses its clients; a restarted controller
follows the entries the switch kept."""
from __future__ import annotations

import yaml

from lbapp.config import parse_config
from lbapp.pipeline.tables import TABLES
from lbapp.service import Balancer
from tests.helpers.frames import arp_reply, tcp_frame
from tests.unit.test_stages import BALANCER, CROSS, GW_IP, GW_MAC, GW_PORT, LB_IP, LB_MAC, VIP, Rig, learned

AFFINITY = TABLES["affinity"].table_id


def cross_vlan(**persistence_of: dict):
    doc = yaml.safe_load(CROSS.read_text())
    for vip in doc["vips"]:
        if vip["name"] in persistence_of:
            vip["persistence"] = persistence_of[vip["name"]]
    return parse_config(doc)


def connect(rig: Rig, client: str, sport: int, dport: int = 80) -> str:
    """A new connection's first packet through the balancer (and the controller if punted): the
    backend it left for."""
    results = rig.send(BALANCER, tcp_frame(GW_MAC, LB_MAC, client, VIP, sport, dport), GW_PORT)
    leaving = [r for r in results if r.ports == [GW_PORT]]
    assert leaving, [r.ports for r in results]
    return leaving[-1].text["ipv4_dst"]


def test_where_the_switch_picks_a_clients_connections_keep_the_backend_it_learned():
    plain = Rig(cross_vlan())
    learned(plain)
    spread = {connect(plain, "200.1.1.19", 41000 + i, 7002) for i in range(12)}
    assert len(spread) > 1  # without persistence the five-tuple hash spreads one client's connections

    rig = Rig(cross_vlan(**{"stream-fast": {"timeout": 300}}))
    learned(rig)
    kept = {connect(rig, "200.1.1.19", 41000 + i, 7002) for i in range(12)}
    assert len(kept) == 1
    assert len(rig.switches[BALANCER].tables[AFFINITY]) == 3  # the learned entry, the lookup's miss, the table's
    others = {connect(rig, f"200.1.1.{20 + i}", 41000, 7002) for i in range(12)}
    assert len(others) > 1  # other clients still spread


def test_a_backend_that_loses_its_slots_loses_its_clients_who_then_stay_on_the_new_one():
    rig = Rig(cross_vlan(**{"stream-fast": {"timeout": 300}}))
    learned(rig)
    first = connect(rig, "200.1.1.19", 41000, 7002)
    doc = yaml.safe_load(CROSS.read_text())
    fast = next(v for v in doc["vips"] if v["name"] == "stream-fast")
    fast["persistence"] = {"timeout": 300}
    next(b for b in fast["backends"] if b["ip"] == first)["drain"] = True
    rig.reload(parse_config(doc))
    moved = {connect(rig, "200.1.1.19", 41001 + i, 7002) for i in range(8)}
    assert len(moved) == 1 and first not in moved


def test_where_the_controller_picks_a_client_keeps_its_backend_and_the_next_client_gets_the_next():
    rig = Rig(cross_vlan(web={"timeout": 300}))
    learned(rig)
    a = [connect(rig, "200.1.1.19", 41000 + i) for i in range(6)]
    b = [connect(rig, "200.1.1.20", 41000 + i) for i in range(6)]
    assert len(set(a)) == 1 and len(set(b)) == 1 and a[0] != b[0]  # rr moves on per client, not per connection
    entries = [f for f in rig.switches[BALANCER].tables[AFFINITY] if f.priority == 100]
    assert len(entries) == 2


def test_a_restarted_controller_follows_the_entries_the_switch_kept():
    cfg = cross_vlan(web={"timeout": 300})
    rig = Rig(cfg)
    learned(rig)
    before = connect(rig, "200.1.1.19", 41000)
    rig.lb = Balancer(cfg, generation=2)  # a new run: its memory empty, the switch's tables as they were
    rig.deliver(rig.lb.switch_connected(BALANCER, rig.now), run_packet_outs=False)
    rig.send(BALANCER, arp_reply(GW_MAC, GW_IP, LB_MAC, LB_IP), GW_PORT)  # its next hop, learned again
    after = [connect(rig, "200.1.1.19", 42000 + i) for i in range(4)]
    assert set(after) == {before}
    assert connect(rig, "200.1.1.20", 42000) != before  # a new client is picked afresh (rr)


def test_a_netmask_keeps_a_subnets_clients_together_and_a_group_keeps_a_client_across_ports():
    rig = Rig(cross_vlan(web={"timeout": 300, "netmask": 24, "group": "site"},
                         stream={"timeout": 300, "netmask": 24, "group": "site"}))
    learned(rig)
    web = {connect(rig, f"200.1.1.{19 + i}", 41000 + i) for i in range(5)}
    stream = {connect(rig, f"200.1.1.{19 + i}", 43000 + i, 7000) for i in range(5)}
    assert len(web) == 1 and stream == web
    assert connect(rig, "200.1.2.19", 41000) != web.pop()  # another /24: the next backend


def test_the_controllers_copy_is_bounded_and_forgets_what_timed_out():
    from ipaddress import IPv4Address as ip

    from lbapp.state.affinity import AffinityMemory

    memory = AffinityMemory(limit=3)
    for i in range(5):
        memory.keep(1, ip(f"200.1.1.{i}"), ip("10.11.12.11"), now=float(i), seconds=10)
    assert len(memory) == 3 and memory.named(1, ip("200.1.1.0"), 5.0) is None  # the oldest went
    assert memory.named(1, ip("200.1.1.4"), 5.0) == ip("10.11.12.11")
    assert memory.named(1, ip("200.1.1.4"), 14.5) is None  # its timeout passed
    assert memory.named(2, ip("200.1.1.4"), 5.0) is None  # another persistence group


def test_check_and_status_say_how_a_vip_persists(tmp_path):
    import subprocess
    import sys

    from rich.console import Console

    from lbapp.cli.status import render

    doc = yaml.safe_load(CROSS.read_text())
    doc["vips"][0]["persistence"] = {"timeout": 300, "netmask": 24, "group": "site"}
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = subprocess.run([sys.executable, "-m", "lbapp.cli.main", "check", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "rr, persistent 300 s /24 group site" in out.stdout
    console = Console(record=True, width=200)
    console.print(render(Balancer(parse_config(doc)).snapshot(0.0)))
    assert "rr (controller), persistent 300 s /24 group site" in console.export_text()
