"""The source's worked example (KR 10-2138619): client 200.1.1.19 asks VIP 117.78.6.19; the
backends 10.11.12.11-.13 sit in VLAN 20 behind the router, the balancer in VLAN 10; the
router's interface in the balancer VLAN, the next hop, has MAC aa:bb:cc:dd:ee:ff.

    h1 200.1.1.19 --- r0 --- s1 balancer (VLAN 10, 10.0.0.2)
                       |
                       +---- s2 edge (VLAN 20): b1 .11, b2 .12, b3 .13

Matching config: ``worked_example.yaml``. ``mn --custom topologies/worked_example.py --topo
workedexample --controller remote`` next to ``lbapp run -c topologies/worked_example.yaml``.
"""
import inspect
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(inspect.getfile(inspect.currentframe()))))  # for mn --custom

from mininet.topo import Topo  # noqa: E402

from common import LabInfo, LinuxRouter, PlainHost, VlanOVSSwitch  # noqa: E402

BACKENDS = [("b1", "10.11.12.11"), ("b2", "10.11.12.12"), ("b3", "10.11.12.13")]
LAB = LabInfo(router="r0", router_balancer_mac="aa:bb:cc:dd:ee:ff", balancer_switches=("s1",), edge_switches=("s2",),
              uplinks=("s1-eth1",), switches=("s1", "s2"), clients=("h1",), backends=tuple(BACKENDS))


class WorkedExampleTopo(Topo):
    def build(self):
        router = self.addHost("r0", cls=LinuxRouter, ip=None, routes=[("117.78.6.19/32", "10.0.0.2")])
        client = self.addHost("h1", cls=PlainHost, ip="200.1.1.19/24", defaultRoute="via 200.1.1.1")
        lb = self.addSwitch("s1", cls=VlanOVSSwitch, dpid="0000000000000001")
        edge = self.addSwitch("s2", cls=VlanOVSSwitch, dpid="0000000000000002")
        self.addLink(client, router, addr2="aa:bb:cc:dd:ee:01", params2={"ip": "200.1.1.1/24"})
        self.addLink(router, lb, addr1="aa:bb:cc:dd:ee:ff", params1={"ip": "10.0.0.1/24"}, params2={"vlan": 10})
        self.addLink(router, edge, addr1="aa:bb:cc:dd:ee:02", params1={"ip": "10.11.12.1/24"}, params2={"vlan": 20})
        for name, ip in BACKENDS:
            host = self.addHost(name, cls=PlainHost, ip=f"{ip}/24", defaultRoute="via 10.11.12.1")
            self.addLink(host, edge, params2={"vlan": 20})


topos = {"workedexample": WorkedExampleTopo}
