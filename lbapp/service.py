"""The balancer's logic: OpenFlow events in, OpenFlow messages out. No os-ken runtime, no clock.

Every entry point takes ``now`` and returns a list of ``(dpid, message)`` for the sender; the
messages are os-ken parser objects without a datapath, which the sender attaches, or, on the
per-connection hot path, pre-serialised ``RawMessage`` bytes (lbapp.pipeline.fastpath). The
state lives in objects that own it (lbapp.state, lbapp.handlers.readings, lbapp.healthcheck);
the Balancer routes each event to its room in lbapp.handlers and applies what comes back.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp import packets
from lbapp.config import Config
from lbapp.handlers import adoption, arp, connections, epochs, picking, succession, verdicts
from lbapp.handlers.readings import FlowStat, Readings, epoch_copy
from lbapp.healthcheck import Checker, origin_of
from lbapp.pipeline import assembly, cookies, meters
from lbapp.pipeline import session as session_flows
from lbapp.pipeline.actions import L4
from lbapp.reload import plan_reload
from lbapp.shared import PROTOCOL_NAMES, ConnKey, IPv4, VipBackend, VipKey
from lbapp.snapshot import snapshot
from lbapp.state.groups import SelectGroups
from lbapp.state.health import Change
from lbapp.state.latency import LatencyHistogram
from lbapp.state.lingering import Lingering
from lbapp.state.affinity import AffinityMemory
from lbapp.state.pinmemory import PinMemory
from lbapp.state.rates import Rates, followed
from lbapp.state.running import Running, derive, take
from lbapp.state.sessions import Session, Sessions

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]
_REASONS = {ofp.OFPRR_IDLE_TIMEOUT: "idle", ofp.OFPRR_HARD_TIMEOUT: "hard timeout", ofp.OFPRR_DELETE: "deleted"}


class Balancer:
    """The controller's whole state, and the one way to change it. It owns ``running`` (the
    config and what it implies, replaced whole by a reload), ``sessions``, ``pin_memory``
    (``pin: conntrack`` picks), ``affinities`` (persistence entries it wrote), ``connected``,
    ``groups`` (installed), ``lingering`` (removed backends' flows), ``readings`` (the switches'
    counters), ``checker``, ``rates``, ``counters`` (packets not served) and ``setup_latency``."""

    def __init__(self, cfg: Config, generation: int = 1, first_session_id: int = 1) -> None:
        self.running: Running = derive(cfg, generation)
        take(self.running)
        self.sessions = Sessions(first_session_id)
        self.connected: set[int] = set()
        self.groups = SelectGroups()
        self.lingering = Lingering()
        self.readings = Readings()
        self.pin_memory, self.affinities = PinMemory(), AffinityMemory()  # pin: conntrack picks; persistence
        self.counters: Counter[str] = Counter()
        self.packet_ins = 0
        self.rates = Rates()  # connections/s per (VIP, backend), packet-ins/s
        self.setup_latency = LatencyHistogram()
        self.checker = Checker()
        self.checker.load(self.running.backends.targets())

    @property
    def cfg(self) -> Config:
        return self.running.cfg

    def balancers_connected(self) -> list[int]:
        """The balancer switches of the running config that are connected, in dpid order."""
        return sorted(self.connected & set(self.running.sites))

    # --- switch lifecycle ---

    def switch_connected(self, dpid: int, now: float, relearn: bool = True) -> list[Out]:
        """Sweep our stale static flows, install this switch's pipeline, probe gateways. Without ``relearn``
        (the connection changed, not the switch) the next hops stay until a probe says otherwise."""
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
        # what an earlier run left is unknown: every static stage is swept (sessions stay: live connections)
        sweep = assembly.sweep(static.tables)
        groups, adopt = [], []
        if site is not None:
            groups = meters.remove_meters() + meters.balancer_meters(site.ctx)  # an earlier run's, replaced
            sweep += session_flows.sweep_epoch_copies(site.ctx, self.running.epochs)
            groups += self.groups.install(site.ctx, dpid, self.running.slots)
            # sessions left in the switch (by an earlier run, or before a reconnect): read back, counted
            adopt.append(self.readings.requests.request(dpid, "adopt", now, after_install=True))
        flows = self._static_flows(dpid, static)
        self.checker.recheck_behind(self.running, dpid, now)  # the path through it may have been down
        LOG.info("switch %016x connected as %s: installing %d flows", dpid, "+".join(static.roles), len(flows))
        return [(dpid, m) for m in sweep + groups + flows + adopt] + self.tick(now)

    def _static_flows(self, dpid: int, static: assembly.StaticFlows | None = None) -> list[Any]:
        """Every static flow of switch ``dpid``, its lingering pins too (the switch may have lost them)."""
        static = static or assembly.static_flows(self.running, self.lingering, dpid)
        site = self.running.sites.get(dpid)
        return static.flows + (self.lingering.pin_flows(site.ctx, dpid) if site is not None else [])

    def reconfigure(self, cfg: Config, now: float) -> list[Out]:
        """Apply a new config without losing a connection: lbapp.reload's plan, made first and taken whole."""
        plan = plan_reload(self.running, cfg, self.lingering, self.groups, self.connected,
                           [_served(s) for s in self.sessions.by_id.values()], self.checker.health_of)
        counted_by_switch = {vip.key: vip.id for vip in self.running.vips if vip.pins_in_conntrack}
        self.running, self.lingering, self.groups = plan.running, plan.lingering, plan.groups
        take(self.running)
        self.sessions.forget_vips(set(self.running.vips.by_key))
        for key, vip_id in counted_by_switch.items():  # its counts were the switch's: they go with its epochs
            if vip_id not in self.running.epochs or self.running.vips.by_id[vip_id].key != key:
                self.sessions.set_live(vip_id, Counter())
        self.readings.pinned.keep_only(set(self.running.epochs))
        self.checker.load(self.running.backends.targets())
        return plan.messages

    def switch_disconnected(self, dpid: int) -> None:
        self.connected.discard(dpid)
        self.groups.disconnected(dpid)
        self.readings.disconnected(dpid)
        LOG.warning("switch %016x disconnected", dpid)

    # --- periodic work ---

    def tick(self, now: float) -> list[Out]:
        """What is due: health probes and their timeouts, overload hand-overs, the end of
        ``pin: conntrack`` epochs, statistics readings, and ARP probes of the gateways."""
        running, balancers, requests = self.running, self.balancers_connected(), self.readings.requests
        found = self.checker.tick(now, origin_of(running, balancers))
        out = self._apply_verdicts(found.verdicts) + found.messages
        if self.rates.due(now):
            self.rates.sample(now, followed(self.sessions.total, self.packet_ins))
            limits = self.cfg.all_balancers()[0][1]  # with several balancers: the first one's limits
            out += picking.weigh_overload(running, self.rates, self.readings.switch_rates, requests, limits,
                                          balancers, now)
        periods = {vip_id: running.vips.by_id[vip_id].model.idle_timeout for vip_id in running.epochs}
        for vip_id in self.readings.pinned.ending(periods, now):
            out += epochs.next_epoch(running, requests, balancers, vip_id, now)
        self.pin_memory.expire(now)
        feedback = running.backends.feedback
        out += self.readings.due(balancers, feedback is not None and feedback.due(now), now)
        for dpid in balancers:
            site = running.sites[dpid]
            out += [arp.gateway_probe(site, dpid, gw.ip) for gw in site.next_hops.due_probes(now)]
        return out

    def inherit(self, findings: dict[str, str], now: float) -> list[Out]:  # a cluster's new leader (lbapp.cluster)
        return self._apply_verdicts(succession.inherit(self.running, self.checker.checks, findings, now))

    def barrier_reply(self, dpid: int, xid: int, now: float) -> list[Out]:  # judges late probes (lbapp.healthcheck)
        return self._apply_verdicts(self.checker.barrier_reply(dpid, xid, now))

    def remember_pins(self, found: list[tuple[ConnKey, IPv4]], now: float) -> int:  # lbapp.pinreader
        return connections.remember_pins(self.running, self.pin_memory, found, now)

    def _apply_verdicts(self, changes: list[Change]) -> list[Out]:
        """Health checks' verdicts (lbapp.handlers.verdicts); a failed backend's sessions end."""
        if not changes:
            return []
        applied = verdicts.apply(changes, self.running, self.sessions, self.groups.installed,
                                 self.balancers_connected())
        self._end_sessions(applied.ended.values())
        if applied.ended:
            LOG.warning("removed %d sessions of failed backends %s", len(applied.ended),
                        ", ".join(sorted({str(s.backend) for s in applied.ended.values()})))
        return applied.messages

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
                return connections.new_connection(self.running, self.sessions, self.readings.pinned, self.pin_memory,
                                                  self.affinities, self.counters, dpid, in_port, data, now)
            if stage == cookies.STAGE_CLASSIFY:
                out, not_believed = arp.gateway_arp(site, dpid, in_port, data, now)
                if not_believed:
                    self.counters["arp_not_believed"] += 1
                return out
            if stage == cookies.STAGE_ARP_PROXY:
                return arp.answer_for_backend(self.running, dpid, in_port, data)
            if stage == cookies.STAGE_PROBE:
                found = self.checker.answer(data)
                if found is None:
                    self.counters["stray_probe_answer"] += 1
                    return []
                return found.messages + self._apply_verdicts(found.verdicts)
        except packets.PacketError as exc:
            self.counters["bad_packet"] += 1
            LOG.warning("switch %016x port %d: ignored packet-in: %s", dpid, in_port, exc)
            return []
        LOG.debug("switch %016x: packet-in from a flow that is not ours (cookie %#x)", dpid, cookie)
        return []

    # --- flow-removed ---

    def flow_removed(self, dpid: int, cookie: int, reason: int, now: float, byte_count: int = 0,
                     match: dict | None = None, packet_count: int = 0) -> list[Out]:
        decoded = cookies.decode(cookie)
        if decoded is None or decoded.stage != cookies.STAGE_SESSION:
            return []
        if decoded.vip == cookies.LINGER_VIP:
            pair = _lingering_pin(decoded.obj, match or {})
            return self.lingering.pin_idle(dpid, pair, self._has_sessions) if pair else []
        if decoded.generation and session_flows.is_epoch_copy(decoded.obj):  # gone with its epoch
            backend = self.running.ctx.backend_by_id.get(session_flows.pinned_backend_id(decoded.obj))
            if backend is not None:
                self.readings.session_ended(epoch_copy(decoded.vip, backend, match or {}), (decoded.vip, backend),
                                            byte_count, packet_count)
            return []
        known = self.sessions.by_id.get(decoded.obj)
        if known is None or known.flow_vip != decoded.vip:
            return []  # a flow from an earlier controller run, not this run's session
        if reason == ofp.OFPRR_DELETE:  # not by us (a session goes before its flow): its flow comes back
            restored = adoption.give_back(self.running, self.sessions, self.readings.requests, dpid, known, now)
            if restored:
                self.counters["sessions_restored"] += 1
                return restored
        sess = self.sessions.remove(decoded.obj)
        self.readings.session_ended(sess.session_id, (sess.vip_id, sess.backend), byte_count, packet_count)
        LOG.debug("session %d ended (%s) after %.1fs: %s:%d -> %s; %d live", sess.session_id,
                  _REASONS.get(reason, reason), now - sess.created, sess.key.src_ip, sess.key.src_port, sess.backend,
                  len(self.sessions))
        return self.lingering.ended(_served(sess), self._has_sessions)

    def _has_sessions(self, pair: VipBackend) -> bool:
        return any(_served(s) == pair for s in self.sessions.by_id.values())

    def _end_sessions(self, ended: Iterable[Session]) -> list[Out]:
        """Sessions that end without a flow-removed (their flows deleted, or found gone)."""
        out: list[Out] = []
        for sess in list(ended):
            if self.sessions.remove(sess.session_id) is not None:
                self.readings.session_gone(sess.session_id, (sess.vip_id, sess.backend))
                out += self.lingering.ended(_served(sess), self._has_sessions)
        return out

    # --- statistics: sessions read back, and the readings ---

    def request_failed(self, dpid: int, xid: int) -> None:  # an OpenFlow error answered request xid
        purpose = self.readings.requests.failed(dpid, xid)
        if purpose is not None:
            LOG.warning("switch %016x refused a session-table statistics request (%s): given up", dpid, purpose)

    def session_stats(self, dpid: int, xid: int, stats: list[FlowStat], now: float, more: bool = False
                      ) -> list[Out]:
        """One part of the reply to a session-table statistics request, told by its ``xid``."""
        purpose = self.readings.requests.purpose(dpid, xid)
        if purpose == "adopt":
            return self._adopt(dpid, xid, stats, now, more)
        if purpose is None:
            return []
        learned = self.readings.reply(purpose, dpid, xid, stats, more, now, self.running, self.sessions)
        for vip_id, live in learned.live.items():
            self.sessions.set_live(vip_id, live)
        backends = self.running.backends
        if learned.loads is not None and backends.feedback.observe(now, learned.loads, backends.admin_weights_by_ip()):
            for vip in self.running.vips:
                vip.reweigh(backends.weights)
        return []

    def _adopt(self, dpid: int, xid: int, stats: list[FlowStat], now: float, more: bool) -> list[Out]:
        """A session table read whole (lbapp.handlers.adoption): what it shows taken back, the rest settled."""
        reading = self.readings.requests.adopting[xid]
        adoption.take_back(self.sessions, self.running, dpid, stats, now, reading)
        self.readings.requests.answered(xid, more)
        if more:
            return []
        out, ended = adoption.settle(self.running, self.sessions, dpid, reading)
        if out:
            self.counters["sessions_restored"] += len(out)
        if not reading.kept:  # it lost its tables; flushed while connected, its static flows may be gone too
            out += [] if reading.after_install else [(dpid, m) for m in self._static_flows(dpid)]
            out.append((dpid, session_flows.kept_mark()))
        return out + self._end_sessions(ended)

    def snapshot(self, now: float, **page: Any) -> dict[str, Any]:  # the state as plain data (lbapp.snapshot)
        return snapshot(self, now, **page)


def _served(sess: Session) -> VipBackend:
    """The (VIP, backend) a session belongs to."""
    return VipBackend(VipKey.of_connection(sess.key), sess.backend)


def _lingering_pin(backend: int, match: dict) -> VipBackend | None:
    """The (VIP, backend) of a lingering pin flow, from its match and cookie object id."""
    protocol = PROTOCOL_NAMES.get(match.get("ip_proto"))
    if protocol is None or "ipv4_dst" not in match or L4[protocol][2] not in match:
        return None
    return VipBackend(VipKey(IPv4(match["ipv4_dst"]), match["ip_proto"], match[L4[protocol][2]]), IPv4(backend))
