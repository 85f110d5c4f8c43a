import copy
from pathlib import Path

import pytest
import yaml

from lbapp.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "topologies" / "worked_example.yaml"


def base():
    return yaml.safe_load(EXAMPLE.read_text())


def test_worked_example_is_valid():
    cfg = load_config(EXAMPLE)
    assert cfg.balancer.dpid == 1
    assert str(cfg.vips[0].ip) == "117.78.6.19"
    assert [str(b.ip) for b in cfg.vips[0].backends] == ["10.11.12.11", "10.11.12.12", "10.11.12.13"]
    assert cfg.route_for(cfg.vips[0].backends[2].ip).via == "router"


def _set(doc, path, value):
    *parents, last = path
    for part in parents:
        doc = doc[part]
    if value is _DELETE:
        del doc[last]
    else:
        doc[last] = value


_DELETE = object()

# (description, [(path, new value)...], expected field path, expected message fragment)
BAD = [
    ("bad balancer address", [(("balancer", "address"), "10.0.0.300/24")], "balancer.address", "IPv4"),
    ("bad balancer MAC", [(("balancer", "mac"), "02:00:00:00:02")], "balancer.mac", "not a MAC"),
    ("multicast balancer MAC", [(("balancer", "mac"), "03:00:00:00:00:02")], "balancer.mac", "multicast"),
    ("balancer MAC in fabricated range", [(("balancer", "mac"), "aa:bb:0a:0b:0c:01")], "balancer.mac",
     "fabricated MAC range"),
    ("bad dpid", [(("balancer", "dpid"), "xyz")], "balancer.dpid", "not a datapath id"),
    ("missing gateways", [(("gateways",), _DELETE)], "gateways", "Field required"),
    ("gateway off-link", [(("gateways", 0, "ip"), "10.1.0.1")], "gateways[0].ip", "not in balancer's subnet"),
    ("duplicate gateway address", [(("gateways",), [{"name": "a", "ip": "10.0.0.1"}, {"name": "b", "ip": "10.0.0.1"}])],
     "gateways[1].ip", "duplicate gateway address"),
    ("route via unknown gateway", [(("routes", 0, "via"), "nobody")], "routes[0].via", "no gateway named 'nobody'"),
    ("route overlapping balancer subnet", [(("routes", 0, "dst"), "10.0.0.0/16")], "routes[0].dst",
     "overlaps balancer's own subnet"),
    ("duplicate VIP", [(("vips", 1), "COPY0")], "vips[1]", "duplicate VIP 117.78.6.19:80/tcp"),
    ("unknown scheduler", [(("vips", 0, "scheduler"), "fancy")], "vips[0].scheduler", "unknown scheduler 'fancy'"),
    ("backend without route", [(("vips", 0, "backends", 0, "ip"), "172.16.0.1")], "vips[0].backends[0].ip",
     "reached by no route"),
    ("duplicate backend", [(("vips", 0, "backends", 1, "ip"), "10.11.12.11")], "vips[0].backends[1].ip",
     "duplicate backend"),
    ("bad port", [(("vips", 0, "port"), 70000)], "vips[0].port", "less than or equal to 65535"),
    ("bad protocol", [(("vips", 0, "protocol"), "sctp")], "vips[0].protocol", "'tcp' or 'udp'"),
    ("negative weight", [(("vips", 0, "backends", 0, "weight"), -1)], "vips[0].backends[0].weight",
     "greater than or equal to 0"),
    ("all drained", [(("vips", 0, "backends"), [{"ip": "10.11.12.11", "weight": 0}])], "vips[0].backends",
     "every backend is drained, down or of weight 0"),
    ("maglev size not prime", [(("vips", 0, "scheduler"), "mh"), (("vips", 0, "table_size"), 65536)],
     "vips[0].table_size", "not prime"),
    ("bad hash fields", [(("vips", 0, "hash"), "dst_port")], "vips[0].hash", "'src_ip' or 'five_tuple'"),
    ("bad feedback", [(("feedback",), {"interval": 0})], "feedback.interval", "greater than 0"),
    ("switch selection with rr", [(("vips", 0, "selection"), "switch")], "vips[0].selection",
     "scheduler 'rr' needs selection: controller"),
    ("switch selection hashing the source", [(("vips", 0, "selection"), "switch"), (("vips", 0, "scheduler"), "mh"),
                                             (("vips", 0, "hash"), "src_ip")], "vips[0].hash",
     "hash: src_ip needs selection: controller"),
    ("bad selection", [(("vips", 0, "selection"), "kernel")], "vips[0].selection", "'controller' or 'switch'"),
    ("unknown key", [(("vips", 0, "prot"), "tcp")], "vips[0].prot", "Extra inputs"),
    ("multicast fabricated MAC names the backend",
     [(("fabricated_mac", "layout"), "suffix"), (("routes", 0, "dst"), "11.11.12.0/24"),
      (("vips", 0, "backends"), [{"ip": "11.11.12.13"}]), (("edges", 0, "backends"), ["11.11.12.13"])],
     "vips[0].backends[0].ip", "backend 11.11.12.13 would get fabricated MAC 0b:0b:0c:0d:aa:bb, a multicast"),
    ("route wider than /8 under suffix layout", [(("fabricated_mac", "layout"), "suffix"),
                                                 (("routes", 0, "dst"), "10.0.0.0/7")], "routes[0].dst",
     "wider than /8"),
    ("multicast tag", [(("fabricated_mac", "tag"), "ab:bb")], "fabricated_mac.tag", "multicast bit"),
    ("bad tag", [(("fabricated_mac", "tag"), "aabb")], "fabricated_mac.tag", "two hex octets"),
    ("table scheme without entry", [(("fabricated_mac", "scheme"), "table"),
                                    (("fabricated_mac", "table"), {"10.11.12.11": "02:00:00:00:01:0b"})],
     "vips[0].backends[1].ip", "no entry in the MAC table"),
    ("table scheme collision", [(("fabricated_mac", "scheme"), "table"),
                                (("fabricated_mac", "table"), {"10.11.12.11": "02:00:00:00:01:0b",
                                                               "10.11.12.12": "02:00:00:00:01:0b",
                                                               "10.11.12.13": "02:00:00:00:01:0d"})],
     "fabricated_mac.table", "two IPs to one MAC"),
    ("table scheme multicast", [(("fabricated_mac", "scheme"), "table"),
                                (("fabricated_mac", "table"), {"10.11.12.11": "03:00:00:00:01:0b",
                                                               "10.11.12.12": "02:00:00:00:01:0c",
                                                               "10.11.12.13": "02:00:00:00:01:0d"})],
     "fabricated_mac.table.10.11.12.11", "multicast"),
    ("backend on no edge", [(("edges", 0, "backends"), ["10.11.12.11", "10.11.12.12"])],
     "vips[0].backends[2].ip", "on no edge switch"),
    ("edge lists a non-backend", [(("edges", 0, "backends", 0), "10.11.12.99")], "edges[0].backends[0]",
     "not a backend of any VIP"),
    ("ambiguous source NAT", [(("vips", 1), "COPY0_OTHER_IP")], "vips[1].backends[0].ip",
     "already serves tcp/80"),
]


