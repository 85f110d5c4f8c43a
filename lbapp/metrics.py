"""``/metrics`` in the Prometheus text format. The values are read from the controller's state
when a scraper asks, so the per-connection path does no work for them.

The per-backend families (nine samples per backend: 900,000 at 10,000 VIPs of 10 backends) are
written here, each VIP's lines kept and written again only when its readings changed; their
headers, and every other family, come from the official client library (a unit test checks the
whole text against what the library writes for the same readings)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE_LATEST", "Scraper", "BACKEND_FAMILIES", "paged"]

SCRAPE_PAGE = 500  # VIPs per hold of the controller's lock while /metrics reads the state


@dataclass(frozen=True)
class BackendFamily:
    """A per-backend metric family: its value is the reading's ``field``
    (lbapp.snapshot.BackendReading); with ``states``, one sample per state, labelled ``state``,
    1 for the one the field holds."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    field: str
    states: tuple[str, ...] = ()

    @property
    def sample(self) -> str:
        return self.name + ("_total" if self.kind == "counter" else "")

    def library_family(self) -> GaugeMetricFamily | CounterMetricFamily:
        """The same family, empty, as the client library declares it."""
        kind = GaugeMetricFamily if self.kind == "gauge" else CounterMetricFamily
        return kind(self.name, self.help, labels=["vip", "backend"] + (["state"] if self.states else []))

    def samples(self, reading: Any) -> list[tuple[str | None, float]]:
        """(state or None, value) of one backend's reading."""
        value = getattr(reading, self.field)
        return [(state, 1 if value == state else 0) for state in self.states] if self.states else [(None, value)]


BACKEND_FAMILIES = (
    BackendFamily("lbapp_backend_sessions", "gauge", "Live sessions (connections) on a backend", "sessions"),
    BackendFamily("lbapp_backend_connections", "counter", "Connections scheduled to a backend", "connections"),
    BackendFamily("lbapp_backend_up", "gauge", "1 while the backend may take new connections: not set down "
                  "and not found down by its health check", "up"),
    BackendFamily("lbapp_backend_admin_state", "gauge", "1 for the backend's administrative state "
                  "(up, drain or down: the config and runtime changes)", "admin", ("up", "drain", "down")),
    BackendFamily("lbapp_backend_effective_weight", "gauge", "The weight new connections are shared by",
                  "effective_weight"),
    BackendFamily("lbapp_backend_bytes", "counter", "Bytes of clients' traffic sent to a backend "
                  "(ended sessions, and live flows as last read)", "bytes"),
    BackendFamily("lbapp_backend_packets", "counter", "Packets of clients' traffic sent to a backend", "packets"),
)


def _label_value(text: str) -> str:
    """A label value escaped as the text format says (backslash, newline, double quote)."""
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _number(value: int) -> str:
    """A sample's value as the library writes it (Go's float format): small whole numbers
    directly, the rest through the library."""
    return f"{value}.0" if type(value) is int and -1_000_000 < value < 1_000_000 else floatToGoString(value)


def _vip_lines(name: str, readings: list) -> tuple[bytes, ...]:
    """One VIP's sample lines, per family of BACKEND_FAMILIES, as the library writes them
    (labels sorted by name: backend, state, vip)."""
    vip = _label_value(name)
    addresses = [str(r.ip) for r in readings]  # an address needs no escaping
    out = []
    for family in BACKEND_FAMILIES:
        sample, field = family.sample, family.field
        if family.states:
            lines = [f'{sample}{{backend="{ip}",state="{state}",vip="{vip}"}} '
                     f'{"1.0" if getattr(r, field) == state else "0.0"}\n'
                     for ip, r in zip(addresses, readings) for state in family.states]
        else:
            lines = [f'{sample}{{backend="{ip}",vip="{vip}"}} {_number(getattr(r, field))}\n'
                     for ip, r in zip(addresses, readings)]
        out.append("".join(lines).encode())
    return tuple(out)


