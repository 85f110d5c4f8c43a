"""A larger cross-VLAN network: three clients on two internet subnets, the balancer and an
external DR director in VLAN 10, six backends in VLANs 20, 30 and 40 spread over two edge
switches joined by a VLAN trunk, a weighted TCP VIP, a weighted UDP VIP and a director VIP.

    h1 200.1.1.19 --+
    h2 200.1.1.20 --s0-- r0 --- s1 balancer (VLAN 10) --- d1 director 10.0.0.10
    h3 198.51.100.7 ---/  |
                          +-- VLAN 20/30/40 access ports -- s2 edge1 ==trunk== s3 edge2
        s2: b1 10.11.12.11 (20), b3 10.11.13.13 (30)
        s3: b2 10.11.12.12 (20), b4 10.11.13.14 (30), b5 10.11.14.15 (40), b6 10.11.14.16 (40)

Matching config: ``large.yaml``. ``mn --custom topologies/large.py --topo large --controller remote``.
"""
import inspect
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(inspect.getfile(inspect.currentframe()))))  # for mn --custom

from mininet.topo import Topo  # noqa: E402

from common import DirectorHost, LabInfo, LinuxRouter, PlainHost, PlainSwitch, VlanOVSSwitch  # noqa: E402

BACKENDS = [  # name, ip, VLAN, edge switch
    ("b1", "10.11.12.11", 20, "s2"), ("b2", "10.11.12.12", 20, "s3"),
    ("b3", "10.11.13.13", 30, "s2"), ("b4", "10.11.13.14", 30, "s3"),
    ("b5", "10.11.14.15", 40, "s3"), ("b6", "10.11.14.16", 40, "s3"),
]
GATEWAY_OF_VLAN = {20: "10.11.12.1", 30: "10.11.13.1", 40: "10.11.14.1"}
LAB = LabInfo(router="r0", router_balancer_mac="aa:bb:cc:dd:ee:ff", balancer_switches=("s1",),
              edge_switches=("s2", "s3"), uplinks=("s1-eth1",), switches=("s0", "s1", "s2", "s3"),
              clients=("h1", "h2", "h3"), internet_switches=("s0",), backends=tuple((n, ip) for n, ip, *_ in BACKENDS))


class LargeTopo(Topo):
    def build(self):
        router = self.addHost("r0", cls=LinuxRouter, ip=None,
                              routes=[("117.78.6.19/32", "10.0.0.2"), ("117.78.6.21/32", "10.0.0.2"),
                                      ("117.78.6.20/32", "10.0.0.10")])
        internet = self.addSwitch("s0", cls=PlainSwitch, dpid="0000000000000100")
        lb = self.addSwitch("s1", cls=VlanOVSSwitch, dpid="0000000000000001")
        edges = {"s2": self.addSwitch("s2", cls=VlanOVSSwitch, dpid="0000000000000002"),
                 "s3": self.addSwitch("s3", cls=VlanOVSSwitch, dpid="0000000000000003")}
        director = self.addHost("d1", cls=DirectorHost, ip="10.0.0.10/24", defaultRoute="via 10.0.0.1",
                                vip="117.78.6.20", backends=["10.11.13.13", "10.11.14.16"])

        self.addLink(router, lb, addr1="aa:bb:cc:dd:ee:ff", params1={"ip": "10.0.0.1/24"}, params2={"vlan": 10})
        self.addLink(director, lb, params2={"vlan": 10})
        self.addLink(router, internet, addr1="aa:bb:cc:dd:ee:01", params1={"ip": "200.1.1.1/24"})
        for name, ip in (("h1", "200.1.1.19"), ("h2", "200.1.1.20")):
            self.addLink(self.addHost(name, cls=PlainHost, ip=f"{ip}/24", defaultRoute="via 200.1.1.1"), internet)
        h3 = self.addHost("h3", cls=PlainHost, ip="198.51.100.7/24", defaultRoute="via 198.51.100.1")
        self.addLink(h3, router, addr2="aa:bb:cc:dd:ee:05", params2={"ip": "198.51.100.1/24"})
        for i, (vlan, gw) in enumerate(GATEWAY_OF_VLAN.items()):
            self.addLink(router, edges["s2"], addr1=f"aa:bb:cc:dd:ee:1{i}", params1={"ip": f"{gw}/24"},
                         params2={"vlan": vlan})
        self.addLink(edges["s2"], edges["s3"])  # the trunk: untagged ports carry every VLAN
        for name, ip, vlan, edge in BACKENDS:
            host = self.addHost(name, cls=PlainHost, ip=f"{ip}/24", defaultRoute=f"via {GATEWAY_OF_VLAN[vlan]}")
            self.addLink(host, edges[edge], params2={"vlan": vlan})


topos = {"large": LargeTopo}
