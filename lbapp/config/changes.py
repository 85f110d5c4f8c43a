"""What a new config changes, for a reload that sends only what changed: the VIPs it touches and
the backend addresses whose edge flows may change, or None when it changes more than VIPs and
the edges' backend lists (then every flow is built again)."""
from __future__ import annotations

from dataclasses import dataclass

from lbapp.config.models import Config, VipModel
from lbapp.shared import IPv4, VipKey


@dataclass(frozen=True)
class Scope:
    """The VIPs (by key, in either config) whose flows may differ, and the backend addresses
    whose per-backend edge flows may."""

    vips: frozenset[VipKey]
    backends: frozenset[IPv4]

    def narrowed(self, cfg: Config) -> Config:
        """``cfg`` with only the VIPs of the scope, and edges listing only its backends: what the
        builders see to build just the flows that may differ."""
        return cfg.model_copy(update={
            "vips": [v for v in cfg.vips if VipKey.of(v) in self.vips],
            "edges": [e.model_copy(update={"backends": [ip for ip in e.backends if ip in self.backends]})
                      for e in cfg.edges]})


def touched_vips(before: Config, after: Config) -> set[VipKey] | None:
    """The VIPs (by key) added, removed or changed going from ``before`` to ``after``; None if
    anything but VIPs and the edges' backend lists differs, if fabricated MACs come from a table
    (its flows are per backend, shared by VIPs), or if an optional stage comes or goes."""
    if _beyond_vips(before) != _beyond_vips(after) or before.fabricated_mac.scheme != "computed" \
            or _stages_present(before) != _stages_present(after):
        return None
    old, new = _by_key(before.vips), _by_key(after.vips)
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}


def scope_of(touched: set[VipKey], before: Config, after: Config) -> Scope:
    """The scope of a change to the VIPs ``touched`` (changed, or whose running state did): with
    the VIPs whose flows are built with theirs, and every backend address of them or moved."""
    vips = set(touched) | _sharing(touched, before) | _sharing(touched, after)
    ips = {b.ip for cfg in (before, after) for v in cfg.vips if VipKey.of(v) in vips for b in v.backends}
    return Scope(frozenset(vips), frozenset(ips | _edge_moves(before, after)))


def checked(touched: set[VipKey], *configs: Config) -> bool:
    """Whether a VIP of ``touched`` has a health check in one of ``configs``: the probe stage's
    flows, shared by VIPs, may then change."""
    return any(VipKey.of(v) in touched and (v.health is not None or any(b.health for b in v.backends))
               for cfg in configs for v in cfg.vips)


def _beyond_vips(cfg: Config) -> tuple:
    """Everything but the VIPs and the edges' backend lists, comparable (models compare their
    cached MAC scheme too)."""
    return cfg.model_dump(exclude={"vips", "edges"}), [(e.name, e.dpid) for e in cfg.edges]


def _stages_present(cfg: Config) -> tuple[bool, bool]:
    """What decides whether the VIPs' optional stages are there (a VIP the balancer picks for:
    the pin stage; a persistent one: the affinity stage): their miss flows are no VIP's."""
    balanced = [v for v in cfg.vips if not v.external_director]
    return bool(balanced), any(v.persistence is not None for v in balanced)


def _by_key(vips: list[VipModel]) -> dict[VipKey, VipModel]:
    return {VipKey.of(v): v for v in vips}


def _sharing(touched: set[VipKey], cfg: Config) -> set[VipKey]:
    """VIPs whose flows are built together with a touched one's: the same address (one ARP
    answer) or the same persistence group (one affinity table)."""
    ips = {v.ip for v in cfg.vips if VipKey.of(v) in touched}
    groups = {v.persistence.group for v in cfg.vips if VipKey.of(v) in touched and v.persistence}
    return {VipKey.of(v) for v in cfg.vips
            if v.ip in ips or (v.persistence is not None and v.persistence.group in groups - {None})}


def _edge_moves(before: Config, after: Config) -> set[IPv4]:
    """Backend addresses added to or taken from an edge's list."""
    lists = {}
    for cfg in (before, after):
        for e in cfg.edges:
            lists.setdefault(e.name, []).append(set(e.backends))
    return {ip for sets in lists.values() for ip in (sets[0] ^ sets[-1] if len(sets) == 2 else sets[0])}
