"""The config's shapes: frozen pydantic models that check each field (an address, a datapath id,
a MAC, a range), and the derived views on :class:`Config` the rest of lbapp reads the config by.

What only the whole file can tell (a duplicate VIP, a backend no route reaches) is not here but in
:mod:`lbapp.config.rules`, so a model stays a plain description of one part of the file.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from lbapp import mac as macs
from lbapp.config.fields import Address, check_mac, parse_dpid
from lbapp.shared import AdminState, IPv4, admin_weight


class _Model(BaseModel):
    """The base of every config model: unknown fields are refused, and a model is frozen, immutable
    once validated (a reload reads a new ``Config``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BalancerModel(_Model):
    """One balancer switch: its dpid, address and MAC, ARP and probe settings, and flood limits."""

    name: str = Field("lb", min_length=1)
    dpid: int
    address: ipaddress.IPv4Interface = Field(description="the balancer's own IP/prefix in its VLAN")
    mac: str
    arp_proxy: Literal["switch", "controller"] = "switch"
    probe_interval: float = Field(10.0, gt=0)
    # a flood of new connections (spoofed SYNs) must not swamp the controller: the switch sends
    # it at most punt_limit first packets per second (an OpenFlow meter), and a controller-picked
    # VIP that gets more than overload_above new connections per second is handed to the switch's
    # own path (its select group, pinned in conntrack) for overload_hold seconds at least
    punt_limit: int = Field(4000, ge=1, le=1_000_000)
    overload_above: int = Field(2000, ge=0, le=1_000_000, description="0: never")
    overload_hold: float = Field(10.0, gt=0, le=3600)
    probe_limit: int = Field(1000, ge=1, le=1_000_000,
                             description="packets per second the probe stage sends to the controller at most (answers "
                                         "to health probes, about 5 per http check, and unreachables), so a flood at "
                                         "the balancer's own address cannot fill the controller either")

    @field_validator("dpid", mode="before")
    @classmethod
    def _dpid(cls, v: Any) -> int:
        return parse_dpid(v)

    @field_validator("mac", mode="before")
    @classmethod
    def _mac(cls, v: Any) -> str:
        return check_mac(v)


class GatewayModel(_Model):
    """One gateway (next hop) by name and IP, and the ports it may answer ARP on."""

    name: str = Field(min_length=1)
    ip: Address
    # the switch ports (on each balancer) where this gateway, or a VRRP peer standing in for it,
    # may answer ARP; empty: the port it answers on after the switch connects (see lbapp.state.nexthops)
    ports: list[int] = Field(default_factory=list, max_length=64)

    @field_validator("ports")
    @classmethod
    def _ports(cls, ports: list[int]) -> list[int]:
        for port in ports:
            if not 1 <= port <= 0xFFFFFF00:
                raise ValueError(f"{port} is not a switch port number (1 to 4294967040)")
        return ports


class RouteModel(_Model):
    """A route: the destinations reached through a named gateway."""

    dst: ipaddress.IPv4Network
    via: str = Field(min_length=1, description="a gateway name")


class FabricatedMacModel(_Model):
    """How backend addresses map to fabricated MACs: a computed layout and tag, or a table."""

    scheme: Literal["computed", "table"] = "computed"
    layout: Literal["prefix", "suffix", "split"] = "prefix"
    tag: str = "aa:bb"
    table: dict[Address, str] = Field(default_factory=dict)

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        macs.parse_tag(v)
        return v.lower()

    @field_validator("table", mode="before")
    @classmethod
    def _table(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: check_mac(m) for k, m in v.items()}
        return v


class HealthModel(_Model):
    """A health check, probed through the data path from the balancer's own address."""

    type: Literal["tcp", "http", "udp", "icmp"] = Field(
        "tcp", description="tcp: SYN answered by SYN/ACK; http: one GET, its status; udp: a datagram answered "
                           "(ICMP port unreachable or silence fails); icmp: echo")
    port: int | None = Field(None, ge=1, le=65535, description="default: the VIP's port")
    interval: float = Field(2.0, ge=0.1, le=3600, description="seconds between probes")
    timeout: float = Field(1.0, ge=0.05, le=3600, description="seconds to wait for an answer")
    rise: int = Field(2, ge=1, le=100, description="passes in a row that bring a backend up")
    fall: int = Field(3, ge=1, le=100, description="failures in a row that take it down")
    path: str = Field("/", min_length=1, max_length=512, pattern=r"^/[\x21-\x7e]*$", description="http: the path")
    host: str | None = Field(None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.:\[\]-]+$",
                             description="http: the Host header (default: the backend's address)")
    expect_status: tuple[int, int] = Field((200, 399), description="http: lowest and highest passing status")
    on_failure: Literal["remove", "keep"] = Field(
        "remove", description="a down backend's established sessions: removed (their next packets are "
                              "scheduled afresh) or kept")

    @field_validator("expect_status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> Any:
        """200, "200-399" or [200, 399]."""
        if isinstance(v, int) and not isinstance(v, bool):
            v = (v, v)
        elif isinstance(v, str):
            low, _, high = v.partition("-")
            try:
                v = (int(low), int(high or low))
            except ValueError:
                raise ValueError(f"{v!r} is not a status or a range like 200-399") from None
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) for x in v):
            if not 100 <= v[0] <= v[1] <= 599:
                raise ValueError(f"{v[0]}-{v[1]} is not a range of HTTP statuses (100-599, low first)")
        return v

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> "HealthModel":
        if self.timeout > self.interval:
            raise ValueError(f"timeout {self.timeout:g} s is longer than interval {self.interval:g} s")
        return self


