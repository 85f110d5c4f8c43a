"""What the stage builders need from the config, with the ids that go into cookies."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field

from lbapp import mac as macs
from lbapp.config import BalancerModel, Config, EdgeModel, RouteModel, VipModel
from lbapp.shared import IPv4, VipKey



@dataclass(frozen=True)
class FabricatedRange:
    """Where the switch recognises fabricated MACs (and answers ARP with them): per backend route
    for computed MACs (a MAC range, decoded and built by move actions), per backend for a MAC
    table (one exact MAC). The one place that tells the two schemes apart for the builders."""

    obj: int  # the route's id (computed) or the backend's id (table): the cookie's object
    eth_dst: str | tuple[str, str]  # the fabricated MACs: (value, mask), or one MAC
    arp_tpa: str | tuple[str, str]  # the addresses they stand for: (network, netmask), or one IP
    backend: IPv4 | None  # the one backend behind an exact MAC; None for a computed range


@dataclass
class Context:
    """One switch's view: the config, and the balancer it runs as (None for a pure edge switch)."""

    cfg: Config
    balancer: BalancerModel | None = None
    generation: int = 0
    vip_ids: dict[VipKey, int] | None = None  # the VIP table's ids; None: 1-based positions (a first load)
    # a view of the same config whose backend ids (and MACs) this one takes, not working them out again
    same_backends: InitVar[Context | None] = None
    scheme: macs.MacScheme = field(init=False)
    balancer_mac: int = field(init=False)
    backend_ids: dict[IPv4, int] = field(init=False)
    backend_by_id: dict[int, IPv4] = field(init=False)
    backend_by_mac: dict[int, IPv4] = field(init=False)  # fabricated MAC -> backend
    _persistence_ids: dict[int, int] = field(init=False, default_factory=dict)

    def __post_init__(self, same_backends: Context | None) -> None:
        self.scheme = self.cfg.mac_scheme()
        self.balancer_mac = macs.parse_mac(self.balancer.mac) if self.balancer else 0
        if same_backends is not None:
            self.backend_ids, self.backend_by_id = same_backends.backend_ids, same_backends.backend_by_id
            self.backend_by_mac = same_backends.backend_by_mac
            return
        ips = sorted({b.ip for v in self.cfg.vips for b in v.backends}, key=int)  # (IPv4's < is Python)
        self.backend_ids = {ip: i + 1 for i, ip in enumerate(ips)}
        self.backend_by_id = {i: ip for ip, i in self.backend_ids.items()}
        self.backend_by_mac = {self.scheme.encode(ip): ip for ip in ips}

    @property
    def balancer_ip(self) -> IPv4:
        if self.balancer is None:
            raise ValueError("this switch is no balancer; balancer stages do not apply")
        return self.balancer.address.ip

    def narrowed(self, cfg: Config) -> Context:
        """This view over ``cfg``, a part of this one's config (lbapp.config.changes.Scope),
        with this one's VIP and backend ids: it builds the same flows for what it holds."""
        ids = self.vip_ids or {VipKey.of(v): i + 1 for i, v in enumerate(self.cfg.vips)}
        return Context(cfg, self.balancer, self.generation, ids, self)

    def vips(self) -> list[tuple[int, VipModel]]:
        """(VIP id, VIP) in config order."""
        if self.vip_ids is None:
            return [(i + 1, v) for i, v in enumerate(self.cfg.vips)]
        return [(self.vip_ids[VipKey.of(v)], v) for v in self.cfg.vips]

    def balanced_vips(self) -> list[tuple[int, VipModel]]:
        """The VIPs this balancer schedules itself (not those of an external director)."""
        return [(i, v) for i, v in self.vips() if not v.external_director]

    def persistence_id(self, vip_id: int, vip: VipModel) -> int:
        """A persistent VIP's persistence id: the lowest id among the VIPs sharing its group (its
        own id without one). Ids stay with their VIPs through reloads; so does the id."""
        found = self._persistence_ids.get(vip_id)
        if found is None:  # asked per connection: worked out once
            group = vip.persistence.group if vip.persistence else None
            found = self._persistence_ids[vip_id] = vip_id if group is None else min(
                i for i, v in self.balanced_vips() if v.persistence and v.persistence.group == group)
        return found

    def routes(self) -> list[tuple[int, RouteModel]]:
        return [(i + 1, r) for i, r in enumerate(self.cfg.routes)]

    def fabricated_ranges(self) -> list[FabricatedRange]:
        scheme = self.scheme
        if scheme.kind == "computed":
            return [FabricatedRange(route_id, tuple(map(macs.format_mac, scheme.network_match(r.dst))),
                                    (str(r.dst.network_address), str(r.dst.netmask)), None)
                    for route_id, r in self.routes()]
        return [FabricatedRange(backend_id, macs.format_mac(scheme.encode(ip)), str(ip), ip)
                for ip, backend_id in self.backend_ids.items()]

    @property
    def checks_health(self) -> bool:
        """Some backend of a VIP this balancer schedules has a health check."""
        return bool(self.probe_answer_sources())

    def probe_answer_sources(self) -> list[IPv4]:
        """Where answers to this balancer's health probes come from, in address order: each
        checked backend's address, and its VIP's (an edge source-NATs a backend's replies from
        the VIP's port)."""
        found = set()
        for _, vip in self.balanced_vips():
            checked = {b.ip for b in vip.backends if vip.health_of(b) is not None}
            found |= checked | ({vip.ip} if checked else set())
        return sorted(found, key=int)

    def gateway_id(self, name: str) -> int:
        return next(i + 1 for i, g in enumerate(self.cfg.gateways) if g.name == name)

    def edges_of(self, dpid: int) -> list[EdgeModel]:
        return [e for e in self.cfg.edges if e.dpid == dpid]


@dataclass(frozen=True)
class SwitchView:
    """What a stage builder sees of one switch: its id, its view of the config, and (on a
    balancer) each gateway's learned MAC and port, by gateway name, the (VIP id, backend)s whose
    pinned connections must not stay on them (failed health checks), the VIPs with no backend
    left to pick, the controller-picked VIPs under overload (lbapp.state.overload), and the
    epoch of each `pin: conntrack` VIP (lbapp.state.pinned)."""

    dpid: int
    ctx: Context
    gateways: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    withheld_pins: frozenset[tuple[int, IPv4]] = frozenset()
    refusing: frozenset[int] = frozenset()  # VIPs with no backend to pick
    overloaded: frozenset[int] = frozenset()  # controller-picked VIPs the switch picks for meanwhile
    epochs: dict[int, int] = field(default_factory=dict)  # `pin: conntrack` VIP id -> its current epoch
    slots: dict[int, Sequence[IPv4 | None]] = field(default_factory=dict)  # VIP id -> its slot table
