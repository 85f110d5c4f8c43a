"""What only the whole config can tell (a duplicate VIP, a backend no route reaches, a fabricated MAC
that is multicast or collides), once pydantic has checked each field's shape. One small function per
concern, so a new check is a rule added to :data:`RULES`, not a branch in a long one. All run, in order,
and every error is kept: one ``lbapp check`` lists every mistake. Rules about one item (a route, a VIP)
run through :func:`each`, item by item, so errors come in the order the file reads. Sets of addresses
hold ints: hashing an IPv4Address formats it in hex, a cost at 100,000 backends."""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any

import pydantic

from lbapp import mac as macs
from lbapp.config.errors import FieldError
from lbapp.config.models import Config, GatewayModel, RouteModel, VipModel
from lbapp.schedulers import registry
from lbapp.schedulers.mh import is_prime
from lbapp.shared import MAX_VIP_ID

Rule = Callable[[Config], Iterable[FieldError]]
ItemRule = Callable[[Config, str, Any], Iterable[FieldError]]  # (config, the item's field path, the item)


def duplicates(values: Sequence[Hashable], path: str, message: str) -> Iterator[FieldError]:
    """An error per repeat of a value after its first; ``path`` and ``message`` format {i}, {first}, {value}."""
    seen: dict[Hashable, list[int]] = {}
    for i, value in enumerate(values):
        seen.setdefault(value, []).append(i)
    for value, (first, *repeats) in seen.items():
        for i in repeats:
            yield FieldError(path.format(i=i, first=first, value=value),
                             message.format(i=i, first=first, value=value))


def each(field: str, *rules: ItemRule) -> Callable[..., Iterator[FieldError]]:
    """Item ``rules`` run on each item of the list ``field`` (of the config, or of ``parent``), item by item."""
    def run(cfg: Config, path: str = "", parent: Any = None) -> Iterator[FieldError]:
        prefix = f"{path}." if path else ""
        for i, item in enumerate(getattr(cfg if parent is None else parent, field)):
            for rule in rules:
                yield from rule(cfg, f"{prefix}{field}[{i}]", item)

    run.__name__ = run.__qualname__ = f"each_{field}"
    return run


def _scheme(cfg: Config) -> macs.MacScheme | None:
    """The fabricated-MAC scheme, None if it cannot be built (the table rule reports why)."""
    try:
        return cfg.mac_scheme()
    except macs.MacError:
        return None


def balancer_identities_unique(cfg: Config) -> Iterator[FieldError]:
    """Balancer switches differ in datapath id, name, MAC and address."""
    balancers = [b for _, b in cfg.all_balancers()]  # only the list form (balancers:) can hold two
    for key, name in (("dpid", "datapath id"), ("name", "name"), ("mac", "MAC")):
        yield from duplicates([getattr(b, key) for b in balancers], f"balancers[{{i}}].{key}",
                              f"duplicate balancer {name} {{value}} (first at balancers[{{first}}])")
    yield from duplicates([b.address.ip for b in balancers], "balancers[{i}].address",
                          "duplicate balancer address {value}")


def balancer_macs_unicast(cfg: Config) -> Iterator[FieldError]:
    """A balancer's own MAC is unicast."""
    for path, bal in cfg.all_balancers():
        if macs.is_multicast(macs.parse_mac(bal.mac)):
            yield FieldError(f"{path}.mac", f"{bal.mac} is a multicast MAC; the balancer needs a unicast one")


def gateways_unique(cfg: Config) -> Iterator[FieldError]:
    """Gateways differ in address and name."""
    yield from duplicates([g.ip for g in cfg.gateways], "gateways[{i}].ip",
                          "duplicate gateway address {value} (first at gateways[{first}])")
    yield from duplicates([g.name for g in cfg.gateways], "gateways[{i}].name",
                          "duplicate gateway name {value!r} (first at gateways[{first}])")


def gateway_on_link(cfg: Config, path: str, gw: GatewayModel) -> Iterator[FieldError]:
    """A gateway is a next hop on every balancer's subnet, and not the balancer itself."""
    for bpath, bal in cfg.all_balancers():
        if gw.ip not in bal.address.network:
            yield FieldError(f"{path}.ip", f"{gw.ip} is not in {bpath}'s subnet {bal.address.network}; "
                                           "a next hop must be on-link")
        if gw.ip == bal.address.ip:
            yield FieldError(f"{path}.ip", f"{gw.ip} is {bpath}'s own address")


def routes_unique(cfg: Config) -> Iterator[FieldError]:
    """No two routes share a destination."""
    yield from duplicates([r.dst for r in cfg.routes], "routes[{i}].dst",
                          "duplicate route to {value} (first at routes[{first}])")


