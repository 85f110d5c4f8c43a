"""``/metrics`` in the Prometheus text format, with the official client library. The values are
read from the state snapshot when a scraper asks (a custom collector), so the per-connection
path does no work for them."""
from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "registry_for", "generate_latest"]


class SnapshotCollector:
    """A Prometheus collector that reads the state snapshot (``state``) at each scrape; it keeps no
    state of its own."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        s = self.state()
        labels = ["vip", "backend"]
        sessions = GaugeMetricFamily("lbapp_backend_sessions", "Live sessions (connections) on a backend", labels=labels)
        connections = CounterMetricFamily("lbapp_backend_connections", "Connections scheduled to a backend",
                                          labels=labels)
        up = GaugeMetricFamily("lbapp_backend_up", "1 while the backend may take new connections: not set down "
                               "and not found down by its health check", labels=labels)
        admin = GaugeMetricFamily("lbapp_backend_admin_state", "1 for the backend's administrative state "
                                  "(up, drain or down: the config and runtime changes)", labels=labels + ["state"])
        weight = GaugeMetricFamily("lbapp_backend_effective_weight", "The weight new connections are shared by",
                                   labels=labels)
        sent = CounterMetricFamily("lbapp_backend_bytes", "Bytes of clients' traffic sent to a backend "
                                                         "(ended sessions, and live flows as last read)", labels=labels)
        packets = CounterMetricFamily("lbapp_backend_packets", "Packets of clients' traffic sent to a backend",
                                      labels=labels)
        for vip in s["vips"]:
            for b in vip["backends"]:
                key = [vip["name"], b["ip"]]
                sessions.add_metric(key, b["sessions"])
                connections.add_metric(key, b["connections"])
                up.add_metric(key, 0 if "down" in (b["health"], b["admin"]) else 1)
                for state in ("up", "drain", "down"):
                    admin.add_metric(key + [state], 1 if b["admin"] == state else 0)
                weight.add_metric(key, b["effective_weight"])
                sent.add_metric(key, b.get("bytes", 0))
                packets.add_metric(key, b.get("packets", 0))
        yield from (sessions, connections, up, admin, weight, sent, packets)
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


SCRAPE_PAGE = 500  # VIPs per hold of the controller's lock while /metrics reads the state


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


def registry_for(state: Callable[[], dict[str, Any]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(state))
    return registry
