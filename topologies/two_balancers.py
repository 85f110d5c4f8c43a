"""Two balancer switches behind one router that spreads VIP traffic over both with an ECMP
route (hashed on the 5-tuple), as the source's balancer cluster does. A plain core switch joins
the router and both balancers in VLAN 10.

    h1 200.1.1.19 --+                    +-- s1 balancer lb1 10.0.0.2
    h2 200.1.1.20 --s0-- r0 --- s9 core -+
                          |              +-- s4 balancer lb2 10.0.0.3
                          +-- VLAN 20/30 -- s2 edge: b1 10.11.12.11, b2 10.11.12.12 (20), b3 10.11.13.13 (30)

Matching config: ``two_balancers.yaml`` (``balancers:`` with both switches).
"""
import inspect
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(inspect.getfile(inspect.currentframe()))))  # for mn --custom

from mininet.topo import Topo  # noqa: E402

from common import LabInfo, LinuxRouter, PlainHost, PlainSwitch, VlanOVSSwitch  # noqa: E402

BACKENDS = [("b1", "10.11.12.11", 20), ("b2", "10.11.12.12", 20), ("b3", "10.11.13.13", 30)]
GATEWAY_OF_VLAN = {20: "10.11.12.1", 30: "10.11.13.1"}
LAB = LabInfo(router="r0", router_balancer_mac="aa:bb:cc:dd:ee:ff", balancer_switches=("s1", "s4"),
              edge_switches=("s2",), uplinks=("s1-eth1", "s4-eth1"), switches=("s0", "s9", "s1", "s4", "s2"),
              clients=("h1", "h2"), internet_switches=("s0",), backends=tuple((n, ip) for n, ip, _ in BACKENDS))


class TwoBalancersTopo(Topo):
    def build(self):
        router = self.addHost("r0", cls=LinuxRouter, ip=None,
                              routes=[("117.78.6.19/32", ["10.0.0.2", "10.0.0.3"])])
        internet = self.addSwitch("s0", cls=PlainSwitch, dpid="0000000000000100")
        core = self.addSwitch("s9", cls=PlainSwitch, dpid="0000000000000109")
        lb1 = self.addSwitch("s1", cls=VlanOVSSwitch, dpid="0000000000000001")
        lb2 = self.addSwitch("s4", cls=VlanOVSSwitch, dpid="0000000000000004")
        edge = self.addSwitch("s2", cls=VlanOVSSwitch, dpid="0000000000000002")
        self.addLink(lb1, core)  # s1-eth1: lb1's uplink
        self.addLink(lb2, core)  # s4-eth1: lb2's uplink
        self.addLink(router, core, addr1="aa:bb:cc:dd:ee:ff", params1={"ip": "10.0.0.1/24"})
        self.addLink(router, internet, addr1="aa:bb:cc:dd:ee:01", params1={"ip": "200.1.1.1/24"})
        for name, ip in (("h1", "200.1.1.19"), ("h2", "200.1.1.20")):
            self.addLink(self.addHost(name, cls=PlainHost, ip=f"{ip}/24", defaultRoute="via 200.1.1.1"), internet)
        for i, (vlan, gw) in enumerate(GATEWAY_OF_VLAN.items()):
            self.addLink(router, edge, addr1=f"aa:bb:cc:dd:ee:1{i}", params1={"ip": f"{gw}/24"},
                         params2={"vlan": vlan})
        for name, ip, vlan in BACKENDS:
            host = self.addHost(name, cls=PlainHost, ip=f"{ip}/24", defaultRoute=f"via {GATEWAY_OF_VLAN[vlan]}")
            self.addLink(host, edge, params2={"vlan": vlan})


topos = {"twobalancers": TwoBalancersTopo}
