"""The balancer's logic: OpenFlow events in, OpenFlow messages out. No os-ken runtime, no clock.

Every entry point takes ``now`` and returns a list of ``(dpid, message)`` for the sender; the
messages are os-ken parser objects without a datapath, which the sender attaches, or, on the
per-connection hot path, pre-serialised ``RawMessage`` bytes (lbapp.pipeline.fastpath). The
state lives in objects that own it (lbapp.state); this class routes events to them.
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
from lbapp.healthcheck import Checker
from lbapp.pipeline import assembly, cookies, meters, next_hop
from lbapp.pipeline import session as session_flows
from lbapp.pipeline.actions import L4, PROTO_NAMES, output
from lbapp.pipeline.fastpath import PickTemplate, packet_out_to_table
from lbapp.reload import plan_reload
from lbapp.shared import ConnKey, IPv4, VipBackend, VipKey
from lbapp.snapshot import snapshot
from lbapp.state.groups import SelectGroups
from lbapp.state.latency import LatencyHistogram
from lbapp.state.lingering import Lingering
from lbapp.state import overload
from lbapp.state.nexthops import Gateway
from lbapp.state.pinned import PinnedCounts, following
from lbapp.state.rates import PACKET_INS, Rates
from lbapp.state.running import Running, Site, derive, take
from lbapp.state.sessions import Session, Sessions
from lbapp.state.stats import UNANSWERED_AFTER_S, StatsRequests
from lbapp.state.traffic import Traffic

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]
RECONCILE_S = 60.0  # how often each balancer's session table is read whole (and after each connect)


@dataclass(frozen=True)
class FlowStat:
    """One session-table flow from a flow statistics reply."""

    cookie: int
    byte_count: int
    duration: float = 0.0
    match: tuple[tuple[str, Any], ...] = ()  # the flow's match fields
    eth_dst: str | None = None  # the MAC its set_field action writes (a backend's fabricated MAC)
    packet_count: int = 0
    priority: int = 0


class Balancer:
    def __init__(self, cfg: Config, generation: int = 1, first_session_id: int = 1) -> None:
        self.running: Running = derive(cfg, generation)
        take(self.running)
        self.sessions = Sessions(first_session_id)
        self.connected: set[int] = set()
        self.groups = SelectGroups()
        self.lingering = Lingering()
        self.stats = StatsRequests()
        self.removed_bytes: Counter[IPv4] = Counter()  # bytes of ended sessions, per backend (feedback)
        self.counters: Counter[str] = Counter()  # packets not served, by reason
        self.packet_ins = 0
        self.traffic = Traffic()
        self.rates = Rates()  # connections/s per (VIP, backend), packet-ins/s
        self.switch_rates = overload.SwitchRates()  # new connections/s the switch picked for, while overloaded
        self.pinned = PinnedCounts()  # live connections of `pin: conntrack` VIPs, from the switch's counters
        self.setup_latency = LatencyHistogram()  # observed by the sender, which knows when replies left
        self._next_reconcile: float | None = None
        self.checker = Checker()
        self.checker.load(self)

    @property
    def cfg(self) -> Config:
        return self.running.cfg

    def balancers_connected(self) -> list[int]:
        """The balancer switches of the running config that are connected, in dpid order."""
        return sorted(self.connected & set(self.running.sites))

    # --- switch lifecycle ---

    def switch_connected(self, dpid: int, now: float, relearn: bool = True) -> list[Out]:
        """Sweep our stale static flows, install this switch's pipeline, probe gateways. Without
        ``relearn`` (another connection claims a switch that is still connected, or the one that
        stayed is in use again) the next hops stay as learned until a probe says otherwise:
        nothing renumbered the switch's ports."""
        self.connected.add(dpid)
        site = self.running.sites.get(dpid)
        if site is not None:
            if relearn:
                site.next_hops.forget_port()
            site.next_hops.probe_soon()
        static = assembly.static_flows(self.running, self.lingering, dpid)
        if not static.roles:
            LOG.warning("switch %016x is in no balancer or edge of the config; leaving it alone", dpid)
            return []
        # A fresh connection: we do not know what an earlier run left, so every static stage is
        # swept (sessions stay: they carry live connections) before the pipeline goes in.
        sweep = assembly.sweep(static.tables)
        flows, groups, adopt = static.flows, [], []
        if site is not None:
            groups = [meters.remove_punt_meter(), meters.punt_meter(site.ctx)]  # an earlier run's, replaced
            sweep += session_flows.sweep_epoch_copies(site.ctx, self.running.epochs)
            groups += self.groups.install(site.ctx, dpid, self.running.slots)
            flows = flows + self.lingering.pin_flows(site.ctx, dpid)  # the switch may have lost them
            # sessions an earlier run (or this one, before a reconnect) left in the switch: read
            # them back, so counts and flow-removed messages know them
            adopt.append(self.stats.request(dpid, "adopt", now))
        LOG.info("switch %016x connected as %s: installing %d flows", dpid, "+".join(static.roles), len(flows))
        return [(dpid, m) for m in sweep + groups + flows + adopt] + self.tick(now)

    def reconfigure(self, cfg: Config, now: float) -> list[Out]:
        """Apply a new config without losing a connection (see lbapp.reload): the plan is made
        first, from the running state and ``cfg``, and taken whole."""
        plan = plan_reload(self.running, cfg, self.lingering, self.groups, self.connected,
                           [_pair(s) for s in self.sessions.by_id.values()], self.checker.health_of)
        counted_by_switch = {vip.key: vip.id for vip in self.running.vips if vip.pins_in_conntrack}
        self.running, self.lingering, self.groups = plan.running, plan.lingering, plan.groups
        take(self.running)
        self.sessions.forget_vips(set(self.running.vips.by_key))
        for key, vip_id in counted_by_switch.items():  # its counts were the switch's: they go with its epochs
            if vip_id not in self.running.epochs or self.running.vips.by_id[vip_id].key != key:
                self.sessions.set_live(vip_id, Counter())
        self.pinned.keep_only(set(self.running.epochs))
        self.checker.load(self)
        return plan.messages

    def switch_disconnected(self, dpid: int) -> None:
        self.connected.discard(dpid)
        self.groups.disconnected(dpid)
        self.stats.disconnected(dpid)
        self.pinned.disconnected(dpid)
        LOG.warning("switch %016x disconnected", dpid)

    # --- periodic work ---

    def tick(self, now: float) -> list[Out]:
        """Health probes and ARP probes that are due, sent from a balancer's own address and MAC;
        session statistics requests when dynamic feedback is due."""
        out: list[Out] = self.checker.tick(self, now)
        if self.rates.due(now):
            self.rates.sample(now, self._counts())
            out += self._weigh_overload(now)
        periods = {vip_id: self.running.vips.by_id[vip_id].model.idle_timeout for vip_id in self.running.epochs}
        for vip_id in self.pinned.ending(periods, now):
            out += self._next_epoch(vip_id, now)
        feedback = self.running.backends.feedback
        balancers = self.balancers_connected()
        if feedback is not None and feedback.due(now):
            out += self.stats.start_round(balancers, "feedback", now)
        if self.traffic.due(now):
            out += self.stats.start_round(balancers, "traffic", now)
        if self.stats.expire(now):
            LOG.warning("statistics requests unanswered for %.0f s: given up", UNANSWERED_AFTER_S)
        if self._next_reconcile is None or now >= self._next_reconcile:
            # the switches' session tables read whole from time to time: counts follow them
            # even when a flow-removed was lost (a switch away while its flows idled out)
            if self._next_reconcile is not None:
                out += [(dpid, self.stats.request(dpid, "adopt", now)) for dpid in balancers]
            self._next_reconcile = now + RECONCILE_S
        for dpid, site in self.running.sites.items():
            if dpid not in self.connected:
                continue
            for gw in site.next_hops.due_probes(now):
                data = packets.arp_request(site.ctx.balancer_mac, site.ctx.balancer_ip, gw.ip)
                out.append((dpid, packet_out(data, ofp.OFPP_CONTROLLER, [output(ofp.OFPP_FLOOD)])))
        return out

    def _counts(self) -> Counter:
        """What the rates follow: connections per (VIP id, backend) and per VIP id, packet-ins."""
        counts = Counter(self.sessions.total)
        for (vip_id, _), n in self.sessions.total.items():
            counts[vip_id] += n
        counts[PACKET_INS] = self.packet_ins
        return counts

    def _weigh_overload(self, now: float) -> list[Out]:
        """Hand a controller-picked VIP flooded with new connections to the switch's own path,
        and back once the flood is over (lbapp.state.overload)."""
        settings = self.cfg.all_balancers()[0][1]  # with several balancers: the first one's limits
        mine = [vip.id for vip in self.running.vips if vip.controller_picks]
        rates = {v: self.rates.per_second(v) + self.switch_rates.of_vip(v) for v in mine}
        verdict = overload.decide(self.running.overloaded, rates, mine, settings.overload_above,
                                  settings.overload_hold, now)
        for vip_id in verdict.entered:
            LOG.warning("%s: %.0f new connections/s, over %d: the switch picks for it (its select group, pinned in "
                        "conntrack) for %g s at least", self.running.vips.by_id[vip_id], self.rates.per_second(vip_id),
                        settings.overload_above, settings.overload_hold)
        for vip_id in verdict.left:
            self.switch_rates.forget(vip_id)
            if vip_id in self.running.vips.by_id:
                LOG.warning("%s: the controller picks for it again", self.running.vips.by_id[vip_id])
        # while the switch picks, its pick flow's counter says how many new connections come
        reads = [(dpid, self.stats.request(dpid, "overload", now, vip_id)) for vip_id in sorted(self.running.overloaded)
                 if vip_id in self.running.vips.by_id for dpid in self.balancers_connected()]
        return self.pick_flows([v for v in verdict.entered + verdict.left if v in self.running.vips.by_id]) + reads

    def _next_epoch(self, vip_id: int, now: float) -> list[Out]:
        """A ``pin: conntrack`` VIP's epoch ended: on every balancer, its counting flows are read
        (the connections seen in the epoch) and then moved to the next epoch
        (lbapp.state.pinned). A switch takes OpenFlow messages in order: the reading is of the
        epoch that ended."""
        running = self.running
        vip, old = running.vips.by_id[vip_id], running.epochs[vip_id]
        new = running.epochs[vip_id] = following(old)
        withheld = running.backends.withheld_pins()
        backends = [b.ip for b in vip.model.backends if (vip_id, b.ip) not in withheld]
        out: list[Out] = []
        for dpid in self.balancers_connected():
            out.append((dpid, self.stats.request(dpid, "epoch", now, vip_id, pins=True)))
            out += [(dpid, m) for m in session_flows.next_epoch(running.sites[dpid].ctx, vip_id, vip.model,
                                                                backends, old, new)]
        return out

    def pick_flows(self, vip_ids: list[int]) -> list[Out]:
        """Each VIP's pick flows, as the running state has them, on every connected balancer."""
        running, out = self.running, []
        for dpid in self.balancers_connected():
            ctx = running.sites[dpid].ctx
            for vip_id in vip_ids:
                slots = running.slots.get(vip_id, (None, [None]))[1]
                out += [(dpid, m) for m in session_flows.pick_flows(ctx, vip_id, running.vips.by_id[vip_id].model,
                                                                    None in slots, vip_id in running.overloaded)]
        return out

    # --- packet-in ---

    def packet_in(self, dpid: int, in_port: int, cookie: int, data: bytes, now: float) -> list[Out]:
        """Dispatch on the cookie of the flow that punted the packet. Never raises on a packet."""
        self.packet_ins += 1
        stage = cookies.stage_of(cookie) if cookies.is_ours(cookie) else None
        site = self.running.sites.get(dpid)
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
            if stage == cookies.STAGE_PROBE:
                return self.checker.answer(self, data)
        except packets.PacketError as exc:
            self.counters["bad_packet"] += 1
            LOG.warning("switch %016x port %d: ignored packet-in: %s", dpid, in_port, exc)
            return []
        LOG.debug("switch %016x: packet-in from a flow that is not ours (cookie %#x)", dpid, cookie)
        return []

    def _new_connection(self, dpid: int, in_port: int, data: bytes, now: float) -> list[Out]:
        """The hot path: one packet-in, one session flow-mod and one packet-out, both patched
        from pre-serialised templates (see lbapp.pipeline.fastpath)."""
        key = packets.connection_key(data)
        vip = self.running.vips.by_key.get((key.dst_ip, key.protocol, key.dst_port))
        if vip is None or vip.model.external_director:
            raise packets.PacketError(f"{key.src_ip}:{key.src_port} -> {key.dst_ip}:{key.dst_port} is no VIP "
                                      "the balancer picks for")
        if vip.template is None:  # the switch picks for it, and sends here when it has no backend
            slots = self.running.slots.get(vip.id)
            if slots is not None and None in slots[1]:
                return self._refuse(vip, dpid, in_port, data, key)
            return []  # a reload's race (an older flow punted it): its retransmission finds the group
        if isinstance(vip.template, PickTemplate):
            return self._pin_in_conntrack(vip, dpid, in_port, data, key, now)
        sess = self.sessions.get(key)
        if sess is None:  # else: a retransmission raced the session flow; re-send the same rule
            backend = vip.scheduler.pick(key, self.sessions.counts(vip.id), now)
            if backend is None:
                return self._refuse(vip, dpid, in_port, data, key)
            sess = self.sessions.add(key, vip.id, backend, now, dpid)
            LOG.debug("session %d: %s:%d -> %s %s:%d -> %s", sess.session_id, key.src_ip, key.src_port,
                      vip.model.name, vip.key.ip, vip.key.port, backend)
        fab = self.running.ctx.scheme.encode(sess.backend)
        return [(dpid, vip.template.render(key, sess.session_id, fab)),
                # Re-enter the pipeline at table 0: the new session flow now carries it on.
                (dpid, packet_out_to_table(data, in_port))]

    def _pin_in_conntrack(self, vip, dpid: int, in_port: int, data: bytes, key: ConnKey, now: float) -> list[Out]:
        """A ``pin: conntrack`` VIP's new connection: one packet-out forwards its first packet to
        the backend picked and commits it to conntrack with that backend as its mark; no flow.
        (A copy that raced the commit is picked again: the later commit's backend holds.)"""
        backend = vip.scheduler.pick(key, self.sessions.counts(vip.id), now)
        if backend is None:
            return self._refuse(vip, dpid, in_port, data, key)
        self.sessions.counted(vip.id, backend)
        self.pinned.picked(dpid, vip.id, backend)
        return [(dpid, vip.template.render(backend, self.running.ctx.scheme.encode(backend), in_port, data))]

    def _refuse(self, vip, dpid: int, in_port: int, data: bytes, key: ConnKey) -> list[Out]:
        """No backend can take a new connection: answer at once, as a closed port would (TCP
        reset, ICMP port unreachable), rather than let the client time out. Counted."""
        self.counters["refused_no_backend"] += 1
        LOG.debug("VIP %s: no backend can take %s:%d: refused", vip.model.name, key.src_ip, key.src_port)
        frame = packets.refusal(data)
        return [(dpid, packet_out(frame, ofp.OFPP_CONTROLLER, [output(in_port)]))] if frame else []

    def _gateway_arp(self, site: Site, dpid: int, in_port: int, data: bytes, now: float) -> list[Out]:
        info = packets.parse_arp(data)
        if macs.is_multicast(info.src_mac) or info.src_mac == 0:
            raise packets.PacketError(f"ARP from {info.src_ip} claims MAC {macs.format_mac(info.src_mac)}: "
                                      "not a unicast next hop")
        learned = site.next_hops.learn(info.src_ip, info.src_mac, in_port, now, info.eth_src)
        if learned is None:
            return []
        gw, where = learned.gateway, site.ctx.balancer.name
        if learned.refused:
            self.counters["arp_not_believed"] += 1
            count = site.next_hops.warn_now(gw, now)
            if count:
                LOG.warning("%s: not believed: %d ARP(s) claiming next hop %s %s, the last from %s on port %d: %s",
                            where, count, gw.name, gw.ip, macs.format_mac(info.src_mac), in_port, learned.refused)
            return []
        if not learned.changed:
            return []
        if learned.old_mac is None:
            LOG.info("%s: next hop %s %s is at %s port %d", where, gw.name, gw.ip, macs.format_mac(gw.mac), in_port)
        else:
            LOG.warning("%s: next hop %s %s moved from %s port %s to %s port %d", where, gw.name, gw.ip,
                        macs.format_mac(learned.old_mac), learned.old_port, macs.format_mac(gw.mac), in_port)
        return [(dpid, m) for m in next_hop_flows(site, gw)]

    def _answer_arp(self, dpid: int, in_port: int, data: bytes) -> list[Out]:
        """Controller-mode ARP proxy: answer a request for a backend IP with its fabricated MAC."""
        info = packets.parse_arp(data)
        if info.op != 1:
            return []
        try:
            if self.cfg.route_for(info.dst_ip) is None:
                raise macs.MacError("no route")
            fab = self.running.ctx.scheme.encode(info.dst_ip)
        except macs.MacError:
            LOG.debug("ARP for %s: not a backend address, not answered", info.dst_ip)
            return []
        return [(dpid, packet_out(packets.arp_reply(info, fab), ofp.OFPP_CONTROLLER, [output(in_port)]))]

    # --- flow-removed ---

    def flow_removed(self, dpid: int, cookie: int, reason: int, now: float, byte_count: int = 0,
                     match: dict | None = None, packet_count: int = 0) -> list[Out]:
        decoded = cookies.decode(cookie)
        if decoded is None or decoded.stage != cookies.STAGE_SESSION:
            return []
        if decoded.vip == cookies.LINGER_VIP:
            pair = _pin_of(decoded.obj, match or {})
            return self.lingering.pin_idle(dpid, pair, self._has_sessions) if pair else []
        if decoded.generation and session_flows.is_epoch_copy(decoded.obj):  # gone with its epoch
            backend = self.running.ctx.backend_by_id.get(session_flows.pinned_backend_id(decoded.obj))
            if backend is not None:
                self.traffic.session_ended(_seen_id(decoded.vip, backend, match or {}), (decoded.vip, backend),
                                           byte_count, packet_count)
                self.removed_bytes[backend] += byte_count  # (dynamic feedback)
            return []
        known = self.sessions.by_id.get(decoded.obj)
        if known is None or known.flow_vip != decoded.vip:
            return []  # a flow from an earlier controller run, not this run's session
        sess = self.sessions.remove(decoded.obj)
        self.removed_bytes[sess.backend] += byte_count
        self.traffic.session_ended(sess.session_id, (sess.vip_id, sess.backend), byte_count, packet_count)
        LOG.debug("session %d ended (%s) after %.1fs: %s:%d -> %s; %d live", sess.session_id,
                  _REASONS.get(reason, reason), now - sess.created, sess.key.src_ip, sess.key.src_port, sess.backend,
                  len(self.sessions))
        return self.lingering.ended(_pair(sess), self._has_sessions)

    def _has_sessions(self, pair: VipBackend) -> bool:
        return any(_pair(s) == pair for s in self.sessions.by_id.values())

    # --- statistics: adoption and dynamic feedback ---

    def request_failed(self, dpid: int, xid: int) -> None:
        """The switch answered request ``xid`` with an OpenFlow error: if it was one of our
        statistics requests, it and its round are given up (the next round starts afresh)."""
        purpose = self.stats.failed(dpid, xid)
        if purpose is not None:
            LOG.warning("switch %016x refused a session-table statistics request (%s): given up", dpid, purpose)

    def session_stats(self, dpid: int, xid: int, stats: list[FlowStat], now: float, more: bool = False
                      ) -> list[Out]:
        """One part of the reply to a session-table statistics request, told by its ``xid``:
        after a switch connects, its sessions are taken back from it; in a feedback round, the
        bytes per backend are summed, and once every balancer asked has answered they go to
        dynamic feedback, which re-weights the schedulers when it moves."""
        purpose = self.stats.purpose(dpid, xid)
        out: list[Out] = []
        if purpose == "adopt":
            sent_at, seen = self.stats.adopting[xid]
            adopted = sum(self._adopt(dpid, stat, now, seen) for stat in stats)
            if adopted:
                LOG.info("switch %016x: took back %d sessions already in its session table", dpid, adopted)
            if not more:
                out = self._forget_lost(dpid, sent_at, seen)
        elif purpose == "overload":
            pick = session_flows.TABLE.priority("pick")
            for stat in stats:
                decoded = cookies.decode(stat.cookie)
                if decoded is not None and decoded.obj == 0 and stat.priority == pick:
                    self.switch_rates.reading(decoded.vip, dpid, stat.packet_count, now)
        elif purpose == "epoch":
            counters: dict[int, dict[IPv4, int]] = {}
            for stat in stats:  # the counting flows (an epoch copy counts as a session of its epoch)
                carrier = self._carrier(stat)
                if carrier is not None and carrier[0] == "pin":
                    vip_id, backend = carrier[1]
                    counters.setdefault(vip_id, {})[backend] = stat.packet_count
            for vip_id, by_backend in counters.items():
                if vip_id in self.running.epochs:
                    self.pinned.reading(dpid, vip_id, by_backend)
                    self.sessions.set_live(vip_id, self.pinned.live(vip_id))
        elif purpose == "feedback":
            for stat in stats:  # the bytes of sessions, and of pin: conntrack VIPs' pin flows
                carrier = self._carrier(stat)
                if carrier is not None and (carrier[0] == "session" or self._pins_in_conntrack(carrier[-1][0])):
                    self.stats.round("feedback").bytes[carrier[-1][1]] += stat.byte_count
        elif purpose == "traffic":
            reading = self.stats.round("traffic")
            for stat in stats:
                carrier = self._carrier(stat)  # ("session", id, pair) or ("pin", pair)
                if carrier is not None:
                    reading.bytes[carrier] += stat.byte_count
                    reading.packets[carrier] += stat.packet_count
        if purpose is None or not self.stats.answered(xid, more):
            return out
        if purpose == "traffic":
            reading = self.stats.round("traffic")
            self.traffic.reading({key[1]: (key[2], reading.bytes[key], reading.packets[key])
                                  for key in reading.bytes if key[0] == "session"},
                                 {key[1]: (reading.bytes[key], reading.packets[key])
                                  for key in reading.bytes if key[0] == "pin"})
            return []
        backends = self.running.backends
        weights = backends.admin_weights_by_ip()
        live = self.stats.round("feedback").bytes
        if backends.feedback.observe(now, {ip: live[ip] + self.removed_bytes[ip] for ip in weights}, weights):
            for vip in self.running.vips:
                vip.reweigh(backends.weights)
        return []

    def _pins_in_conntrack(self, vip_id: int) -> bool:
        vip = self.running.vips.by_id.get(vip_id)
        return vip is not None and vip.pins_in_conntrack

    def _carrier(self, stat: FlowStat) -> tuple | None:
        """What a session-table flow's counters count: a session's flow (``("session", id,
        (VIP id, backend))``), a VIP's pin flow for one backend (``("pin", (VIP id, backend))``),
        whose epoch copy (``pin: conntrack``) counts as a session that ends with its epoch; None
        for the others."""
        decoded = cookies.decode(stat.cookie)
        if decoded is None or decoded.stage != cookies.STAGE_SESSION or not decoded.obj \
                or decoded.vip == cookies.LINGER_VIP:
            return None
        if decoded.generation == 0:  # a connection's flow
            sess = self.sessions.by_id.get(decoded.obj)
            return ("session", sess.session_id, (sess.vip_id, sess.backend)) if sess is not None and sess.vip_id \
                else None
        backend = self.running.ctx.backend_by_id.get(session_flows.pinned_backend_id(decoded.obj))  # a pin flow
        if backend is None or decoded.vip not in self.running.vips.by_id:
            return None
        if session_flows.is_epoch_copy(decoded.obj):  # counted apart: it goes with its epoch
            return ("session", _seen_id(decoded.vip, backend, dict(stat.match)), (decoded.vip, backend))
        return ("pin", (decoded.vip, backend))

    def _forget_lost(self, dpid: int, sent_at: float, seen: set[int]) -> list[Out]:
        """The switch's session table, read whole: a session of this switch older than the
        request whose flow is not there has ended without our hearing (its flow-removed was lost
        while the switch was away): it stops counting."""
        lost = [s for s in self.sessions.by_id.values() if s.dpid == dpid and s.created < sent_at
                and s.session_id not in seen]
        out: list[Out] = []
        for sess in lost:
            self.sessions.remove(sess.session_id)
            self.traffic.session_gone(sess.session_id, (sess.vip_id, sess.backend))
            out += self.lingering.ended(_pair(sess), self._has_sessions)
        if lost:
            LOG.warning("switch %016x: %d sessions are no longer in its session table: forgotten", dpid, len(lost))
        return out

    def _adopt(self, dpid: int, stat: FlowStat, now: float, seen: set[int]) -> bool:
        """Take back one session flow an earlier run left in the switch (a controller restart or
        a reconnect): its connection counts again, and its flow-removed ends it. Every
        connection's flow the switch shows goes into ``seen``."""
        decoded = cookies.decode(stat.cookie)
        if (decoded is None or decoded.stage != cookies.STAGE_SESSION or decoded.generation != 0
                or decoded.vip == cookies.LINGER_VIP or not decoded.obj or stat.eth_dst is None):
            return False  # not a connection's flow
        seen.add(decoded.obj)
        m = dict(stat.match)
        protocol = PROTO_NAMES.get(m.get("ip_proto"))
        if protocol is None:
            return False
        _, src_field, dst_field = L4[protocol]
        try:
            key = ConnKey(m["ip_proto"], IPv4(m["ipv4_src"]), m[src_field], IPv4(m["ipv4_dst"]), m[dst_field])
            backend = self.running.ctx.scheme.decode(macs.parse_mac(stat.eth_dst))
        except (KeyError, ValueError, macs.MacError):
            return False
        vip = self.running.vips.by_key.get(VipKey.of_connection(key))
        return (vip is not None and vip.controller_picks
                and self.sessions.adopt(key, vip.id, backend, decoded.obj, decoded.vip, now - stat.duration,
                                        dpid) is not None)

    # --- what status commands and metrics read ---

    def snapshot(self, now: float) -> dict[str, Any]:
        """The whole state as plain data (see lbapp.snapshot)."""
        return snapshot(self, now)