def route_via_known_gateway(cfg: Config, path: str, route: RouteModel) -> Iterator[FieldError]:
    """A route reaches its backends through a configured gateway."""
    names = {g.name for g in cfg.gateways}
    if route.via not in names:
        yield FieldError(f"{path}.via", f"no gateway named {route.via!r} (have: {', '.join(sorted(names))})")


def route_off_balancer_subnets(cfg: Config, path: str, route: RouteModel) -> Iterator[FieldError]:
    """A route leads away from the balancers' own subnets."""
    for bpath, bal in cfg.all_balancers():
        if route.dst.overlaps(bal.address.network):
            yield FieldError(f"{path}.dst", f"{route.dst} overlaps {bpath}'s own subnet {bal.address.network}")


def mac_table_one_to_one(cfg: Config) -> Iterator[FieldError]:
    """The fabricated-MAC scheme can be built: a MAC table maps IPs to MACs one to one."""
    try:
        cfg.mac_scheme()
    except macs.MacError as exc:
        yield FieldError("fabricated_mac.table", str(exc))


def computed_macs_unicast_and_distinct(cfg: Config) -> Iterator[FieldError]:
    """Computed MACs (tag and routes) are unicast and none is a balancer's own MAC."""
    scheme = _scheme(cfg)
    if not isinstance(scheme, macs.ComputedScheme):
        return
    layout = scheme.layout
    if not layout.first_octet_from_ip and macs.is_multicast(scheme.tag_bits):
        yield FieldError("fabricated_mac.tag", f"tag {scheme.tag_text} puts the multicast bit in the first "
                                               f"octet under layout {layout.name}")
    for i, route in enumerate(cfg.routes):
        value, mask = scheme.network_match(route.dst)
        if layout.first_octet_from_ip and route.dst.prefixlen < 8:
            yield FieldError(f"routes[{i}].dst", f"{route.dst} is wider than /8: under layout "
                                                 f"{layout.name} some of its addresses give multicast MACs")
        elif layout.first_octet_from_ip and macs.is_multicast(value):
            yield FieldError(f"routes[{i}].dst", f"{route.dst} starts with an odd octet: under layout "
                                                 f"{layout.name} its fabricated MACs are multicast")
        for path, bal in cfg.all_balancers():
            if macs.parse_mac(bal.mac) & mask == value:
                yield FieldError(f"{path}.mac", f"{bal.mac} falls in the fabricated MAC range of routes[{i}] "
                                                f"({route.dst}); frames to the balancer would be translated")


def table_macs_unicast_and_distinct(cfg: Config) -> Iterator[FieldError]:
    """A MAC table's MACs are unicast and none is a balancer's own MAC."""
    scheme = _scheme(cfg)
    if not isinstance(scheme, macs.TableScheme):
        return
    for ip, mac in scheme.by_ip.items():
        if macs.is_multicast(mac):
            yield FieldError(f"fabricated_mac.table.{ip}", f"{macs.format_mac(mac)} is a multicast MAC")
        for path, bal in cfg.all_balancers():
            if mac == macs.parse_mac(bal.mac):
                yield FieldError(f"fabricated_mac.table.{ip}", f"{macs.format_mac(mac)} is {path}'s own MAC")


def vips_unique_within_cookie_limits(cfg: Config) -> Iterator[FieldError]:
    """VIPs fit the flow cookie's VIP ids and differ in address:port/protocol and name."""
    if len(cfg.vips) > MAX_VIP_ID:
        yield FieldError("vips", f"{len(cfg.vips)} VIPs: at most {MAX_VIP_ID} fit the flow cookies")
    yield from duplicates([(v.ip, v.port, v.protocol) for v in cfg.vips], "vips[{i}]",
                          "duplicate VIP {value[0]}:{value[1]}/{value[2]} (first at vips[{first}])")
    yield from duplicates([v.name for v in cfg.vips], "vips[{i}].name",
                          "duplicate VIP name {value!r} (first at vips[{first}])")


def vip_address_free(cfg: Config, path: str, vip: VipModel) -> Iterator[FieldError]:
    """A VIP is neither a balancer's address nor inside a backend route."""
    for bpath, bal in cfg.all_balancers():
        if vip.ip == bal.address.ip:
            yield FieldError(f"{path}.ip", f"{vip.ip} is {bpath}'s own address")
    if any(vip.ip in r.dst for r in cfg.routes):
        yield FieldError(f"{path}.ip", f"VIP {vip.ip} lies inside a backend route; "
                                       "it would be translated as a backend")


