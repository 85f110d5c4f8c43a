"""Cross-VLAN direct-routing topology: the balancer in VLAN 10, backends in VLANs 20 and 30
behind a Linux router, a client on the "internet" side, and an external DR director.

    h1 (client 200.1.1.19) --- r0 (router) --- s1 (balancer switch, VLAN 10) --- d1 (director)
                                 |  |
                      VLAN 20 ---+  +--- VLAN 30      s2 (edge switch: source NAT)
                      b1 10.11.12.11, b2 10.11.12.12   b3 10.11.13.13

The router sends VIP 117.78.6.19 to the balancer's address 10.0.0.2 (a static route) and VIP
117.78.6.20 to the director 10.0.0.10, which spreads it over backend IPs with on-link multipath
routes (the Linux stand-in for an LVS DR director). Backends are plain hosts: nothing on them
knows a VIP. Matching config: ``cross_vlan.yaml``.

Mininet users: ``mn --custom topologies/cross_vlan.py --topo crossvlan --controller remote``
next to ``lbapp run -c topologies/cross_vlan.yaml`` (listening on 6653).
"""
import inspect
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(inspect.getfile(inspect.currentframe()))))  # for mn --custom

from mininet.topo import Topo  # noqa: E402

from common import DirectorHost, LabInfo, LinuxRouter, PlainHost, VlanOVSSwitch  # noqa: E402

BACKENDS = [  # name, ip, gateway, VLAN
    ("b1", "10.11.12.11/24", "10.11.12.1", 20),
    ("b2", "10.11.12.12/24", "10.11.12.1", 20),
    ("b3", "10.11.13.13/24", "10.11.13.1", 30),
]
# Fixed MACs on the router, so flow dumps (the learned next hop) are the same on every run.
NEXT_HOP_MAC = "aa:bb:cc:dd:ee:ff"

LAB = LabInfo(router="r0", router_balancer_mac=NEXT_HOP_MAC, balancer_switches=("s1",), edge_switches=("s2",),
              uplinks=("s1-eth1",), switches=("s1", "s2"), clients=("h1",),
              backends=tuple((n, ip.split("/")[0]) for n, ip, *_ in BACKENDS))


class CrossVlanTopo(Topo):
    def build(self):
        router = self.addHost("r0", cls=LinuxRouter, ip=None,
                              routes=[("117.78.6.19/32", "10.0.0.2"), ("117.78.6.20/32", "10.0.0.10")])
        client = self.addHost("h1", cls=PlainHost, ip="200.1.1.19/24", defaultRoute="via 200.1.1.1")
        lb = self.addSwitch("s1", cls=VlanOVSSwitch, dpid="0000000000000001")
        edge = self.addSwitch("s2", cls=VlanOVSSwitch, dpid="0000000000000002")
        director = self.addHost("d1", cls=DirectorHost, ip="10.0.0.10/24", defaultRoute="via 10.0.0.1",
                                vip="117.78.6.20", backends=["10.11.12.11", "10.11.13.13"])

        self.addLink(client, router, addr2="aa:bb:cc:dd:ee:01", params2={"ip": "200.1.1.1/24"})
        self.addLink(router, lb, addr1=NEXT_HOP_MAC, params1={"ip": "10.0.0.1/24"}, params2={"vlan": 10})
        self.addLink(director, lb, params2={"vlan": 10})
        self.addLink(router, edge, addr1="aa:bb:cc:dd:ee:02", params1={"ip": "10.11.12.1/24"}, params2={"vlan": 20})
        self.addLink(router, edge, addr1="aa:bb:cc:dd:ee:03", params1={"ip": "10.11.13.1/24"}, params2={"vlan": 30})
        for name, ip, gw, vlan in BACKENDS:
            host = self.addHost(name, cls=PlainHost, ip=ip, defaultRoute=f"via {gw}")
            self.addLink(host, edge, params2={"vlan": vlan})


topos = {"crossvlan": CrossVlanTopo}