def next_hop_flows(site: Site, gw: Gateway, clear: bool = True) -> list[Any]:
    """The next-hop flows of every route through ``gw``, at its learned MAC and port."""
    return [m for route_id, route in site.ctx.routes() if route.via == gw.name
            for m in next_hop.route_flows(site.ctx, route_id, gw.mac, gw.port, clear)]


def _pair(sess: Session) -> VipBackend:
    """The (VIP, backend) a session belongs to."""
    return VipBackend(VipKey.of_connection(sess.key), sess.backend)


def _seen_id(vip_id: int, backend: IPv4, match: dict) -> tuple:
    """How traffic knows a pin: conntrack VIP's epoch copy of a backend's pinned flow."""
    return ("epoch", vip_id, backend, session_flows.epoch_of(match))


def _pin_of(backend: int, match: dict) -> VipBackend | None:
    """The (VIP, backend) of a lingering pin flow, from its match and cookie object id."""
    protocol = PROTO_NAMES.get(match.get("ip_proto"))
    if protocol is None or "ipv4_dst" not in match or L4[protocol][2] not in match:
        return None
    return VipBackend(VipKey(IPv4(match["ipv4_dst"]), match["ip_proto"], match[L4[protocol][2]]), IPv4(backend))


_REASONS = {ofp.OFPRR_IDLE_TIMEOUT: "idle", ofp.OFPRR_HARD_TIMEOUT: "hard timeout", ofp.OFPRR_DELETE: "deleted"}


def packet_out(data: bytes, in_port: int, actions: list) -> parser.OFPPacketOut:
    return parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port, actions=actions,
                               data=data)