@pytest.mark.parametrize("desc, changes, path, fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_field_and_problem(desc, changes, path, fragment):
    doc = base()
    for where, value in changes:
        if value == "COPY0":
            doc["vips"].append(copy.deepcopy(doc["vips"][0]) | {"name": "again"})
            continue
        if value == "COPY0_OTHER_IP":
            doc["vips"].append(copy.deepcopy(doc["vips"][0]) | {"name": "other", "ip": "117.78.6.20"})
            continue
        _set(doc, where, value)
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    found = [(e.path, e.message) for e in info.value.errors]
    assert any(p == path and fragment in m for p, m in found), found


def test_every_error_is_reported_at_once():
    doc = base()
    doc["vips"][0]["scheduler"] = "fancy"
    doc["routes"][0]["via"] = "nobody"
    doc["balancer"]["mac"] = "03:00:00:00:00:01"
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    paths = {e.path for e in info.value.errors}
    assert {"vips[0].scheduler", "routes[0].via", "balancer.mac"} <= paths


def test_switch_selection_with_maglev_is_valid():
    doc = base()
    doc["vips"][0].update(selection="switch", scheduler="mh")
    assert parse_config(doc).vips[0].selection == "switch"


def test_backend_serving_two_vips_on_different_ports_is_valid():
    doc = base()
    doc["vips"].append(copy.deepcopy(doc["vips"][0]) | {"name": "alt", "ip": "117.78.6.20", "port": 8080})
    cfg = parse_config(doc)
    assert len(cfg.vips) == 2


def test_yaml_syntax_error_gives_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("balancer:\n  dpid: [1\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "nope.yaml")


def two_balancers(doc):
    lb = doc.pop("balancer")
    doc["balancers"] = [lb | {"name": "lb1"}, lb | {"name": "lb2", "dpid": 4, "address": "10.0.0.3/24",
                                                     "mac": "02:00:00:00:00:03"}]
    return doc


def test_several_balancers_are_valid():
    cfg = parse_config(two_balancers(base()))
    assert [b.name for _, b in cfg.all_balancers()] == ["lb1", "lb2"]
    assert cfg.balancer_for(4).mac == "02:00:00:00:00:03"


def test_several_balancers_must_differ():
    doc = two_balancers(base())
    doc["balancers"][1]["dpid"] = 1
    doc["balancers"][1]["mac"] = "02:00:00:00:00:02"
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    paths = {(e.path, e.message.split(" ")[1]) for e in info.value.errors}
    assert {("balancers[1].dpid", "balancer"), ("balancers[1].mac", "balancer")} <= paths


def test_exactly_one_balancer_form():
    doc = base()
    doc["balancers"] = [doc["balancer"]]
    with pytest.raises(ConfigError, match="exactly one of balancer"):
        parse_config(doc)


def test_too_many_vips_for_the_cookie():
    doc = base()
    vip = doc["vips"][0]
    doc["vips"] = [vip | {"name": f"v{i}", "port": 1 + i} for i in range(65535)]
    with pytest.raises(ConfigError, match="at most 65534 fit the flow cookies"):
        parse_config(doc)


@pytest.mark.parametrize("edit, said", [
    # before: PyYAML kept the last, and a second vips: replaced the first without a word
    (lambda t: t + "\nvips: []\n", "line 35: key 'vips' given twice (first on line 19)"),
    (lambda t: t.replace("scheduler: rr", "schedular: rr", 1),
     "vips[0].schedular: Extra inputs are not permitted (did you mean 'scheduler'?)"),
    (lambda t: t.replace('mac: "02:00:00:00:00:02"', "mac: 12:34:56:00:00:02"),
     "balancer.mac: an unquoted MAC address made of digits reads as a number in YAML: quote it"),
])
def test_a_first_day_mistake_is_named_with_what_to_do(edit, said):
    from lbapp.config.load import config_from_text

    with pytest.raises(ConfigError) as err:
        config_from_text(edit(EXAMPLE.read_text()))
    assert said in str(err.value)


def test_a_typo_does_not_hide_a_rule_error():
    """Before: a file with a misspelt key and a route via an unknown gateway reported the typo
    only, though check promises every error at once (issue 25)."""
    from lbapp.config.load import config_from_text

    text = EXAMPLE.read_text().replace("scheduler: rr", "schedular: rr", 1).replace("via: router", "via: nowhere")
    with pytest.raises(ConfigError) as err:
        config_from_text(text)
    said = str(err.value)
    assert "vips[0].schedular: Extra inputs are not permitted" in said and "nowhere" in said, said
