"""The balancer's YAML config: parsed into frozen models, every error named by its field path.

Two passes. pydantic checks shapes and types (a bad address, a missing field, an unknown key);
then :func:`_semantic_errors` checks what only the whole file can tell (a duplicate VIP, a backend
no route reaches, a fabricated MAC that is multicast or collides). Both report
``path: message`` lines, and all of them at once, so one ``lbapp check`` shows every mistake.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lbapp import mac as macs
from lbapp.schedulers import registry
from lbapp.schedulers.mh import is_prime
from lbapp.shared import MAX_VIP_ID, IPv4


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """Raised with every problem found in a config file."""

    def __init__(self, errors: list[FieldError], source: str = "config") -> None:
        self.errors = errors
        self.source = source
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{source}: {len(errors)} error(s)\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_dpid(value: Any) -> int:
    """A datapath id as an int, ``0x...`` or ``00:00:...:01`` (as ovs-ofctl prints it)."""
    if isinstance(value, bool):
        raise ValueError("datapath id must be an integer or hex string")
    if isinstance(value, int):
        dpid = value
    elif isinstance(value, str):
        text = value.strip().lower().replace(":", "")
        try:
            dpid = int(text, 16) if value.strip().lower().startswith("0x") or ":" in value else int(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a datapath id (int, 0x-hex or 00:00:..:01)") from None
    else:
        raise ValueError("datapath id must be an integer or hex string")
    if not 0 < dpid < 1 << 64:
        raise ValueError(f"datapath id {value!r} out of range 1..2^64-1")
    return dpid


def _check_mac(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("MAC address must be a string like 02:00:00:00:00:01")
    return macs.format_mac(macs.parse_mac(value))


class BalancerModel(_Model):
    name: str = Field("lb", min_length=1)
    dpid: int
    address: ipaddress.IPv4Interface = Field(description="the balancer's own IP/prefix in its VLAN")
    mac: str
    arp_proxy: Literal["switch", "controller"] = "switch"
    probe_interval: float = Field(10.0, gt=0)

    @field_validator("dpid", mode="before")
    @classmethod
    def _dpid(cls, v: Any) -> int:
        return _parse_dpid(v)

    @field_validator("mac", mode="before")
    @classmethod
    def _mac(cls, v: Any) -> str:
        return _check_mac(v)


class GatewayModel(_Model):
    name: str = Field(min_length=1)
    ip: IPv4


class RouteModel(_Model):
    dst: ipaddress.IPv4Network
    via: str = Field(min_length=1, description="a gateway name")


class FabricatedMacModel(_Model):
    scheme: Literal["computed", "table"] = "computed"
    layout: Literal["prefix", "suffix", "split"] = "prefix"
    tag: str = "aa:bb"
    table: dict[IPv4, str] = Field(default_factory=dict)

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        macs.parse_tag(v)
        return v.lower()

    @field_validator("table", mode="before")
    @classmethod
    def _table(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: _check_mac(m) for k, m in v.items()}
        return v


AdminState = Literal["up", "drain", "down"]


class BackendModel(_Model):
    ip: IPv4
    weight: int = Field(1, ge=0, le=10000, description="0 drains: no new connections")
    down: bool = Field(False, description="marked down: no new connections, established ones run on")

    @property
    def admin_state(self) -> AdminState:
        """What the operator said: down, drained (weight 0: established connections finish), or up."""
        return "down" if self.down else "drain" if self.weight == 0 else "up"

    @property
    def admin_weight(self) -> int:
        """The configured weight as far as the operator lets it count: 0 unless up."""
        return self.weight if self.admin_state == "up" else 0


class VipModel(_Model):
    name: str = Field(min_length=1)
    ip: IPv4
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    scheduler: str = "rr"
    idle_timeout: int = Field(60, ge=1, le=65535, description="seconds")
    hash: Literal["src_ip", "five_tuple"] = Field("src_ip", description="what sh and mh hash")
    table_size: int = Field(65537, ge=3, description="mh: Maglev table size, a prime")
    external_director: bool = Field(False, description="scheduled by an external DR director: the balancer "
                                                       "only translates its frames; edges source-NAT replies")
    selection: Literal["controller", "switch"] = Field(
        "controller", description="who picks a new connection's backend: the controller (any scheduler, one "
                                  "packet-in per connection) or the switch, by a hash of the five-tuple into a "
                                  "slot table the controller keeps (scheduler mh; no controller per connection)")
    backends: list[BackendModel] = Field(min_length=1)


class FeedbackModel(_Model):
    interval: float = Field(5.0, gt=0, description="seconds between load readings")
    max_step: float = Field(0.25, gt=0, lt=1, description="largest change of a factor per reading")
    min_factor: float = Field(0.25, gt=0, le=1)
    max_factor: float = Field(2.0, ge=1)


class EdgeModel(_Model):
    name: str = Field(min_length=1)
    dpid: int
    backends: list[IPv4] = Field(min_length=1)

    @field_validator("dpid", mode="before")
    @classmethod
    def _dpid(cls, v: Any) -> int:
        return _parse_dpid(v)


class Config(_Model):
    balancer: BalancerModel | None = Field(None, description="one balancer switch")
    balancers: list[BalancerModel] = Field(default_factory=list, description="several (ECMP) balancer switches")
    gateways: list[GatewayModel] = Field(min_length=1)
    routes: list[RouteModel] = Field(min_length=1)
    fabricated_mac: FabricatedMacModel = Field(default_factory=FabricatedMacModel)
    vips: list[VipModel] = Field(min_length=1)
    edges: list[EdgeModel] = Field(default_factory=list)
    feedback: FeedbackModel | None = Field(None, description="dynamic feedback: adjust weights from measured load")

    @model_validator(mode="after")
    def _one_form(self) -> "Config":
        if (self.balancer is None) == (not self.balancers):
            raise ValueError("give exactly one of balancer: (one switch) or balancers: (a list)")
        return self

    # --- derived views, computed on demand from the validated fields ---

    def all_balancers(self) -> list[tuple[str, BalancerModel]]:
        """(field path, balancer) for each balancer switch, whichever form the file used."""
        if self.balancer is not None:
            return [("balancer", self.balancer)]
        return [(f"balancers[{i}]", b) for i, b in enumerate(self.balancers)]

    def balancer_for(self, dpid: int) -> BalancerModel | None:
        return next((b for _, b in self.all_balancers() if b.dpid == dpid), None)

    def mac_scheme(self) -> macs.MacScheme:
        fab = self.fabricated_mac
        if fab.scheme == "computed":
            return macs.ComputedScheme(fab.layout, macs.parse_tag(fab.tag))
        return macs.TableScheme({ip: macs.parse_mac(m) for ip, m in fab.table.items()})

    def gateway(self, name: str) -> GatewayModel:
        return next(g for g in self.gateways if g.name == name)

    def route_for(self, ip: IPv4) -> RouteModel | None:
        """Longest-prefix match over the configured routes."""
        matches = [r for r in self.routes if ip in r.dst]
        return max(matches, key=lambda r: r.dst.prefixlen, default=None)


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _pydantic_errors(exc: pydantic.ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err \
                and repr(err["input"]) not in msg:
            msg = f"{msg} (got {err['input']!r})"
        errors.append(FieldError(_loc_to_path(err["loc"]), msg))
    return errors


def _duplicates(items: list[Any]) -> dict[Any, list[int]]:
    seen: dict[Any, list[int]] = {}
    for i, item in enumerate(items):
        seen.setdefault(item, []).append(i)
    return {k: v for k, v in seen.items() if len(v) > 1}


def _semantic_errors(cfg: Config) -> list[FieldError]:
    errs: list[FieldError] = []

    def err(path: str, message: str) -> None:
        errs.append(FieldError(path, message))

    balancers = cfg.all_balancers()
    for key, name in (("dpid", "datapath id"), ("name", "name"), ("mac", "MAC")):
        for value, idx in _duplicates([getattr(b, key) for _, b in balancers]).items():
            for i in idx[1:]:
                err(f"{balancers[i][0]}.{key}", f"duplicate balancer {name} {value} (first at {balancers[idx[0]][0]})")
    for value, idx in _duplicates([b.address.ip for _, b in balancers]).items():
        for i in idx[1:]:
            err(f"{balancers[i][0]}.address", f"duplicate balancer address {value}")
    for path, bal in balancers:
        if macs.is_multicast(macs.parse_mac(bal.mac)):
            err(f"{path}.mac", f"{bal.mac} is a multicast MAC; the balancer needs a unicast one")

    for ip, idx in _duplicates([g.ip for g in cfg.gateways]).items():
        for i in idx[1:]:
            err(f"gateways[{i}].ip", f"duplicate gateway address {ip} (first at gateways[{idx[0]}])")
    for name, idx in _duplicates([g.name for g in cfg.gateways]).items():
        for i in idx[1:]:
            err(f"gateways[{i}].name", f"duplicate gateway name {name!r} (first at gateways[{idx[0]}])")
    for i, gw in enumerate(cfg.gateways):
        for path, bal in balancers:
            if gw.ip not in bal.address.network:
                err(f"gateways[{i}].ip", f"{gw.ip} is not in {path}'s subnet {bal.address.network}; "
                                         "a next hop must be on-link")
            if gw.ip == bal.address.ip:
                err(f"gateways[{i}].ip", f"{gw.ip} is {path}'s own address")

    gw_names = {g.name for g in cfg.gateways}
    for net, idx in _duplicates([r.dst for r in cfg.routes]).items():
        for i in idx[1:]:
            err(f"routes[{i}].dst", f"duplicate route to {net} (first at routes[{idx[0]}])")
    for i, route in enumerate(cfg.routes):
        if route.via not in gw_names:
            err(f"routes[{i}].via", f"no gateway named {route.via!r} (have: {', '.join(sorted(gw_names))})")
        for path, bal in balancers:
            if route.dst.overlaps(bal.address.network):
                err(f"routes[{i}].dst", f"{route.dst} overlaps {path}'s own subnet {bal.address.network}")

    scheme: macs.MacScheme | None = None
    try:
        scheme = cfg.mac_scheme()
    except macs.MacError as exc:
        err("fabricated_mac.table", str(exc))

    if isinstance(scheme, macs.ComputedScheme):
        if not scheme.layout.first_octet_from_ip and macs.is_multicast(scheme.tag_bits):
            err("fabricated_mac.tag", f"tag {scheme.tag_text} puts the multicast bit in the first "
                                      f"octet under layout {scheme.layout.name}")
        for i, route in enumerate(cfg.routes):
            value, mask = scheme.network_match(route.dst)
            if scheme.layout.first_octet_from_ip and route.dst.prefixlen < 8:
                err(f"routes[{i}].dst", f"{route.dst} is wider than /8: under layout "
                                        f"{scheme.layout.name} some of its addresses give multicast MACs")
            elif scheme.layout.first_octet_from_ip and macs.is_multicast(value):
                err(f"routes[{i}].dst", f"{route.dst} starts with an odd octet: under layout "
                                        f"{scheme.layout.name} its fabricated MACs are multicast")
            for path, bal in balancers:
                if macs.parse_mac(bal.mac) & mask == value:
                    err(f"{path}.mac", f"{bal.mac} falls in the fabricated MAC range of routes[{i}] "
                                       f"({route.dst}); frames to the balancer would be translated")
    elif isinstance(scheme, macs.TableScheme):
        for ip, mac in scheme.by_ip.items():
            if macs.is_multicast(mac):
                err(f"fabricated_mac.table.{ip}", f"{macs.format_mac(mac)} is a multicast MAC")
            for path, bal in balancers:
                if mac == macs.parse_mac(bal.mac):
                    err(f"fabricated_mac.table.{ip}", f"{macs.format_mac(mac)} is {path}'s own MAC")

    sched_names = registry.names()
    if len(cfg.vips) > MAX_VIP_ID:
        err("vips", f"{len(cfg.vips)} VIPs: at most {MAX_VIP_ID} fit the flow cookies")
    for key, idx in _duplicates([(v.ip, v.port, v.protocol) for v in cfg.vips]).items():
        for i in idx[1:]:
            err(f"vips[{i}]", f"duplicate VIP {key[0]}:{key[1]}/{key[2]} (first at vips[{idx[0]}])")
    for name, idx in _duplicates([v.name for v in cfg.vips]).items():
        for i in idx[1:]:
            err(f"vips[{i}].name", f"duplicate VIP name {name!r} (first at vips[{idx[0]}])")

    for i, vip in enumerate(cfg.vips):
        path = f"vips[{i}]"
        for bpath, bal in balancers:
            if vip.ip == bal.address.ip:
                err(f"{path}.ip", f"{vip.ip} is {bpath}'s own address")
        if any(vip.ip in r.dst for r in cfg.routes):
            err(f"{path}.ip", f"VIP {vip.ip} lies inside a backend route; it would be translated as a backend")
        if vip.scheduler not in sched_names:
            err(f"{path}.scheduler", f"unknown scheduler {vip.scheduler!r} (known: {', '.join(sched_names)})")
        if vip.selection == "switch":
            if vip.scheduler != "mh":
                err(f"{path}.selection", f"selection: switch picks by a consistent hash in the switch (scheduler mh); "
                                         f"scheduler {vip.scheduler!r} needs selection: controller")
            if "hash" in vip.model_fields_set and vip.hash != "five_tuple":
                err(f"{path}.hash", f"selection: switch hashes the five-tuple (OVS dp_hash); hash: {vip.hash} "
                                    "needs selection: controller")
            if vip.external_director:
                err(f"{path}.selection", "an external director's VIP is scheduled by the director, not the switch")
        if vip.scheduler == "mh" and not is_prime(vip.table_size):
            err(f"{path}.table_size", f"{vip.table_size} is not prime; Maglev needs a prime table size (e.g. 65537)")
        for ip, idx in _duplicates([b.ip for b in vip.backends]).items():
            for j in idx[1:]:
                err(f"{path}.backends[{j}].ip", f"duplicate backend {ip} (first at backends[{idx[0]}])")
        if all(b.admin_weight == 0 for b in vip.backends):
            err(f"{path}.backends", "every backend has weight 0 or is down: the VIP could take no connection")
        for j, backend in enumerate(vip.backends):
            bpath = f"{path}.backends[{j}]"
            if cfg.route_for(backend.ip) is None:
                err(f"{bpath}.ip", f"backend {backend.ip} is reached by no route (routes: "
                                   f"{', '.join(str(r.dst) for r in cfg.routes)})")
            if scheme is None:
                continue
            try:
                fab = scheme.encode(backend.ip)
            except macs.MacError as exc:
                err(f"{bpath}.ip", f"backend {backend.ip}: {exc}")
                continue
            if macs.is_multicast(fab):
                err(f"{bpath}.ip", f"backend {backend.ip} would get fabricated MAC "
                                   f"{macs.format_mac(fab)}, a multicast address")
            for lb_path, bal in balancers:
                if fab == macs.parse_mac(bal.mac):
                    err(f"{bpath}.ip", f"backend {backend.ip}'s fabricated MAC {macs.format_mac(fab)} "
                                       f"collides with {lb_path}.mac")

    backend_ips = {b.ip for v in cfg.vips for b in v.backends}
    edge_of: dict[IPv4, int] = {}
    for i, edge in enumerate(cfg.edges):
        for j, ip in enumerate(edge.backends):
            if ip in edge_of:
                err(f"edges[{i}].backends[{j}]", f"{ip} is already on edges[{edge_of[ip]}]; "
                                                 "a backend sits behind one edge switch")
            edge_of.setdefault(ip, i)
            if ip not in backend_ips:
                err(f"edges[{i}].backends[{j}]", f"{ip} is not a backend of any VIP")
    for name, idx in _duplicates([e.name for e in cfg.edges]).items():
        for i in idx[1:]:
            err(f"edges[{i}].name", f"duplicate edge name {name!r}")
    for i, vip in enumerate(cfg.vips):
        for j, backend in enumerate(vip.backends):
            if backend.ip not in edge_of:
                err(f"vips[{i}].backends[{j}].ip", f"backend {backend.ip} is on no edge switch "
                                                   "(edges[*].backends): its replies would not get src=VIP")

    # Source NAT keys on (backend, protocol, service port): two VIPs sharing all three are ambiguous.
    snat_owner: dict[tuple[IPv4, str, int], int] = {}
    for i, vip in enumerate(cfg.vips):
        for j, backend in enumerate(vip.backends):
            key = (backend.ip, vip.protocol, vip.port)
            if key in snat_owner and snat_owner[key] != i:
                err(f"vips[{i}].backends[{j}].ip",
                    f"backend {backend.ip} already serves {vip.protocol}/{vip.port} for "
                    f"vips[{snat_owner[key]}]; its replies could not be given one source VIP")
            snat_owner.setdefault(key, i)
    return errs


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate a parsed YAML document; raise :class:`ConfigError` listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError([FieldError("", "the file must hold a mapping (balancer:, gateways:, ...)")], source)
    try:
        cfg = Config.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_pydantic_errors(exc), source) from None
    errors = _semantic_errors(cfg)
    if errors:
        raise ConfigError(errors, source)
    return cfg


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([FieldError("", f"cannot read file: {exc.strerror}")], str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([FieldError("", f"{where}not valid YAML ({getattr(exc, 'problem', exc)})")],
                          str(path)) from None
    return parse_config(data, str(path))