class BackendModel(_Model):
    """One backend of a VIP: its address, weight, admin state, health check, and whether it is a
    sorry server."""

    ip: Address
    weight: int = Field(1, ge=0, le=10000, description="0 drains: no new connections")
    down: bool = Field(False, description="marked down: no new connections, established ones run on")
    drain: bool = Field(False, description="drained: no new connections, established ones finish (the weight "
                                           "stays for when it is enabled again)")
    health: HealthModel | None = Field(None, description="this backend's health check; fields it gives override "
                                                         "the VIP's")
    sorry: bool = Field(False, description="a sorry server (keepalived's sorry_server): takes new connections only "
                                           "while no other backend of the VIP can")

    @property
    def admin_state(self) -> AdminState:
        """What the operator said: down, drained (weight 0: established connections finish), or up."""
        return "down" if self.down else "drain" if self.drain or self.weight == 0 else "up"

    @property
    def admin_weight(self) -> int:
        return admin_weight(self.weight, self.admin_state)


class PersistenceModel(_Model):
    """Client persistence (IPVS ``-p``, OVN's affinity): a client's new connections go to the
    backend its earlier ones went to, while it opens one within ``timeout`` of the last. Held in
    the switch, so a controller restart or a new leader keeps it."""

    timeout: int = Field(ge=1, le=65535, description="seconds after a client's last new connection that its "
                                                     "backend is kept for it (IPVS -p; an OpenFlow idle timeout)")
    netmask: int = Field(32, ge=1, le=32, description="prefix length of the client address that counts (IPVS -M): "
                                                      "24 keeps the clients of a /24 together")
    group: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                              description="VIPs naming one group share one persistence: a client keeps its "
                                          "backend across their ports (IPVS's port 0 and firewall marks)")

    def summary(self) -> str:
        """One line for tables: ``persistent 300 s``, with the netmask and group when given."""
        return " ".join(["persistent", f"{self.timeout} s", *([f"/{self.netmask}"] if self.netmask < 32 else []),
                         *([f"group {self.group}"] if self.group else [])])


