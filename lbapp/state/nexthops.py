"""Next-hop learning: gateway IP -> MAC and switch port, from ARP probes and gratuitous ARP,
guarded the way a switch's dynamic ARP inspection guards it: ARP is unauthenticated, so a host
could claim the gateway's address and draw the clients' traffic. An ARP speaking for a gateway
is believed only from a port the gateway may answer on: the config's ``ports`` for it, else the
port it last answered on (its first answer after the switch connects), a trust that lapses when
it has not answered there for ``LAPSE_PROBES`` probe intervals (it moved, or died). On a trusted
port a new MAC is followed at once (a VRRP failover's gratuitous ARP). Pure, time passed in."""
from __future__ import annotations

from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp import mac as macs
from lbapp.shared import IPv4

LAPSE_PROBES = 3  # probe intervals without an answer on the trusted port, after which another port may take over
UNKNOWN_RETRY_S = 0.5  # a gateway not known (yet, or any more) is asked again this soon: its traffic waits for it


@dataclass
class Gateway:
    """One gateway as learned on one balancer: its MAC and port, when it last answered and is next
    probed. Changed only by the ``NextHops`` that holds it."""

    name: str
    ip: IPv4
    mac: int | None = None
    port: int | None = None
    learned_at: float | None = None  # the last ARP believed from it
    next_probe: float = 0.0  # due at once
    ports: frozenset[int] = frozenset()  # from the config: the only ports it may answer on (empty: any)
    refused: int = 0  # ARPs for it not believed since the last warning
    warned_at: float | None = None

    @property
    def known(self) -> bool:
        return self.mac is not None and self.port is not None


@dataclass(frozen=True)
class Learned:
    """What one ARP for a gateway did: ``changed`` its MAC or port (``old_mac``, ``old_port``
    before), or was ``refused`` (``reason``), or confirmed what was known (neither)."""

    gateway: Gateway
    changed: bool = False
    old_mac: int | None = None
    old_port: int | None = None
    refused: str = ""


@dataclass
class NextHops:
    """Owns one balancer's gateways (``by_name``, ``by_ip``) and what was learned of them. Changed
    by lbapp.handlers.arp (``learn``, ``warn_now``) and the Balancer (``forget_port`` and
    ``probe_soon`` on connect, ``due_probes`` on its tick); a reload builds a new one that keeps
    what was learned."""

    by_name: dict[str, Gateway]
    probe_interval: float
    by_ip: dict[IPv4, Gateway] = field(init=False)

    def __post_init__(self) -> None:
        self.by_ip = {g.ip: g for g in self.by_name.values()}

    @classmethod
    def of(cls, gateways: list[tuple[str, IPv4, list[int]]], probe_interval: float) -> "NextHops":
        """``gateways``: (name, IP, ports it may answer on: empty for the port it answers on)."""
        return cls({name: Gateway(name, ip, ports=frozenset(ports)) for name, ip, ports in gateways}, probe_interval)

    def keep_learned(self, previous: "NextHops") -> None:
        """After a config reload: what was learned about a gateway still named (same IP) stays,
        unless its port is no longer one it may answer on."""
        for name, gw in self.by_name.items():
            old = previous.by_name.get(name)
            if old is not None and old.ip == gw.ip and (not gw.ports or old.port in gw.ports):
                gw.mac, gw.port, gw.learned_at, gw.next_probe = old.mac, old.port, old.learned_at, old.next_probe

    def learn(self, ip: IPv4, mac: int, port: int, now: float, eth_src: int | None = None) -> Learned | None:
        """Weigh an ARP from ``ip`` (sender MAC ``mac``, frame source ``eth_src``) that came in on
        ``port``; None when ``ip`` is no gateway."""
        gw = self.by_ip.get(ip)
        if gw is None:
            return None
        refused = self._doubt(gw, mac, port, now, eth_src)
        if refused:
            gw.refused += 1
            return Learned(gw, refused=refused)
        old = (gw.mac, gw.port)
        if not gw.known:  # found: asked again at the interval, no longer soon
            gw.next_probe = now + self.probe_interval
        gw.mac, gw.port, gw.learned_at = mac, port, now
        return Learned(gw, changed=old != (mac, port), old_mac=old[0], old_port=old[1])

    def _doubt(self, gw: Gateway, mac: int, port: int, now: float, eth_src: int | None) -> str:
        """Why this ARP is not believed ("" when it is)."""
        if eth_src is not None and eth_src != mac:
            return "its Ethernet source differs from the MAC it claims"
        if gw.ports:
            return "" if port in gw.ports else f"port {port} is not one the config lets it answer on " \
                                               f"({', '.join(map(str, sorted(gw.ports)))})"
        if gw.port is None or port == gw.port:
            return ""
        if gw.learned_at is not None and now - gw.learned_at > LAPSE_PROBES * self.probe_interval:
            return ""  # silent where it was for several probes: it moved; the first answer elsewhere is it
        return f"it answers on port {gw.port}"

    def warn_now(self, gw: Gateway, now: float, every: float = 10.0) -> int:
        """How many refused ARPs to warn about now (0: not yet, the last warning is recent):
        a flood of forged ARPs makes one line per ``every`` seconds, not one each."""
        if not gw.refused or (gw.warned_at is not None and now - gw.warned_at < every):
            return 0
        count, gw.refused, gw.warned_at = gw.refused, 0, now
        return count

    def due_probes(self, now: float) -> list[Gateway]:
        """Gateways to probe now; each is then scheduled one interval later."""
        due = [g for g in self.by_name.values() if g.next_probe <= now]
        for g in due:  # an ARP can be lost (a burst of packet-ins at a takeover): the unknown are asked again soon
            g.next_probe = now + (self.probe_interval if g.known else min(self.probe_interval, UNKNOWN_RETRY_S))
        return due

    def findings(self, dpid: int) -> dict[str, str]:
        """What is known, for a cluster's next leader: ``{"next hop DPID NAME": "MAC PORT"}``."""
        return {_finding(dpid, g): f"{macs.format_mac(g.mac)} {g.port}" for g in self.by_name.values() if g.known}

    def inherit(self, findings: dict[str, str], dpid: int, now: float) -> None:
        """A new leader takes its predecessor's findings (as :meth:`findings` wrote them) as
        learned ``now``: the switch keeps forwarding while the next probe confirms them. What
        does not parse is left alone."""
        for g in self.by_name.values():
            mac, _, port = findings.get(_finding(dpid, g), "").partition(" ")
            try:
                mac_value, port_value = macs.parse_mac(mac), int(port)
            except (ValueError, macs.MacError):
                continue
            if macs.is_multicast(mac_value) or not 0 < port_value <= ofp.OFPP_MAX:  # as an ARP would not be believed
                continue
            if not g.ports or port_value in g.ports:
                g.mac, g.port, g.learned_at = mac_value, port_value, now

    def probe_soon(self) -> None:
        """On demand (a switch connected): probe every gateway at the next tick."""
        for g in self.by_name.values():
            g.next_probe = 0.0

    def forget_port(self) -> None:
        """The balancer switch reconnected: ports may have been renumbered; relearn."""
        for g in self.by_name.values():
            g.mac = g.port = None


def _finding(dpid: int, gw: Gateway) -> str:
    return f"next hop {dpid:016x} {gw.name}"