class Scraper:
    """Writes /metrics from ``readings`` (lbapp.snapshot.backend_readings's pages: offset and limit,
    each read under the controller's lock) and ``state`` (the rest of the snapshot, asked with
    limit 0). Owns the lines of each VIP written at the last scrape, with the readings they
    were written from."""

    def __init__(self, readings: Callable[..., dict[str, Any]], state: Callable[..., dict[str, Any]],
                 page: int | None = None) -> None:
        self.readings, self.page = readings, page or SCRAPE_PAGE
        self.rest = CollectorRegistry(auto_describe=False)
        self.rest.register(SnapshotCollector(lambda: state(offset=0, limit=0)))
        self.kept: dict[str, tuple[list, tuple[bytes, ...]]] = {}
        self.headers = [_header(family) for family in BACKEND_FAMILIES]

    def scrape(self) -> list[bytes]:
        """The text, in pieces to be written one after the other (joining 65 MB at 10,000 VIPs
        would copy it again)."""
        kept, fresh = self.kept, {}
        offset: int | None = 0
        while offset is not None:
            page = self.readings(offset=offset, limit=self.page)
            for name, readings in page["vips"]:
                last = kept.get(name)
                fresh[name] = last if last is not None and last[0] == readings else (readings, _vip_lines(name, readings))
            offset = page["next_offset"]
        self.kept = fresh  # VIPs gone from the config are forgotten with it
        lines = [vip[1] for vip in fresh.values()]
        pieces = []
        for i, header in enumerate(self.headers):
            pieces.append(header)
            pieces += [vip[i] for vip in lines]
        pieces.append(generate_latest(self.rest))
        return pieces


def _header(family: BackendFamily) -> bytes:
    """The family's HELP and TYPE lines, written by the library."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Yields([family.library_family()]))
    return generate_latest(registry)


class _Yields:
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families


class SnapshotCollector:
    """A Prometheus collector of everything but the per-backend families, read from the state
    snapshot (``state``) at each scrape; it keeps no state of its own."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        s = self.state()
        connected = GaugeMetricFamily("lbapp_switch_connected", "1 while the balancer switch is connected",
                                      labels=["switch"])
        age = GaugeMetricFamily("lbapp_next_hop_age_seconds", "Time since the gateway's MAC was last learned",
                                labels=["switch", "gateway"])
        for bal in s["balancers"]:
            connected.add_metric([bal["dpid"]], 1 if bal["connected"] else 0)
            for gw in bal["next_hops"]:
                if gw["age"] is not None:
                    age.add_metric([bal["dpid"], gw["gateway"]], gw["age"])
        yield from (connected, age)
        packet_ins = CounterMetricFamily("lbapp_packet_ins", "Packet-ins handled")
        packet_ins.add_metric([], s["packet_ins"])
        dropped = CounterMetricFamily("lbapp_not_served", "Packets not served, by reason", labels=["reason"])
        for reason, count in sorted(s["counters"].items()):
            dropped.add_metric([reason], count)
        yield from (packet_ins, dropped)
        latency = s["setup_latency"]
        setup = HistogramMetricFamily(
            "lbapp_setup_latency_seconds", "From a new connection's packet-in reaching the controller to its "
            "replies written to the switch's connection",
            buckets=[(repr(bound), n) for bound, n in latency["buckets"]] + [("+Inf", latency["count"])],
            sum_value=latency["sum"])
        yield setup
        build = GaugeMetricFamily("lbapp_build_info", "Always 1: the running lbapp's version", labels=["version"])
        build.add_metric([s.get("version", "")], 1)
        reloads = CounterMetricFamily("lbapp_config_reloads", "Reloads of the config file (SIGHUP, the API), by "
                                      "result", labels=["result"])
        for result in ("applied", "refused"):
            reloads.add_metric([result], s.get("reloads", {}).get(result, 0))
        yield from (build, reloads)
        if s.get("cluster"):
            yield from cluster_gauges(s["cluster"])


def cluster_gauges(cluster: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    """This member's role and the lead it sees (lbapp.cluster.member.Member.as_data)."""
    leads = GaugeMetricFamily("lbapp_cluster_leader", "1 while this member leads the cluster", labels=["member"])
    leads.add_metric([cluster["member"]], 1 if cluster["role"] == "leader" else 0)
    generation = GaugeMetricFamily("lbapp_cluster_generation", "The present lead's generation id (etcd revision "
                                   "it was won at); 0 with no leader")
    generation.add_metric([], cluster["generation"] or 0)
    led = GaugeMetricFamily("lbapp_cluster_led_seconds", "How long the present leader has led, as this member saw it")
    led.add_metric([], cluster["led_seconds"] or 0)
    members = GaugeMetricFamily("lbapp_cluster_members", "Members whose lease is alive in etcd")
    members.add_metric([], len(cluster["members"]))
    yield from (leads, generation, led, members)


def paged(state: Callable[..., dict[str, Any]], page: int = SCRAPE_PAGE) -> Callable[[], dict[str, Any]]:
    """Every VIP's state, read ``page`` VIPs per call of ``state`` (lbapp.snapshot's offset and
    limit; each call holds the controller's lock): a scrape of 10,000 VIPs holds it a page at a
    time, not for the whole snapshot, and new connections wait at most a page."""
    def whole() -> dict[str, Any]:
        first = state(offset=0, limit=page)
        while first.get("next_offset") is not None:
            more = state(offset=first["next_offset"], limit=page)
            first["vips"] += more["vips"]
            first["next_offset"] = more.get("next_offset")
        return first
    return whole
