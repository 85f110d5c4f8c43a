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
with ``lbapp run -c topologies/cross_vlan.yaml`` listening on 6653.
"""
from __future__ import annotations

from mininet.node import Host, OVSSwitch
from mininet.topo import Topo

CLIENT = {"name": "h1", "ip": "200.1.1.19/24", "gw": "200.1.1.1"}
ROUTER_IPS = ["200.1.1.1/24", "10.0.0.1/24", "10.11.12.1/24", "10.11.13.1/24"]
# Fixed MACs on the router, so flow dumps (the learned next hop) are the same on every run.
ROUTER_MACS = ["aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:02", "aa:bb:cc:dd:ee:03"]
BALANCER_VLAN = 10
DIRECTOR = {"name": "d1", "ip": "10.0.0.10/24", "gw": "10.0.0.1"}
BACKENDS = [  # name, ip, gateway, VLAN
    ("b1", "10.11.12.11/24", "10.11.12.1", 20),
    ("b2", "10.11.12.12/24", "10.11.12.1", 20),
    ("b3", "10.11.13.13/24", "10.11.13.1", 30),
]
VIP_INTEGRATED = "117.78.6.19"
VIP_DIRECTOR = "117.78.6.20"
BALANCER_IP = "10.0.0.2"


class PlainHost(Host):
    """An unmodified server or client. Only lab hygiene: IPv6 off (no neighbour-discovery noise
    in the counters) and TX checksum offload off, which the OVS userspace datapath needs for TCP
    over veth (else TCP silently fails while ping works)."""

    def config(self, **params):
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        for intf in self.intfList():
            if intf.name != "lo":
                self.cmd(f"ethtool -K {intf.name} tx off >/dev/null 2>&1")
        return result


class LinuxRouter(PlainHost):
    """Routes between the internet side and the VLANs. Reverse-path filtering is off: with DR,
    client packets reach the backends through the balancer's VLAN and replies leave through the
    backend's VLAN with the VIP as source, an asymmetric path by design."""

    def config(self, routes=(), **params):
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
        for intf in self.intfList():
            self.cmd(f"sysctl -qw net.ipv4.conf.{intf.name.replace('.', '/')}.rp_filter=0")
        for dst, via in routes:
            self.cmd(f"ip route replace {dst} via {via}")
        return result


class DirectorHost(PlainHost):
    """A Linux DR director: forwards VIP traffic to backend IPs routed on-link, so the kernel
    ARPs for a backend IP in the balancer VLAN and the balancer answers with a fabricated MAC."""

    def config(self, vip=None, backends=(), **params):
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                 "net.ipv4.conf.all.send_redirects=0 net.ipv4.fib_multipath_hash_policy=1")
        intf = self.defaultIntf().name
        self.cmd(f"sysctl -qw net.ipv4.conf.{intf}.send_redirects=0 net.ipv4.conf.{intf}.rp_filter=0")
        if vip and backends:
            hops = " ".join(f"nexthop via {b} dev {intf} onlink" for b in backends)
            self.cmd(f"ip route replace {vip}/32 {hops}")
        return result


class VlanOVSSwitch(OVSSwitch):
    """Userspace-datapath OVS (this kernel has no openvswitch module), OpenFlow 1.3, secure fail
    mode (nothing forwards until the controller says how), and access ports tagged from the
    link's ``vlan`` parameter."""

    def __init__(self, name, **params):
        params.setdefault("datapath", "user")
        params.setdefault("protocols", "OpenFlow13")
        params.setdefault("failMode", "secure")
        super().__init__(name, **params)

    def intfOpts(self, intf):
        """Options for ``add-port``: the access VLAN goes in the same ovs-vsctl transaction."""
        opts = super().intfOpts(intf)
        vlan = getattr(intf, "params", {}).get("vlan")
        return opts + (f" -- set Port {intf} tag={vlan}" if vlan else "")


class CrossVlanTopo(Topo):
    def build(self):
        router = self.addHost("r0", cls=LinuxRouter, ip=None,
                              routes=[(f"{VIP_INTEGRATED}/32", BALANCER_IP), (f"{VIP_DIRECTOR}/32", DIRECTOR["ip"][:-3])])
        client = self.addHost(CLIENT["name"], cls=PlainHost, ip=CLIENT["ip"], defaultRoute=f"via {CLIENT['gw']}")
        lb = self.addSwitch("s1", cls=VlanOVSSwitch, dpid="0000000000000001")
        edge = self.addSwitch("s2", cls=VlanOVSSwitch, dpid="0000000000000002")
        director = self.addHost(DIRECTOR["name"], cls=DirectorHost, ip=DIRECTOR["ip"],
                                defaultRoute=f"via {DIRECTOR['gw']}", vip=VIP_DIRECTOR,
                                backends=[BACKENDS[0][1][:-3], BACKENDS[2][1][:-3]])

        self.addLink(client, router, addr2=ROUTER_MACS[0], params2={"ip": ROUTER_IPS[0]})
        self.addLink(router, lb, addr1=ROUTER_MACS[1], params1={"ip": ROUTER_IPS[1]}, params2={"vlan": BALANCER_VLAN})
        self.addLink(director, lb, params2={"vlan": BALANCER_VLAN})
        self.addLink(router, edge, addr1=ROUTER_MACS[2], params1={"ip": ROUTER_IPS[2]}, params2={"vlan": 20})
        self.addLink(router, edge, addr1=ROUTER_MACS[3], params1={"ip": ROUTER_IPS[3]}, params2={"vlan": 30})
        for name, ip, gw, vlan in BACKENDS:
            host = self.addHost(name, cls=PlainHost, ip=ip, defaultRoute=f"via {gw}")
            self.addLink(host, edge, params2={"vlan": vlan})


topos = {"crossvlan": CrossVlanTopo}

# What the lab runner (lbapp/lab.py) needs to know about this topology.
ROUTER = "r0"
ROUTER_BALANCER_INTF = "r0-eth1"
BALANCER_SWITCH = "s1"
BALANCER_UPLINK = "s1-eth1"  # the balancer switch's port toward the router
SWITCHES = ("s1", "s2")
CLIENTS = (CLIENT["name"],)


def backend_names():
    return [name for name, *_ in BACKENDS]
