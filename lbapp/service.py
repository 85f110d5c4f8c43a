"""The balancer's logic: OpenFlow events in, OpenFlow messages out. No os-ken runtime, no clock.

Every entry point takes ``now`` and returns a list of ``(dpid, message)`` for the sender; the
messages are os-ken parser objects without a datapath, which the sender attaches, or, on the
per-connection hot path, pre-serialised ``RawMessage`` bytes (lbapp.pipeline.fastpath).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp import mac as macs
from lbapp import packets
from lbapp.config import Config
from lbapp.pipeline import arp_proxy, classify, cookies, next_hop, pin, session, snat, translate
from lbapp.pipeline.actions import L4, PROTO_NAMES, output
from lbapp.pipeline.context import Context
from lbapp.pipeline.fastpath import SessionTemplate, packet_out_to_table
from lbapp.pipeline.tables import BALANCER_TABLES, EDGE_TABLES, TABLES
from lbapp.feedback import Feedback
from lbapp.schedulers import registry
from lbapp.schedulers import slots as slot_tables
from lbapp.schedulers.base import IPv4, BackendWeight, ConnKey, Scheduler, SchedulerOptions
from lbapp.state.nexthops import Gateway, NextHops
from lbapp.state.sessions import Session, Sessions

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]


@dataclass(frozen=True)
class FlowStat:
    """One session-table flow from a flow statistics reply."""

    cookie: int
    byte_count: int
    duration: float = 0.0
    match: tuple[tuple[str, Any], ...] = ()  # the flow's match fields
    eth_dst: str | None = None  # the MAC its set_field action writes (a backend's fabricated MAC)


@dataclass
class Site:
    """One balancer switch: its view of the config and its own learned next hops."""

    ctx: Context
    next_hops: NextHops


class Balancer:
    def __init__(self, cfg: Config, generation: int = 1, first_session_id: int = 1) -> None:
        if not 1 <= generation <= 255:
            raise ValueError("static flows use generations 1..255 (0 marks session flows)")
        self.sessions = Sessions(first_session_id)
        self.connected: set[int] = set()
        self.schedulers: dict[int, Scheduler] = {}
        self.sites: dict[int, Site] = {}
        self.feedback: Feedback | None = None
        self.removed_bytes: Counter[IPv4] = Counter()  # bytes of ended sessions, per backend (feedback)
        self._stats_waiting: set[int] = set()  # balancers whose session statistics this round lacks
        self._adopting: set[int] = set()  # balancers whose sessions from an earlier run are being read
        self._stats_bytes: Counter[IPv4] = Counter()  # bytes of live sessions gathered this round
        # (VIP ip, protocol, port, backend) -> edge dpid, for backends removed from the config
        # whose sessions still live: their source NAT stays until the last one ends
        self.lingering: dict[tuple[IPv4, str, int, IPv4], int] = {}
        # selection: switch VIPs: each one's slot table, and the VIP ids whose group each switch has
        self.slots: dict[int, slot_tables.Slots] = {}
        self.groups: dict[int, set[int]] = {}
        # (VIP ip, protocol, port, backend) removed from a selection: switch VIP -> the balancers
        # whose lingering pin flow for it has not idled out yet
        self.pins: dict[tuple[IPv4, str, int, IPv4], set[int]] = {}
        self.dropped_no_backend = 0
        self.bad_packets = 0
        self._apply(cfg, generation)

    def _apply(self, cfg: Config, generation: int) -> None:
        """Take ``cfg`` as the running config; learned next hops and schedulers' state survive
        where the config still names the same balancer, gateway or scheduler."""
        self.cfg = cfg
        self.generation = generation
        self.ctx = Context(cfg, generation=generation)  # the switch-independent view (edges, VIPs)
        old_sites, self.sites = self.sites, {}
        for _, b in cfg.all_balancers():
            hops = NextHops([(g.name, g.ip) for g in cfg.gateways], b.probe_interval)
            if b.dpid in old_sites:
                hops.keep_learned(old_sites[b.dpid].next_hops)
            self.sites[b.dpid] = Site(Context(cfg, b, generation), hops)
        if cfg.feedback is None:
            self.feedback = None
        else:
            fb = cfg.feedback
            settings = (fb.interval, fb.max_step, fb.min_factor, fb.max_factor)
            if self.feedback is None or self.feedback.settings() != settings:
                self.feedback = Feedback(*settings)
        # VIPs are known by (ip, protocol, port) across reloads, not by their place in the list
        old_keys = getattr(self, "vip_keys", {})
        self.vip_keys = {vip_id: (v.ip, v.protocol, v.port) for vip_id, v in self.ctx.vips()}
        new_id = {key: vip_id for vip_id, key in self.vip_keys.items()}
        renumber = {old: new_id.get(key, 0) for old, key in old_keys.items()}
        if any(old != new for old, new in renumber.items()):
            self.sessions.renumber_vips(renumber)
        old_schedulers, self.schedulers = self.schedulers, {}
        by_key = {old_keys[i]: sched for i, sched in old_schedulers.items() if i in old_keys}
        for vip_id, vip in self.ctx.vips():
            old = by_key.get(self.vip_keys[vip_id])
            options = SchedulerOptions(hash_fields=vip.hash, table_size=vip.table_size)
            if old is not None and old.name == vip.scheduler and old.options == options:
                self.schedulers[vip_id] = old
                old.set_backends(self._weights(vip))
            else:
                self.schedulers[vip_id] = registry.create(vip.scheduler, self._weights(vip), options)
        controller_picks = [(i, v) for i, v in self.ctx.balanced_vips() if v.selection == "controller"]
        self.vip_by_key = {(vip.ip, L4[vip.protocol][0], vip.port): (vip_id, vip) for vip_id, vip in controller_picks}
        self.templates = {vip_id: SessionTemplate(vip_id, vip.ip, L4[vip.protocol][0], vip.port, vip.idle_timeout)
                          for vip_id, vip in controller_picks}
        # a slot keeps its backend across reloads unless the new weights take it away
        old_slots = {old_keys[i]: table for i, table in self.slots.items() if i in old_keys}
        self.slots = {vip_id: slot_tables.assign(self._weights(vip), old_slots.get(self.vip_keys[vip_id]))
                      for vip_id, vip in self.ctx.balanced_vips() if vip.selection == "switch"}

    def _weights(self, vip) -> list[BackendWeight]:
        """The weights a VIP's scheduler uses: 0 for drained or down backends; scaled by
        dynamic feedback when it runs."""
        out = []
        for b in vip.backends:
            weight = 0 if b.down else b.weight
            out.append(BackendWeight(b.ip, self.feedback.effective(b.ip, weight) if self.feedback else weight))
        return out

    # --- switch lifecycle ---

    def switch_connected(self, dpid: int, now: float) -> list[Out]:
        """Sweep our stale static flows, install this switch's pipeline, probe gateways."""
        self.connected.add(dpid)
        site = self.sites.get(dpid)
        if site is not None:
            site.next_hops.forget_port()
            site.next_hops.probe_soon()
        flows, names, roles = self._static_flows(dpid)
        if not roles:
            LOG.warning("switch %016x is in no balancer or edge of the config; leaving it alone", dpid)
            return []
        # A fresh connection: we do not know what an earlier run left, so every static stage is
        # swept (sessions stay: they carry live connections) before the pipeline goes in.
        sweep = [TABLES[n].delete({}, cookie=cookies.make(TABLES[n].stage), cookie_mask=cookies.stage_mask())
                 for n in sorted(names) if not TABLES[n].session_owned]
        groups, adopt = [], []
        if site is not None:
            # sessions an earlier run (or this one, before a reconnect) left in the switch: read
            # them back, so counts and flow-removed messages know them
            self._adopting.add(dpid)
            adopt.append(self._session_stats_request())
            # an earlier run's groups may be there: replace rather than modify
            for vip_id in sorted(self.slots):
                groups += [session.remove_selection_group(vip_id),
                           session.selection_group(site.ctx, vip_id, self.slots[vip_id], ofp.OFPGC_ADD)]
            self.groups[dpid] = set(self.slots)
            flows += self._lingering_pin_flows(dpid)  # the switch may have lost them
        LOG.info("switch %016x connected as %s: installing %d flows", dpid, "+".join(roles), len(flows))
        return [(dpid, m) for m in sweep + groups + flows + adopt] + self.tick(now)

    def reconfigure(self, cfg: Config, now: float) -> list[Out]:
        """Apply a new config without losing a connection: established sessions keep their
        flows and backends; new flows go in under a new cookie generation, then the previous
        generation's leftovers (flows the new config no longer has) are deleted."""
        old_generation = self.generation
        old_edge = {ip: e.dpid for e in self.cfg.edges for ip in e.backends}
        old_pinned = {(v.ip, v.protocol, v.port): {b.ip for b in v.backends}
                      for v in self.cfg.vips if v.selection == "switch"}
        self._apply(cfg, old_generation % 255 + 1)
        out: list[Out] = self._linger_pins(old_pinned)
        self._find_lingering(old_edge)
        for dpid in sorted(self.connected):
            flows, names, roles = self._static_flows(dpid)
            site = self.sites.get(dpid)
            if site is not None:  # the next hops already learned stay in force
                flows = [f for f in flows if f.table_id != TABLES["next_hop"].table_id or f.priority == 0]
                for gw in site.next_hops.by_name.values():
                    flows += self._next_hop_flows(site, gw, clear=False)  # replaced in place: no gap
            # every stage, the session table's static flows too: connections' flows carry
            # generation 0 and are never matched here
            if not roles:  # the config no longer names this switch: our static flows go
                names = {t.name for t in TABLES.values()}
            stale = [TABLES[n].delete({}, cookie=cookies.make(TABLES[n].stage, generation=old_generation),
                                      cookie_mask=cookies.stage_mask() | cookies.GEN_MASK)
                     for n in sorted(names)]
            groups, gone = self._group_changes(dpid)
            out += [(dpid, m) for m in groups + flows + stale + gone]
            LOG.info("switch %016x reconfigured as %s: %d flows (generation %d)", dpid, "+".join(roles) or "nothing",
                     len(flows), self.generation)
        return out

    def _linger_pins(self, old_pinned: dict[tuple[IPv4, str, int], set[IPv4]]) -> list[Out]:
        """Backends removed from a selection: switch VIP keep their pin flow, with the VIP's idle
        timeout, on every balancer: their open connections finish where they are."""
        served = self._served()
        self.pins = {pair: dpids for pair, dpids in self.pins.items() if pair not in served}
        for _, vip in self.ctx.balanced_vips():
            if vip.selection != "switch":
                continue
            for backend in sorted(old_pinned.get((vip.ip, vip.protocol, vip.port), set())
                                  - {b.ip for b in vip.backends}):
                dpids = sorted(self.connected & set(self.sites))
                self.pins[(vip.ip, vip.protocol, vip.port, backend)] = set(dpids)
                LOG.info("backend %s left %s:%d/%s: its pinned connections stay until idle", backend, vip.ip,
                         vip.port, vip.protocol)
        return [(dpid, m) for dpid in sorted(self.connected & set(self.sites)) for m in self._lingering_pin_flows(dpid)]

    def _served(self) -> set[tuple[IPv4, str, int, IPv4]]:
        """Every (VIP ip, protocol, port, backend) the running config serves."""
        return {(v.ip, v.protocol, v.port, b.ip) for v in self.cfg.vips for b in v.backends}

    def _lingering_pin_flows(self, dpid: int) -> list[Any]:
        vips = {(v.ip, v.protocol, v.port): v for v in self.cfg.vips}
        return [session.lingering_pin(self.sites[dpid].ctx, vips[pair[:3]], pair[3])
                for pair, dpids in sorted(self.pins.items()) if dpid in dpids and pair[:3] in vips]

    def _group_changes(self, dpid: int) -> tuple[list[Any], list[Any]]:
        """A reload's select-group messages for one switch: those to send before the new flows
        (add or modify), and those after the old flows went (delete)."""
        site = self.sites.get(dpid)
        have = self.groups.get(dpid, set())
        want = set(self.slots) if site is not None else set()
        before = [session.selection_group(site.ctx, vip_id, self.slots[vip_id],
                                          ofp.OFPGC_MODIFY if vip_id in have else ofp.OFPGC_ADD)
                  for vip_id in sorted(want)]
        after = [session.remove_selection_group(vip_id) for vip_id in sorted(have - want)]
        self.groups[dpid] = want
        return before, after

    def _find_lingering(self, old_edge: dict[IPv4, int]) -> None:
        """Sessions whose (VIP, backend) the config no longer has keep their edge's source NAT."""
        served = self._served()
        # source NAT matches (backend, protocol, port): a pair the new config serves under
        # another VIP address must not be shadowed by the old one
        nat_keys = {(b, proto, port) for _, proto, port, b in served}
        still = {}
        live = [_pair(sess) for sess in self.sessions.by_id.values()] + list(self.pins)
        for pair in live:
            if pair in served or (pair[3], pair[1], pair[2]) in nat_keys:
                continue
            edge = self.lingering.get(pair, old_edge.get(pair[3]))
            if edge is not None:
                still[pair] = edge
        for pair in set(still) - set(self.lingering):
            LOG.info("backend %s left %s:%d/%s with live sessions: its source NAT stays until they end",
                     pair[3], pair[0], pair[2], pair[1])
        self.lingering = still

    def _lingering_flows(self, dpid: int) -> list[Any]:
        pairs = [pair for pair, edge in self.lingering.items() if edge == dpid]
        if not pairs:
            return []
        on_edge = {ip for e in self.ctx.edges_of(dpid) for ip in e.backends}
        return (classify.lingering_flows(self.ctx, {p[3] for p in pairs} - on_edge)
                + snat.lingering_flows(self.ctx, pairs))

    def _static_flows(self, dpid: int) -> tuple[list[Any], set[str], list[str]]:
        """This switch's pipeline (everything but sessions), the tables it uses, its roles."""
        roles: list[str] = []
        flows: list[Any] = []
        names: set[str] = set()
        site = self.sites.get(dpid)
        if site is not None:
            roles.append(f"balancer {site.ctx.balancer.name}")
            names.update(BALANCER_TABLES)
            ctx = site.ctx
            flows += (classify.balancer_flows(ctx) + arp_proxy.balancer_flows(ctx) + session.balancer_flows(ctx)
                      + pin.balancer_flows(ctx) + translate.balancer_flows(ctx) + next_hop.balancer_flows(ctx))
        if self.ctx.edges_of(dpid):
            roles.append("edge")
            names.update(EDGE_TABLES)
            edge_classify = classify.edge_flows(self.ctx, dpid)
            flows += edge_classify if site is None else [f for f in edge_classify if f.priority != 0]
            flows += snat.edge_flows(self.ctx, dpid)
        lingering = self._lingering_flows(dpid)
        if lingering:
            if not names & set(EDGE_TABLES):
                roles.append("edge (lingering)")
                names.update(EDGE_TABLES)
                flows.append(TABLES["snat"].miss_flow(self.generation))
                if site is None:  # its table-0 fallback goes with the old generation: re-add it
                    flows.append(TABLES["classify"].miss_flow(self.generation))
            flows += lingering
        return flows, names, roles

    def switch_disconnected(self, dpid: int) -> None:
        self.connected.discard(dpid)
        self.groups.pop(dpid, None)
        LOG.warning("switch %016x disconnected", dpid)

    # --- periodic work ---

    def tick(self, now: float) -> list[Out]:
        """ARP probes that are due, sent from each balancer's own address and MAC; session
        statistics requests when dynamic feedback is due."""
        out = []
        if self.feedback is not None and self.feedback.due(now):
            self._stats_waiting = self.connected & set(self.sites)
            self._stats_bytes = Counter()
            for dpid in sorted(self._stats_waiting):
                out.append((dpid, self._session_stats_request()))
        for dpid, site in self.sites.items():
            if dpid not in self.connected:
                continue
            for gw in site.next_hops.due_probes(now):
                data = packets.arp_request(site.ctx.balancer_mac, site.ctx.balancer_ip, gw.ip)
                out.append((dpid, packet_out(data, ofp.OFPP_CONTROLLER, [output(ofp.OFPP_FLOOD)])))
        return out

    # --- packet-in ---

    def packet_in(self, dpid: int, in_port: int, cookie: int, data: bytes, now: float) -> list[Out]:
        """Dispatch on the cookie of the flow that punted the packet. Never raises on a packet."""
        stage = cookies.stage_of(cookie) if cookies.is_ours(cookie) else None
        site = self.sites.get(dpid)
        if site is None:
            LOG.debug("switch %016x: packet-in from a switch that is no balancer", dpid)
            return []
        try:
            if stage == cookies.STAGE_SESSION:
                return self._new_connection(dpid, in_port, data, now)
            if stage == cookies.STAGE_CLASSIFY:
                return self._gateway_arp(site, dpid, in_port, data, now)
            if stage == cookies.STAGE_ARP_PROXY:
                return self._answer_arp(dpid, in_port, data)
        except packets.PacketError as exc:
            self.bad_packets += 1
            LOG.warning("switch %016x port %d: ignored packet-in: %s", dpid, in_port, exc)
            return []
        LOG.debug("switch %016x: packet-in from a flow that is not ours (cookie %#x)", dpid, cookie)
        return []

    def _new_connection(self, dpid: int, in_port: int, data: bytes, now: float) -> list[Out]:
        """The hot path: one packet-in, one session flow-mod and one packet-out, both patched
        from pre-serialised templates (see lbapp.pipeline.fastpath)."""
        key = packets.connection_key(data)
        found = self.vip_by_key.get((key.dst_ip, key.protocol, key.dst_port))
        if found is None:
            raise packets.PacketError(f"{key.src_ip}:{key.src_port} -> {key.dst_ip}:{key.dst_port} is no VIP")
        vip_id, vip = found
        sess = self.sessions.get(key)
        if sess is None:  # else: a retransmission raced the session flow; re-send the same rule
            backend = self.schedulers[vip_id].pick(key, self.sessions.counts(vip_id), now)
            if backend is None:
                self.dropped_no_backend += 1
                LOG.warning("VIP %s: no backend can take %s:%d (all drained)", vip.name, key.src_ip, key.src_port)
                return []
            sess = self.sessions.add(key, vip_id, backend, now)
            LOG.debug("session %d: %s:%d -> %s %s:%d -> %s", sess.session_id, key.src_ip, key.src_port,
                     vip.name, vip.ip, vip.port, backend)
        fab = self.ctx.scheme.encode(sess.backend)
        return [(dpid, self.templates[vip_id].render(key, sess.session_id, fab)),
                # Re-enter the pipeline at table 0: the new session flow now carries it on.
                (dpid, packet_out_to_table(data, in_port))]

    def _gateway_arp(self, site: Site, dpid: int, in_port: int, data: bytes, now: float) -> list[Out]:
        info = packets.parse_arp(data)
        if macs.is_multicast(info.src_mac) or info.src_mac == 0:
            raise packets.PacketError(f"ARP from {info.src_ip} claims MAC {macs.format_mac(info.src_mac)}: "
                                      "not a unicast next hop")
        gw = site.next_hops.learn(info.src_ip, info.src_mac, in_port, now)
        if gw is None:
            return []
        LOG.info("%s: next hop %s %s is at %s port %d", site.ctx.balancer.name, gw.name, gw.ip,
                 macs.format_mac(gw.mac), in_port)
        return [(dpid, m) for m in self._next_hop_flows(site, gw)]

    @staticmethod
    def _next_hop_flows(site: Site, gw: Gateway, clear: bool = True) -> list[Any]:
        return [m for route_id, route in site.ctx.routes() if route.via == gw.name
                for m in next_hop.route_flows(site.ctx, route_id, gw.mac, gw.port, clear)]

    def _answer_arp(self, dpid: int, in_port: int, data: bytes) -> list[Out]:
        """Controller-mode ARP proxy: answer a request for a backend IP with its fabricated MAC."""
        info = packets.parse_arp(data)
        if info.op != 1:
            return []
        try:
            if self.cfg.route_for(info.dst_ip) is None:
                raise macs.MacError("no route")
            fab = self.ctx.scheme.encode(info.dst_ip)
        except macs.MacError:
            LOG.debug("ARP for %s: not a backend address, not answered", info.dst_ip)
            return []
        return [(dpid, packet_out(packets.arp_reply(info, fab), ofp.OFPP_CONTROLLER, [output(in_port)]))]

    # --- flow-removed ---

    def flow_removed(self, dpid: int, cookie: int, reason: int, now: float, byte_count: int = 0,
                     match: dict | None = None) -> list[Out]:
        decoded = cookies.decode(cookie)
        if decoded is None or decoded.stage != cookies.STAGE_SESSION:
            return []
        if decoded.vip == cookies.LINGER_VIP:
            return self._pin_idle(dpid, decoded.obj, match or {})
        known = self.sessions.by_id.get(decoded.obj)
        if known is None or known.flow_vip != decoded.vip:
            return []  # a flow from an earlier controller run, not this run's session
        sess = self.sessions.remove(decoded.obj)
        out: list[Out] = []
        if sess is not None:
            self.removed_bytes[sess.backend] += byte_count
            out = self._end_lingering(_pair(sess))
            LOG.debug("session %d ended (%s) after %.1fs: %s:%d -> %s; %d live", sess.session_id,
                     _REASONS.get(reason, reason), now - sess.created, sess.key.src_ip, sess.key.src_port, sess.backend,
                     len(self.sessions))
        return out

    def _pin_idle(self, dpid: int, backend: int, match: dict) -> list[Out]:
        """A removed backend's pin flow idled out on ``dpid``."""
        protocol = PROTO_NAMES.get(match.get("ip_proto"))
        if protocol is None or "ipv4_dst" not in match:
            return []
        pair = (IPv4(match["ipv4_dst"]), protocol, match.get(L4[protocol][2]), IPv4(backend))
        dpids = self.pins.get(pair)
        if dpids is None:
            return []
        dpids.discard(dpid)
        if dpids:
            return []
        del self.pins[pair]
        LOG.info("backend %s: its last pinned connection to %s:%d went idle", pair[3], pair[0], pair[2])
        return self._end_lingering(pair)

    def _end_lingering(self, pair: tuple[IPv4, str, int, IPv4]) -> list[Out]:
        """When the last session or pin of a lingering (VIP, backend) ends: remove its source NAT."""
        dpid = self.lingering.get(pair)
        if dpid is None or pair in self.pins or any(_pair(s) == pair for s in self.sessions.by_id.values()):
            return []
        del self.lingering[pair]
        LOG.info("backend %s: last session on %s:%d ended; its source NAT goes", pair[3], pair[0], pair[2])
        out = [(dpid, snat.remove_lingering(pair))]
        if not any(p[3] == pair[3] and d == dpid for p, d in self.lingering.items()):
            out.append((dpid, classify.remove_lingering(pair[3])))
        return out

    # --- statistics (dynamic feedback) ---

    @staticmethod
    def _session_stats_request() -> parser.OFPFlowStatsRequest:
        stage = TABLES["session"]
        return parser.OFPFlowStatsRequest(
            datapath=None, table_id=stage.table_id, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
            cookie=cookies.make(stage.stage), cookie_mask=cookies.stage_mask(), match=parser.OFPMatch())

    def _adopt(self, dpid: int, stats: list[FlowStat], now: float, more: bool) -> None:
        """Take back the session flows an earlier run left in the switch (a controller restart
        or a reconnect): their connections count again, and their flow-removed ends them."""
        adopted = 0
        for stat in stats:
            decoded = cookies.decode(stat.cookie)
            if (decoded is None or decoded.stage != cookies.STAGE_SESSION or decoded.generation != 0
                    or decoded.vip == cookies.LINGER_VIP or not decoded.obj or stat.eth_dst is None):
                continue  # not a connection's flow
            m = dict(stat.match)
            protocol = PROTO_NAMES.get(m.get("ip_proto"))
            if protocol is None:
                continue
            _, src_field, dst_field = L4[protocol]
            try:
                key = ConnKey(m["ip_proto"], IPv4(m["ipv4_src"]), m[src_field], IPv4(m["ipv4_dst"]),
                                      m[dst_field])
                backend = self.ctx.scheme.decode(macs.parse_mac(stat.eth_dst))
            except (KeyError, ValueError, macs.MacError):
                continue
            found = self.vip_by_key.get((key.dst_ip, key.protocol, key.dst_port))
            if found is not None and self.sessions.adopt(key, found[0], backend, decoded.obj, decoded.vip,
                                                         now - stat.duration):
                adopted += 1
        if adopted:
            LOG.info("switch %016x: took back %d sessions already in its session table", dpid, adopted)
        if not more:
            self._adopting.discard(dpid)

    def session_stats(self, dpid: int, stats: list[FlowStat], now: float, more: bool = False) -> list[Out]:
        """One part of a balancer's session-flow statistics. After a switch connects, its
        sessions are taken back from it. For dynamic feedback: once every balancer asked this
        round has sent its last part, the backends' load goes to feedback, which re-weights the
        schedulers when it moves."""
        if dpid in self._adopting:
            self._adopt(dpid, stats, now, more)
        if self.feedback is None or dpid not in self._stats_waiting:
            return []
        for stat in stats:
            decoded = cookies.decode(stat.cookie)
            sess = self.sessions.by_id.get(decoded.obj) if decoded and decoded.stage == cookies.STAGE_SESSION else None
            if sess is not None:
                self._stats_bytes[sess.backend] += stat.byte_count
        if more:
            return []
        self._stats_waiting.discard(dpid)
        if self._stats_waiting:
            return []
        live = self._stats_bytes
        weights: dict[IPv4, int] = {}
        for vip in self.cfg.vips:
            for b in vip.backends:
                weights[b.ip] = max(weights.get(b.ip, 0), 0 if b.down else b.weight)
        total = {ip: live[ip] + self.removed_bytes[ip] for ip in weights}
        if self.feedback.observe(now, total, weights):
            for vip_id, vip in self.ctx.vips():
                self.schedulers[vip_id].set_backends(self._weights(vip))
        return []


def _pair(sess: Session) -> tuple[IPv4, str, int, IPv4]:
    """The (VIP ip, protocol, port, backend) a session belongs to."""
    return sess.key.dst_ip, PROTO_NAMES[sess.key.protocol], sess.key.dst_port, sess.backend


_REASONS = {ofp.OFPRR_IDLE_TIMEOUT: "idle", ofp.OFPRR_HARD_TIMEOUT: "hard timeout", ofp.OFPRR_DELETE: "deleted"}


def packet_out(data: bytes, in_port: int, actions: list) -> parser.OFPPacketOut:
    return parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port, actions=actions,
                               data=data)