def scheduler_known(cfg: Config, path: str, vip: VipModel) -> Iterator[FieldError]:
    """A VIP's scheduler is a registered one."""
    names = registry.names()
    if vip.scheduler not in names:
        yield FieldError(f"{path}.scheduler", f"unknown scheduler {vip.scheduler!r} (known: {', '.join(names)})")


def selection_compatible(cfg: Config, path: str, vip: VipModel) -> Iterator[FieldError]:
    """Selection in the switch goes with scheduler mh, a five-tuple hash and no external director."""
    if vip.selection != "switch":
        return
    if vip.scheduler != "mh":
        yield FieldError(f"{path}.selection", "selection: switch picks by a consistent hash in the switch (scheduler "
                                              f"mh); scheduler {vip.scheduler!r} needs selection: controller")
    if "hash" in vip.model_fields_set and vip.hash != "five_tuple":
        yield FieldError(f"{path}.hash", f"selection: switch hashes the five-tuple (OVS dp_hash); hash: {vip.hash} "
                                         "needs selection: controller")
    if vip.external_director:
        yield FieldError(f"{path}.selection", "an external director's VIP is scheduled by the director, not the switch")


def maglev_table_prime(cfg: Config, path: str, vip: VipModel) -> Iterator[FieldError]:
    """Scheduler mh has a prime table size."""
    if vip.scheduler == "mh" and not is_prime(vip.table_size):
        yield FieldError(f"{path}.table_size", f"{vip.table_size} is not prime; Maglev needs a prime table size "
                                               "(e.g. 65537)")


def backends_unique(cfg: Config, path: str, vip: VipModel) -> Iterator[FieldError]:
    """A VIP lists each backend once."""
    yield from duplicates([b.ip for b in vip.backends], path + ".backends[{i}].ip",
                          "duplicate backend {value} (first at backends[{first}])")


def vip_takes_connections(cfg: Config, path: str, vip: VipModel) -> Iterator[FieldError]:
    """A VIP has a backend that is up with a weight above 0."""
    if all(b.admin_weight == 0 for b in vip.backends):
        yield FieldError(f"{path}.backends", "every backend is drained, down or of weight 0: the VIP could take no connection")


def health_checks_usable(cfg: Config, path: str, vip: VipModel) -> Iterator[FieldError]:
    """A health check probes over the protocol it names (another protocol than the VIP's needs
    its own port), its merge with a backend's own block holds, and a director's VIP has none."""
    if vip.external_director and (vip.health or any(b.health for b in vip.backends)):
        yield FieldError(f"{path}.health", "an external director's VIP is scheduled, and checked, by the director")
        return
    # the VIP's own block is reported once, at the first backend that uses it as it is
    first_plain = next((j for j, b in enumerate(vip.backends) if b.health is None), None)
    for j, backend in enumerate(vip.backends):
        where = f"{path}.backends[{j}].health" if backend.health else f"{path}.health"
        try:
            check = vip.health_of(backend)
        except pydantic.ValidationError as exc:
            yield FieldError(where, "with the VIP's check: " + "; ".join(
                e["msg"].removeprefix("Value error, ") for e in exc.errors()))
            continue
        if check is None or check.port is not None or check.type == "icmp":
            continue
        over = "udp" if check.type == "udp" else "tcp"
        if over != vip.protocol and (backend.health or j == first_plain):
            yield FieldError(where, f"a {check.type} check of a {vip.protocol} VIP needs its own port (health.port)")


def backends_routed_with_usable_macs(cfg: Config) -> Iterator[FieldError]:
    """Each backend is reached by a route, and its fabricated MAC exists, is unicast and is no
    balancer's own MAC. What backends share is worked out once: per backend, it took a second."""
    scheme, route_for = _scheme(cfg), cfg.route_finder()
    balancer_macs = {macs.parse_mac(bal.mac): bpath for bpath, bal in cfg.all_balancers()}
    for i, vip in enumerate(cfg.vips):
        for j, backend in enumerate(vip.backends):
            path = f"vips[{i}].backends[{j}].ip"
            if route_for(backend.ip) is None:
                yield FieldError(path, f"backend {backend.ip} is reached by no route (routes: "
                                       f"{', '.join(str(r.dst) for r in cfg.routes)})")
            if scheme is None:
                continue
            try:
                fab = scheme.encode(backend.ip)
            except macs.MacError as exc:
                yield FieldError(path, f"backend {backend.ip}: {exc}")
                continue
            if macs.is_multicast(fab):
                yield FieldError(path, f"backend {backend.ip} would get fabricated MAC {macs.format_mac(fab)}, "
                                       "a multicast address")
            if fab in balancer_macs:
                yield FieldError(path, f"backend {backend.ip}'s fabricated MAC {macs.format_mac(fab)} "
                                       f"collides with {balancer_macs[fab]}.mac")


