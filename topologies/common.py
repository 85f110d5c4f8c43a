"""Node classes and the lab description shared by the topologies in this folder.

Hosts stay unmodified servers and clients: the only settings made on them are lab hygiene
(IPv6 off, TX checksum offload off for the userspace datapath). The router and the director
are infrastructure, configured as such.
"""
from __future__ import annotations

from dataclasses import dataclass

from mininet.node import Host, OVSSwitch


@dataclass(frozen=True)
class LabInfo:
    """What the lab runner (lbapp/lab.py) and the demo need to know about a topology."""

    router: str
    router_balancer_mac: str        # the next hop every balancer must learn before traffic
    balancer_switches: tuple[str, ...]
    uplinks: tuple[str, ...]        # each balancer switch's port toward the router (replies must never arrive there)
    switches: tuple[str, ...]
    edge_switches: tuple[str, ...]  # lbapp's edge switches (source NAT)
    clients: tuple[str, ...]
    backends: tuple[tuple[str, str], ...]  # (host name, IP)
    internet_switches: tuple[str, ...] = ()  # plain switches on the clients' side


class PlainHost(Host):
    """An unmodified server or client. Lab hygiene only: IPv6 off (no neighbour-discovery noise
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
    backend's VLAN with the VIP as source, an asymmetric path by design. ``routes`` may list
    several next hops for one destination: an ECMP route hashed on the 5-tuple."""

    def config(self, routes=(), **params):
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 "
                 "net.ipv4.fib_multipath_hash_policy=1")
        for intf in self.intfList():
            self.cmd(f"sysctl -qw net.ipv4.conf.{intf.name}.rp_filter=0")
        for dst, vias in routes:
            vias = [vias] if isinstance(vias, str) else list(vias)
            hops = f"via {vias[0]}" if len(vias) == 1 else " ".join(f"nexthop via {v}" for v in vias)
            self.cmd(f"ip route replace {dst} {hops}")
        return result


class DirectorHost(PlainHost):
    """A Linux DR director: forwards VIP traffic to backend IPs routed on-link, so the kernel
    ARPs for a backend IP in the balancer VLAN and the balancer answers with a fabricated MAC."""

    def config(self, vip=None, backends=(), **params):
        result = super().config(**params)
        intf = self.defaultIntf().name
        self.cmd("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.all.send_redirects=0 "
                 f"net.ipv4.fib_multipath_hash_policy=1 net.ipv4.conf.{intf}.send_redirects=0 "
                 f"net.ipv4.conf.{intf}.rp_filter=0")
        if vip and backends:
            hops = " ".join(f"nexthop via {b} dev {intf} onlink" for b in backends)
            self.cmd(f"ip route replace {vip}/32 {hops}")
        return result


class VlanOVSSwitch(OVSSwitch):
    """Userspace-datapath OVS (this kernel has no openvswitch module), secure fail mode (nothing
    forwards until the controller says how), access ports tagged from the link's ``vlan``
    parameter; a port without one is a trunk. The controller speaks OpenFlow 1.3; 1.0 is allowed
    too so that ``ovs-ofctl dump-flows`` can show each flow's idle_age."""

    def __init__(self, name, **params):
        params.setdefault("datapath", "user")
        params.setdefault("protocols", "OpenFlow10,OpenFlow13")
        params.setdefault("failMode", "secure")
        super().__init__(name, **params)

    def intfOpts(self, intf):
        """Options for ``add-port``: the access VLAN goes in the same ovs-vsctl transaction."""
        opts = super().intfOpts(intf)
        vlan = getattr(intf, "params", {}).get("vlan")
        return opts + (f" -- set Port {intf} tag={vlan}" if vlan else "")


class PlainSwitch(VlanOVSSwitch):
    """A switch that is not lbapp's: a standalone learning switch, no controller."""

    def __init__(self, name, **params):
        params["failMode"] = "standalone"
        super().__init__(name, **params)

    def start(self, controllers):
        super().start([])
