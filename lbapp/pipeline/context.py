"""What the stage builders need from the config, with the ids that go into cookies."""
from __future__ import annotations

from dataclasses import dataclass, field

from lbapp import mac as macs
from lbapp.config import BalancerModel, Config, EdgeModel, RouteModel, VipModel
from lbapp.shared import IPv4



@dataclass
class Context:
    """One switch's view: the config, and the balancer it runs as (None for a pure edge switch)."""

    cfg: Config
    balancer: BalancerModel | None = None
    generation: int = 0
    scheme: macs.MacScheme = field(init=False)
    balancer_mac: int = field(init=False)
    backend_ids: dict[IPv4, int] = field(init=False)

    def __post_init__(self) -> None:
        self.scheme = self.cfg.mac_scheme()
        self.balancer_mac = macs.parse_mac(self.balancer.mac) if self.balancer else 0
        ips = sorted({b.ip for v in self.cfg.vips for b in v.backends})
        self.backend_ids = {ip: i + 1 for i, ip in enumerate(ips)}

    @property
    def balancer_ip(self) -> IPv4:
        if self.balancer is None:
            raise ValueError("this switch is no balancer; balancer stages do not apply")
        return self.balancer.address.ip

    def vips(self) -> list[tuple[int, VipModel]]:
        return [(i + 1, v) for i, v in enumerate(self.cfg.vips)]

    def balanced_vips(self) -> list[tuple[int, VipModel]]:
        """The VIPs this balancer schedules itself (not those of an external director)."""
        return [(i, v) for i, v in self.vips() if not v.external_director]

    def routes(self) -> list[tuple[int, RouteModel]]:
        return [(i + 1, r) for i, r in enumerate(self.cfg.routes)]

    def gateway_id(self, name: str) -> int:
        return next(i + 1 for i, g in enumerate(self.cfg.gateways) if g.name == name)

    def edges_of(self, dpid: int) -> list[EdgeModel]:
        return [e for e in self.cfg.edges if e.dpid == dpid]