class VipModel(_Model):
    """One VIP: its key, scheduler, who picks and where its connections are pinned, its backends and
    health check."""

    name: str = Field(min_length=1)
    ip: Address
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
    pin: Literal["flow", "conntrack"] = Field(
        "flow", description="where a connection the controller picked is held to its backend: a flow of its own in "
                            "the session table (its idle timeout and flow-removed tell its end; listed one by one) "
                            "or the switch's conntrack, committed by the packet-out that forwards its first packet "
                            "(no flow-mod per connection; live counts per backend from what the switch saw in the "
                            "last idle_timeout). selection: switch always pins in conntrack")
    backends: list[BackendModel] = Field(min_length=1)
    health: HealthModel | None = Field(None, description="the health check of every backend (none: not checked)")
    persistence: PersistenceModel | None = Field(None, description="client persistence (none: each connection "
                                                                   "is picked on its own)")
    panic_below: int = Field(
        1, ge=0, le=100, description="percent: while fewer of the backends in service pass their checks (and no sorry "
                                     "server can serve), the VIP panics: it balances over all of them, health ignored, "
                                     "and a failed backend's sessions stay. 1: only when none passes; 50: Envoy's "
                                     "default; 0: never (every backend failed: new connections refused, as in IPVS)")

    def health_of(self, backend: BackendModel) -> HealthModel | None:
        """The check for ``backend``: the VIP's, with the fields the backend's own block gives."""
        if backend.health is None or self.health is None:
            return backend.health or self.health
        # validated again as a whole: the merge may break a rule neither block breaks alone
        return HealthModel.model_validate(self.health.model_dump(exclude_unset=True)
                                          | backend.health.model_dump(exclude_unset=True))


class FeedbackModel(_Model):
    """Dynamic feedback's settings (lbapp.feedback.Feedback)."""

    interval: float = Field(5.0, gt=0, description="seconds between load readings")
    max_step: float = Field(0.25, gt=0, lt=1, description="largest change of a factor per reading")
    min_factor: float = Field(0.25, gt=0, le=1)
    max_factor: float = Field(2.0, ge=1)


class EdgeModel(_Model):
    """One edge switch and the backends behind it, whose replies it source-NATs."""

    name: str = Field(min_length=1)
    dpid: int
    backends: list[Address] = Field(min_length=1)

    @field_validator("dpid", mode="before")
    @classmethod
    def _dpid(cls, v: Any) -> int:
        return parse_dpid(v)


class Config(_Model):
    """The whole config file, validated, and the views the rest of lbapp reads it by. Immutable;
    only ``mac_scheme``'s result is cached on it."""

    balancer: BalancerModel | None = Field(None, description="one balancer switch")
    balancers: list[BalancerModel] = Field(default_factory=list, description="several (ECMP) balancer switches")
    gateways: list[GatewayModel] = Field(min_length=1)
    routes: list[RouteModel] = Field(min_length=1)
    fabricated_mac: FabricatedMacModel = Field(default_factory=FabricatedMacModel)
    vips: list[VipModel] = Field(min_length=1)
    edges: list[EdgeModel] = Field(default_factory=list)
    feedback: FeedbackModel | None = Field(None, description="dynamic feedback: adjust weights from measured load")
    _scheme: Any = PrivateAttr(default=None)

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
        """The fabricated-MAC scheme (raises MacError for a table that maps two IPs to one MAC).
        Built once per config: a MAC table takes O(entries), and validation asks per backend."""
        if self._scheme is None:
            fab = self.fabricated_mac
            if fab.scheme == "computed":
                self._scheme = macs.ComputedScheme(fab.layout, macs.parse_tag(fab.tag))
            else:
                self._scheme = macs.TableScheme({ip: macs.parse_mac(m) for ip, m in fab.table.items()})
        return self._scheme

    def gateway(self, name: str) -> GatewayModel:
        return next(g for g in self.gateways if g.name == name)

    def route_for(self, ip: IPv4) -> RouteModel | None:
        """Longest-prefix match over the configured routes."""
        return self.route_finder()(ip)

    def route_finder(self) -> Callable[[IPv4], RouteModel | None]:
        """:meth:`route_for` as a function, the routes read once: for a pass over many backends."""
        longest_first = [(int(r.dst.network_address), int(r.dst.netmask), r)
                         for r in sorted(self.routes, key=lambda r: -r.dst.prefixlen)]

        def route_for(ip: IPv4) -> RouteModel | None:
            address = int(ip)
            return next((r for network, mask, r in longest_first if address & mask == network), None)
        return route_for
