"""Next-hop learning: gateway IP -> MAC and switch port, from ARP probes and gratuitous ARP."""
from __future__ import annotations

from dataclasses import dataclass

from lbapp.shared import IPv4


@dataclass
class Gateway:
    name: str
    ip: IPv4
    mac: int | None = None
    port: int | None = None
    learned_at: float | None = None
    next_probe: float = 0.0  # due at once

    @property
    def known(self) -> bool:
        return self.mac is not None and self.port is not None


class NextHops:
    def __init__(self, gateways: list[tuple[str, IPv4]], probe_interval: float) -> None:
        self.by_name = {name: Gateway(name, ip) for name, ip in gateways}
        self.by_ip = {g.ip: g for g in self.by_name.values()}
        self.probe_interval = probe_interval

    def keep_learned(self, previous: "NextHops") -> None:
        """After a config reload: what was learned about a gateway still named (same IP) stays."""
        for name, gw in self.by_name.items():
            old = previous.by_name.get(name)
            if old is not None and old.ip == gw.ip:
                gw.mac, gw.port, gw.learned_at, gw.next_probe = old.mac, old.port, old.learned_at, old.next_probe

    def learn(self, ip: IPv4, mac: int, port: int, now: float) -> Gateway | None:
        """Record what an ARP from ``ip`` said; the gateway when its MAC or port changed."""
        gw = self.by_ip.get(ip)
        if gw is None:
            return None
        changed = (gw.mac, gw.port) != (mac, port)
        gw.mac, gw.port, gw.learned_at = mac, port, now
        return gw if changed else None

    def due_probes(self, now: float) -> list[Gateway]:
        """Gateways to probe now; each is then scheduled one interval later."""
        due = [g for g in self.by_name.values() if g.next_probe <= now]
        for g in due:
            g.next_probe = now + self.probe_interval
        return due

    def probe_soon(self) -> None:
        """On demand (a switch connected): probe every gateway at the next tick."""
        for g in self.by_name.values():
            g.next_probe = 0.0

    def forget_port(self) -> None:
        """The balancer switch reconnected: ports may have been renumbered; relearn."""
        for g in self.by_name.values():
            g.mac = g.port = None
