"""Each semantic rule on its own: a valid config, one change, the exact message the rule gives."""
import copy
from pathlib import Path

import pytest
import yaml

from lbapp.config import Config, FieldError
from lbapp.config import rules
from lbapp.schedulers import registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())


def doc() -> dict:
    return copy.deepcopy(EXAMPLE)


def model(d: dict) -> Config:
    """Shapes checked, rules not run: the rule under test sees the bad config."""
    return Config.model_validate(d)


def two_balancers(d: dict, **second) -> dict:
    lb = d.pop("balancer")
    d["balancers"] = [lb | {"name": "lb1"}, lb | {"name": "lb2", "dpid": 4, "address": "10.0.0.3/24",
                                                 "mac": "02:00:00:00:00:03"} | second]
    return d


def found(errors) -> list[tuple[str, str]]:
    return [(e.path, e.message) for e in errors]


def vip_rule(rule, cfg: Config, i: int = 0) -> list[tuple[str, str]]:
    return found(rule(cfg, f"vips[{i}]", cfg.vips[i]))


def backend_rule(rule, cfg: Config, i: int = 0, j: int = 0) -> list[tuple[str, str]]:
    return found(rule(cfg, f"vips[{i}].backends[{j}]", cfg.vips[i].backends[j]))


@pytest.mark.parametrize("path", sorted((ROOT / "topologies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_topology_passes_every_rule(path):
    assert rules.semantic_errors(model(yaml.safe_load(path.read_text()))) == []


def test_duplicates_reports_each_repeat_after_the_first_value_by_value():
    errors = rules.duplicates(["a", "b", "b", "a", "c", "a"], "x[{i}]", "{value!r} again (first at x[{first}])")
    assert found(errors) == [("x[3]", "'a' again (first at x[0])"), ("x[5]", "'a' again (first at x[0])"),
                             ("x[2]", "'b' again (first at x[1])")]


def test_each_runs_item_rules_item_by_item():
    def one(cfg, path, item):
        yield FieldError(path, "one")

    def two(cfg, path, item):
        yield FieldError(path, "two")

    d = doc()
    d["vips"].append(d["vips"][0] | {"name": "other"})
    errors = rules.each("vips", one, rules.each("backends", two))(model(d))
    paths = [f"{e.path} {e.message}" for e in errors]
    assert paths[:5] == ["vips[0] one", "vips[0].backends[0] two", "vips[0].backends[1] two",
                         "vips[0].backends[2] two", "vips[1] one"]


def test_balancer_identities_unique():
    cfg = model(two_balancers(doc(), dpid=1, name="lb1", mac="02:00:00:00:00:02", address="10.0.0.2/24"))
    assert found(rules.balancer_identities_unique(cfg)) == [
        ("balancers[1].dpid", "duplicate balancer datapath id 1 (first at balancers[0])"),
        ("balancers[1].name", "duplicate balancer name lb1 (first at balancers[0])"),
        ("balancers[1].mac", "duplicate balancer MAC 02:00:00:00:00:02 (first at balancers[0])"),
        ("balancers[1].address", "duplicate balancer address 10.0.0.2"),
    ]


def test_balancer_macs_unicast():
    d = doc()
    d["balancer"]["mac"] = "03:00:00:00:00:02"
    assert found(rules.balancer_macs_unicast(model(d))) == [
        ("balancer.mac", "03:00:00:00:00:02 is a multicast MAC; the balancer needs a unicast one")]


def test_gateways_unique():
    d = doc()
    d["gateways"].append({"name": "router", "ip": "10.0.0.1"})
    assert found(rules.gateways_unique(model(d))) == [
        ("gateways[1].ip", "duplicate gateway address 10.0.0.1 (first at gateways[0])"),
        ("gateways[1].name", "duplicate gateway name 'router' (first at gateways[0])"),
    ]


def test_gateway_on_link():
    d = doc()
    d["gateways"] = [{"name": "router", "ip": "10.1.0.1"}, {"name": "self", "ip": "10.0.0.2"}]
    errors = rules.each("gateways", rules.gateway_on_link)(model(d))
    assert found(errors) == [
        ("gateways[0].ip", "10.1.0.1 is not in balancer's subnet 10.0.0.0/24; a next hop must be on-link"),
        ("gateways[1].ip", "10.0.0.2 is balancer's own address"),
    ]


def test_routes_unique():
    d = doc()
    d["routes"].append({"dst": "10.11.12.0/24", "via": "router"})
    assert found(rules.routes_unique(model(d))) == [
        ("routes[1].dst", "duplicate route to 10.11.12.0/24 (first at routes[0])")]


def test_route_via_known_gateway():
    d = doc()
    d["routes"][0]["via"] = "nobody"
    cfg = model(d)
    assert found(rules.route_via_known_gateway(cfg, "routes[0]", cfg.routes[0])) == [
        ("routes[0].via", "no gateway named 'nobody' (have: router)")]


def test_route_off_balancer_subnets():
    d = doc()
    d["routes"][0]["dst"] = "10.0.0.0/16"
    cfg = model(d)
    assert found(rules.route_off_balancer_subnets(cfg, "routes[0]", cfg.routes[0])) == [
        ("routes[0].dst", "10.0.0.0/16 overlaps balancer's own subnet 10.0.0.0/24")]


def table(d: dict, entries: dict) -> dict:
    d["fabricated_mac"] = {"scheme": "table", "table": entries}
    return d


def test_mac_table_one_to_one():
    cfg = model(table(doc(), {"10.11.12.11": "02:00:00:00:01:0b", "10.11.12.12": "02:00:00:00:01:0b"}))
    assert found(rules.mac_table_one_to_one(cfg)) == [
        ("fabricated_mac.table", "the MAC table maps two IPs to one MAC")]
    assert found(rules.table_macs_unicast_and_distinct(cfg)) == []  # no table to look into


def test_computed_macs_unicast_and_distinct():
    d = doc()
    d["fabricated_mac"] = {"layout": "suffix", "tag": "aa:bb"}
    d["routes"] = [{"dst": "10.0.0.0/7", "via": "router"}, {"dst": "11.11.12.0/24", "via": "router"}]
    assert found(rules.computed_macs_unicast_and_distinct(model(d))) == [
        ("routes[0].dst", "10.0.0.0/7 is wider than /8: under layout suffix some of its addresses give "
                          "multicast MACs"),
        ("routes[1].dst", "11.11.12.0/24 starts with an odd octet: under layout suffix its fabricated MACs "
                          "are multicast"),
    ]
    d = doc()
    d["fabricated_mac"]["tag"] = "ab:bb"
    d["balancer"]["mac"] = "ab:bb:0a:0b:0c:01"
    assert found(rules.computed_macs_unicast_and_distinct(model(d))) == [
        ("fabricated_mac.tag", "tag ab:bb puts the multicast bit in the first octet under layout prefix"),
        ("balancer.mac", "ab:bb:0a:0b:0c:01 falls in the fabricated MAC range of routes[0] (10.11.12.0/24); "
                         "frames to the balancer would be translated"),
    ]


def test_table_macs_unicast_and_distinct():
    cfg = model(table(doc(), {"10.11.12.11": "03:00:00:00:01:0b", "10.11.12.12": "02:00:00:00:00:02"}))
    assert found(rules.table_macs_unicast_and_distinct(cfg)) == [
        ("fabricated_mac.table.10.11.12.11", "03:00:00:00:01:0b is a multicast MAC"),
        ("fabricated_mac.table.10.11.12.12", "02:00:00:00:00:02 is balancer's own MAC"),
    ]
    assert found(rules.computed_macs_unicast_and_distinct(cfg)) == []


def test_vips_unique_within_cookie_limits():
    d = doc()
    d["vips"].append(copy.deepcopy(d["vips"][0]))
    assert found(rules.vips_unique_within_cookie_limits(model(d))) == [
        ("vips[1]", "duplicate VIP 117.78.6.19:80/tcp (first at vips[0])"),
        ("vips[1].name", "duplicate VIP name 'web' (first at vips[0])"),
    ]
    d["vips"] = [d["vips"][0] | {"name": f"v{i}", "port": 1 + i} for i in range(65535)]
    assert found(rules.vips_unique_within_cookie_limits(model(d))) == [
        ("vips", "65535 VIPs: at most 65534 fit the flow cookies")]


def test_vip_address_free():
    d = doc()
    d["vips"][0]["ip"] = "10.0.0.2"
    assert vip_rule(rules.vip_address_free, model(d)) == [("vips[0].ip", "10.0.0.2 is balancer's own address")]
    d["vips"][0]["ip"] = "10.11.12.200"
    assert vip_rule(rules.vip_address_free, model(d)) == [
        ("vips[0].ip", "VIP 10.11.12.200 lies inside a backend route; it would be translated as a backend")]


def test_scheduler_known():
    d = doc()
    d["vips"][0]["scheduler"] = "fancy"
    known = ", ".join(registry.names())
    assert vip_rule(rules.scheduler_known, model(d)) == [
        ("vips[0].scheduler", f"unknown scheduler 'fancy' (known: {known})")]
    assert "mh" in known


def test_selection_compatible():
    d = doc()
    d["vips"][0].update(selection="switch", hash="src_ip", external_director=True)
    assert vip_rule(rules.selection_compatible, model(d)) == [
        ("vips[0].selection", "selection: switch picks by a consistent hash in the switch (scheduler mh); "
                              "scheduler 'rr' needs selection: controller"),
        ("vips[0].hash", "selection: switch hashes the five-tuple (OVS dp_hash); hash: src_ip needs selection: "
                         "controller"),
        ("vips[0].selection", "an external director's VIP is scheduled by the director, not the switch"),
    ]
    d["vips"][0].update(scheduler="mh", hash="five_tuple", external_director=False)
    assert vip_rule(rules.selection_compatible, model(d)) == []


def test_maglev_table_prime():
    d = doc()
    d["vips"][0].update(scheduler="mh", table_size=65536)
    assert vip_rule(rules.maglev_table_prime, model(d)) == [
        ("vips[0].table_size", "65536 is not prime; Maglev needs a prime table size (e.g. 65537)")]


def test_backends_unique():
    d = doc()
    d["vips"][0]["backends"][2]["ip"] = "10.11.12.11"
    assert vip_rule(rules.backends_unique, model(d)) == [
        ("vips[0].backends[2].ip", "duplicate backend 10.11.12.11 (first at backends[0])")]


def test_vip_takes_connections():
    d = doc()
    d["vips"][0]["backends"] = [{"ip": "10.11.12.11", "weight": 0}, {"ip": "10.11.12.12", "down": True}]
    assert vip_rule(rules.vip_takes_connections, model(d)) == [
        ("vips[0].backends", "every backend is drained, down or of weight 0: the VIP could take no connection")]


def test_backend_routed():
    d = doc()
    d["vips"][0]["backends"][0]["ip"] = "172.16.0.1"
    assert found(rules.backends_routed_with_usable_macs(model(d))) == [
        ("vips[0].backends[0].ip", "backend 172.16.0.1 is reached by no route (routes: 10.11.12.0/24)")]


def test_backend_macs_unicast_and_distinct():
    d = doc()
    d["fabricated_mac"]["layout"] = "suffix"
    d["vips"][0]["backends"][0]["ip"] = "11.11.12.13"
    d["routes"].append({"dst": "11.11.12.0/24", "via": d["routes"][0]["via"]})
    assert found(rules.backends_routed_with_usable_macs(model(d))) == [
        ("vips[0].backends[0].ip", "backend 11.11.12.13 would get fabricated MAC 0b:0b:0c:0d:aa:bb, "
                                   "a multicast address")]
    cfg = model(table(doc(), {"10.11.12.11": "02:00:00:00:00:02"}))
    assert found(rules.backends_routed_with_usable_macs(cfg))[:2] == [
        ("vips[0].backends[0].ip", "backend 10.11.12.11's fabricated MAC 02:00:00:00:00:02 collides with "
                                   "balancer.mac"),
        ("vips[0].backends[1].ip", "backend 10.11.12.12: 10.11.12.12 has no entry in the MAC table")]


def test_edges_list_backends_once():
    d = doc()
    d["edges"].append({"name": "other", "dpid": 3, "backends": ["10.11.12.13", "10.11.12.99"]})
    assert found(rules.edges_list_backends_once(model(d))) == [
        ("edges[1].backends[0]", "10.11.12.13 is already on edges[0]; a backend sits behind one edge switch"),
        ("edges[1].backends[1]", "10.11.12.99 is not a backend of any VIP"),
    ]


def test_edges_unique():
    d = doc()
    d["edges"].append({"name": "edge", "dpid": 3, "backends": ["10.11.12.13"]})
    assert found(rules.edges_unique(model(d))) == [("edges[1].name", "duplicate edge name 'edge'")]


def test_edges_cover_backends():
    d = doc()
    d["edges"][0]["backends"] = ["10.11.12.11", "10.11.12.12"]
    assert found(rules.edges_cover_backends(model(d))) == [
        ("vips[0].backends[2].ip", "backend 10.11.12.13 is on no edge switch (edges[*].backends): its replies "
                                   "would not get src=VIP")]


def test_source_nat_unambiguous():
    d = doc()
    d["vips"].append(copy.deepcopy(d["vips"][0]) | {"name": "other", "ip": "117.78.6.20"})
    assert found(rules.source_nat_unambiguous(model(d)))[0] == (
        "vips[1].backends[0].ip", "backend 10.11.12.11 already serves tcp/80 for vips[0]; its replies could not "
                                  "be given one source VIP")


def test_persistence_usable():
    d = doc()
    d["vips"][0] |= {"persistence": {"timeout": 300}, "external_director": True}
    assert vip_rule(rules.persistence_usable, model(d)) == [
        ("vips[0].persistence", "an external director's VIP is scheduled by the director: persistence is the "
                                "director's to keep")]


def test_persistence_groups_agree():
    d = doc()
    d["vips"][0]["persistence"] = {"timeout": 300, "netmask": 24, "group": "shop"}
    d["vips"].append(copy.deepcopy(d["vips"][0]) | {"name": "tls", "port": 443,
                                                    "persistence": {"timeout": 600, "netmask": 24, "group": "shop"}})
    assert found(rules.persistence_groups_agree(model(d))) == [
        ("vips[1].persistence.timeout", "group 'shop': 600, but vips[0] has 300: one group, one timeout")]
    d["vips"][1]["persistence"]["timeout"] = 300
    d["vips"][1]["backends"] = d["vips"][1]["backends"][:2]
    assert found(rules.persistence_groups_agree(model(d))) == [
        ("vips[1].persistence.group", "group 'shop': its VIPs need the same backends (vips[0] has others)")]
    d["vips"][1]["backends"] = d["vips"][0]["backends"]
    assert found(rules.persistence_groups_agree(model(d))) == []


def test_persistence_shapes_are_checked_with_their_field_path():
    import pydantic

    d = doc()
    d["vips"][0]["persistence"] = {"timeout": 0, "netmask": 33, "group": "a b", "sticky": True}
    with pytest.raises(pydantic.ValidationError) as exc:
        model(d)
    assert sorted(".".join(map(str, e["loc"])) for e in exc.value.errors()) == [
        "vips.0.persistence.group", "vips.0.persistence.netmask", "vips.0.persistence.sticky",
        "vips.0.persistence.timeout"]


def test_rules_report_in_order():
    d = doc()
    d["edges"][0]["backends"] = ["10.11.12.11", "10.11.12.12"]
    d["vips"][0]["scheduler"] = "fancy"
    d["routes"][0]["via"] = "nobody"
    d["balancer"]["mac"] = "03:00:00:00:00:02"
    paths = [e.path for e in rules.semantic_errors(model(d))]
    assert paths == ["balancer.mac", "routes[0].via", "vips[0].scheduler", "vips[0].backends[2].ip"]