def edges_list_backends_once(cfg: Config) -> Iterator[FieldError]:
    """Edge switches list only backends, each behind one edge."""
    backend_ips = {int(b.ip) for v in cfg.vips for b in v.backends}
    edge_of: dict[int, int] = {}
    for i, edge in enumerate(cfg.edges):
        for j, ip in enumerate(edge.backends):
            if (address := int(ip)) in edge_of:
                yield FieldError(f"edges[{i}].backends[{j}]", f"{ip} is already on edges[{edge_of[address]}]; "
                                                              "a backend sits behind one edge switch")
            edge_of.setdefault(address, i)
            if address not in backend_ips:
                yield FieldError(f"edges[{i}].backends[{j}]", f"{ip} is not a backend of any VIP")


def edges_unique(cfg: Config) -> Iterator[FieldError]:
    """Edge switches differ in name."""
    yield from duplicates([e.name for e in cfg.edges], "edges[{i}].name", "duplicate edge name {value!r}")


def edges_cover_backends(cfg: Config) -> Iterator[FieldError]:
    """Every backend is behind an edge switch, which gives its replies the VIP as source."""
    on_edge = {int(ip) for e in cfg.edges for ip in e.backends}
    for i, vip in enumerate(cfg.vips):
        for j, backend in enumerate(vip.backends):
            if int(backend.ip) not in on_edge:
                yield FieldError(f"vips[{i}].backends[{j}].ip", f"backend {backend.ip} is on no edge switch "
                                 "(edges[*].backends): its replies would not get src=VIP")


def source_nat_unambiguous(cfg: Config) -> Iterator[FieldError]:
    """Source-NAT keys (backend, protocol, service port) each belong to one VIP."""
    owner: dict[tuple[int, str, int], int] = {}
    for i, vip in enumerate(cfg.vips):
        for j, backend in enumerate(vip.backends):
            key = (int(backend.ip), vip.protocol, vip.port)
            if key in owner and owner[key] != i:
                yield FieldError(f"vips[{i}].backends[{j}].ip",
                                 f"backend {backend.ip} already serves {vip.protocol}/{vip.port} for "
                                 f"vips[{owner[key]}]; its replies could not be given one source VIP")
            owner.setdefault(key, i)


def persistence_usable(cfg: Config, path: str, vip: VipModel) -> Iterator[FieldError]:
    """Persistence needs a VIP the balancer schedules."""
    if vip.persistence is not None and vip.external_director:
        yield FieldError(f"{path}.persistence", "an external director's VIP is scheduled by the director: "
                                                "persistence is the director's to keep")


def persistence_groups_agree(cfg: Config) -> Iterator[FieldError]:
    """VIPs sharing a persistence group have one backend set, one timeout and one netmask (a
    client's backend must be a backend of each)."""
    first: dict[str, int] = {}
    for i, vip in enumerate(cfg.vips):
        if vip.persistence is None or vip.persistence.group is None:
            continue
        if (j := first.setdefault(vip.persistence.group, i)) == i:
            continue
        lead = cfg.vips[j]
        if {b.ip for b in vip.backends} != {b.ip for b in lead.backends}:
            yield FieldError(f"vips[{i}].persistence.group", f"group {vip.persistence.group!r}: its VIPs need the "
                                                              f"same backends (vips[{j}] has others)")
        for key in ("timeout", "netmask"):
            if getattr(vip.persistence, key) != getattr(lead.persistence, key):
                yield FieldError(f"vips[{i}].persistence.{key}",
                                 f"group {vip.persistence.group!r}: {getattr(vip.persistence, key)}, but vips[{j}] "
                                 f"has {getattr(lead.persistence, key)}: one group, one {key}")


RULES: tuple[Rule, ...] = (  # in the order their errors are reported
    balancer_identities_unique, balancer_macs_unicast,
    gateways_unique, each("gateways", gateway_on_link),
    routes_unique, each("routes", route_via_known_gateway, route_off_balancer_subnets),
    mac_table_one_to_one, computed_macs_unicast_and_distinct, table_macs_unicast_and_distinct,
    vips_unique_within_cookie_limits,
    each("vips", vip_address_free, scheduler_known, selection_compatible, maglev_table_prime, backends_unique,
         vip_takes_connections, health_checks_usable, persistence_usable),
    backends_routed_with_usable_macs,
    persistence_groups_agree,
    edges_list_backends_once, edges_unique, edges_cover_backends,
    source_nat_unambiguous,
)


def semantic_errors(cfg: Config, rules: Sequence[Rule] = RULES) -> list[FieldError]:
    """Every error the rules find, rule by rule in order."""
    return [error for rule in rules for error in rule(cfg)]
