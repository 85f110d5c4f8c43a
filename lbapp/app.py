"""The os-ken app: a thin shim. It turns events into calls on :class:`lbapp.service.Balancer`
and hands the returned messages to one sender. Loadable by any os-ken/Ryu-style manager:
the config file comes from ``[lbapp] config`` in the manager's config or ``$LBAPP_CONFIG``.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, HANDSHAKE_DISPATCHER, MAIN_DISPATCHER,
                                       set_ev_cls)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from lbapp import api, apitoken, oskenfix
from lbapp.apientries import ApiEntries
from lbapp.cluster.member import from_options as cluster_member
from lbapp.cluster.roles import is_stale
from lbapp.cluster.seat import ClusterSeat
from lbapp.hangup import reload_on_sighup
from lbapp.config import ConfigError, load_config
from lbapp.config.load import read_config_text
from lbapp.ctkeeper import ZonePolicyKeeper
from lbapp.handlers.readings import FlowStat
from lbapp.pinreader import PinReader
from lbapp.pipeline import bundles, cookies, fastpath
from lbapp.sender import Sender
from lbapp.service import Balancer
from lbapp.switches import SwitchConnections

LOG = logging.getLogger("lbapp")

cfg.CONF.register_opts([cfg.StrOpt("config", default=None, help="lbapp YAML config file"),
                        cfg.IntOpt("burst", default=256, min=1,
                                   help="replies held back at most while packet-ins queue (1: send each at once)"),
                        cfg.IntOpt("bundle_min", default=bundles.BUNDLE_MIN_DEFAULT, min=0,
                                   help="session flow-mods in a held burst from which it goes as one bundle "
                                        "(0: never)"),
                        cfg.StrOpt("api_listen", default="127.0.0.1", help="address of the HTTP API"),
                        cfg.IntOpt("api_port", default=0, min=0, max=65535,
                                   help="port of the HTTP API (0: no API)"),
                        cfg.StrOpt("api_token_file", default="",
                                   help="the API's write token, made 0600 at first start (default "
                                        "/run/lbapp/api-PORT.token as root)"),
                        cfg.StrOpt("etcd", default="", help="etcd member URLs, comma-separated: join a cluster of "
                                                            "lbapp controllers (none: this one is the whole control "
                                                            "plane)"),
                        cfg.StrOpt("cluster", default="lbapp", help="the cluster's name (its keys in etcd)"),
                        cfg.StrOpt("member", default="", help="this member's name (default host:api_port)"),
                        cfg.IntOpt("lease", default=5,  # 2-60, checked by lbapp run
                                   help="seconds: a leader that cannot renew its etcd lease in that time stops "
                                        "writing, and another takes over")],
                       group="lbapp")

TICK_SECONDS = 0.1  # health probes and their timeouts are due at this grain


class LbApp(ApiEntries, ClusterSeat, app_manager.OSKenApp):
    """The os-ken app. It owns the switch connections (``switches``: which one speaks for each
    datapath id), the ``lock`` every call into the Balancer holds, the ``sender`` and, in a
    cluster, its ``member``; event handlers, the ticker and the API change them under ``lock``
    (``edit_lock`` orders changes to the config file). The Balancer owns all the rest."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        oskenfix.apply()  # before any switch connects: ended connections must not keep their threads
        reload_on_sighup(self.reload)  # under a plain os-ken manager; before the apps' threads start
        oskenfix.intercept_events(self, self._first_look)
        self.config_path = cfg.CONF.lbapp.config or os.environ.get("LBAPP_CONFIG")
        if not self.config_path:
            raise RuntimeError("lbapp needs a config file: [lbapp] config = FILE, or LBAPP_CONFIG=FILE")
        # generation 0 marks session flows; static flows take 1..MAX_GENERATION
        self.balancer = Balancer(load_config(self.config_path),
                                 generation=random.randrange(1, cookies.MAX_GENERATION + 1),
                                 first_session_id=random.randrange(1, 1 << 31))
        self.switches = SwitchConnections()  # which connection speaks for each datapath id
        # os-ken 4 runs the event loop and our ticker on native threads: one lock around the logic
        self.lock = threading.Lock()
        self.sender = Sender(self.switches.datapaths, burst=cfg.CONF.lbapp.burst, bundle_min=cfg.CONF.lbapp.bundle_min,
                             setup_latency=self.balancer.setup_latency.observe)
        self.edit_lock = threading.Lock()  # API changes to the config file, one at a time
        self.zone_policy = ZonePolicyKeeper()
        self.pin_reader = PinReader(self.balancer.remember_pins, self.lock, self._pins_to_read)
        self.api = None
        self.reloads: Counter[str] = Counter()  # of the config file (SIGHUP, the API): applied, refused
        self.switch_roles: dict[int, str] = {}  # dpid -> the role last asked of it (lbapp.cluster.seat)
        self.member = cluster_member(cfg.CONF.lbapp, self._lead_changed, read_config_text(Path(self.config_path)),
                                     self._config_published, self._findings, self._inherit_findings)  # None: alone

    def start(self):
        # every app of the manager registered what it watches by now: packet-ins are read raw
        # unless another app watches them too (then os-ken's events bring them to every app)
        watchers = oskenfix.watchers(ofp_event.EventOFPPacketIn)
        if watchers <= {self.name}:
            oskenfix.take_raw(ofproto_v1_3.OFP_VERSION, ofproto_v1_3.OFPT_PACKET_IN, self._raw_packet_in)
        else:
            LOG.info("packet-ins come as os-ken's events: %s watch them too", ", ".join(sorted(watchers - {self.name})))
        thread = super().start()
        self.threads.append(hub.spawn(self._ticker))
        if self.member is not None:
            self.member.start()
        if cfg.CONF.lbapp.api_port:
            token_file = cfg.CONF.lbapp.api_token_file or str(apitoken.default_path(cfg.CONF.lbapp.api_port))
            self.api = api.serve(self, cfg.CONF.lbapp.api_listen, cfg.CONF.lbapp.api_port,
                                 apitoken.ensure(token_file), token_file)
        return thread

    def stop(self) -> None:
        oskenfix.take_raw(ofproto_v1_3.OFP_VERSION, ofproto_v1_3.OFPT_PACKET_IN, None)
        if self.member is not None:
            self.member.stop()
        if self.api is not None:
            self.api.shutdown()
            self.api.server_close()
        super().stop()

    def _ticker(self) -> None:
        while self.is_active:
            try:
                with self.lock:
                    taken = self.switches.expired(time.time())
                for dpid in taken:  # a newcomer took over from a silent connection
                    self._switch_in_use(dpid, relearn=True)
                if self.member is None or self.member.leads():  # a follower's probes would go nowhere
                    self._call(self.balancer.tick, time.time())
                self.pin_reader.tick(time.time())
            except Exception:  # the ticker never dies: probes, health checks and rates depend on it
                LOG.exception("a tick failed; ticking on")
            hub.sleep(TICK_SECONDS)

    def _raw_packet_in(self, dp, buf: bytearray) -> bool:
        """Each packet-in's bytes, handled on the switch connection's receive thread before
        os-ken parses them (:mod:`lbapp.oskenfix`; its queue and objects cost more than our
        whole pick, issue 15). Before the handshake ended: left to os-ken (it drops them)."""
        received = time.perf_counter()
        if dp.state != MAIN_DISPATCHER or dp.id is None:
            return False
        if not self.switches.in_use(dp):  # a connection claiming an id in use: nothing of it is believed
            return True
        parsed = fastpath.parse_packet_in(buf)
        if parsed is None:
            LOG.warning("switch %016x: ignored a malformed packet-in (%d bytes)", dp.id, len(buf))
        else:
            self._punted(dp, *parsed, received)
        return True

    def _first_look(self, ev, state) -> bool:
        """Each event os-ken hands the app, on the switch connection's receive thread
        (:func:`lbapp.oskenfix.intercept_events`). A packet-in that comes as an event (beside
        another app that watches packet-ins) is handled right here: True. Other events queue as
        usual, after any replies held back for a burst of packet-ins are sent."""
        if ev.__class__ is ofp_event.EventOFPPacketIn and state == MAIN_DISPATCHER:
            self._packet_in(ev, received=time.perf_counter())
            return True
        if ev.__class__ is ofp_event.EventOFPEchoReply:  # at once: a queue of packet-ins must not delay it
            with self.lock:
                self.switches.echo_reply(ev.msg.datapath, ev.msg.data)
            return True
        if self.sender.pending:
            try:
                with self.lock:
                    self.sender.flush()
            except Exception:  # on the switch's receive thread: never end its connection
                LOG.exception("sending held replies failed")
        return False

    def _call(self, method, *args, more_waiting: bool = False, started: float | None = None,
              atomic: bool = False) -> bool:
        """Run one entry point of the logic under the lock and hand what it returns to the
        sender (False: not written, this member does not lead). With ``more_waiting``
        (packet-ins, more bytes from the switch already arrived) replies may wait (why:
        :meth:`lbapp.sender.Sender.add`); ``started``: a new connection's arrival time;
        ``atomic``: a pipeline, each switch changes over in one bundle."""
        with self.lock:  # sent under the lock too: threads' outputs reach the switch in order
            out = method(*args)
            if self.member is not None and not self.member.leads():  # a member that does not lead never writes
                return False
            if atomic:
                self.sender.send_atomic(out)
            else:
                self.sender.add(out, more_waiting=more_waiting, started=started)
            return True

    def reload(self) -> None:
        """Re-read the config file (SIGHUP); an invalid file is reported and the running config kept."""
        try:
            self._reload_file()
        except ConfigError as exc:
            LOG.error("reload refused, keeping the running config: %s", exc)
        except Exception:  # a reload never takes the controller down
            LOG.exception("reload of %s failed", self.config_path)

    def _apply(self, new) -> None:
        LOG.info("reloading %s", self.config_path)
        self._call(self.balancer.reconfigure, new, time.time())

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev) -> None:
        # ev.msg.datapath_id, not dp.id: os-ken's own handler sets dp.id from this same message
        # on another thread, and may not have run yet.
        dp, dpid = ev.msg.datapath, ev.msg.datapath_id
        with self.lock:
            taken = self.switches.connected(dp, dpid, time.time())
        if taken:
            self._switch_in_use(dpid, relearn=True)

    def _switch_in_use(self, dpid: int, relearn: bool) -> None:
        """A connection now speaks for ``dpid``: the switch gets its pipeline in one bundle, what an
        earlier run left swept in the same commit (no gap), the time it took logged (without
        ``relearn``, a connection taking over: its ports stay as learned). In a cluster, as its
        master only."""
        if self.member is not None and not self._claim(dpid, self.member.leads(), self.member.generation()):
            return
        started = time.perf_counter()
        if self._call(self.balancer.switch_connected, dpid, time.time(), relearn, atomic=True):
            LOG.info("switch %016x: pipeline built and sent in one bundle in %.2f s", dpid,
                     time.perf_counter() - started)
        if dpid in self.balancer.running.sites:  # its datapath may be new: the zone policy again
            threading.Thread(target=self._keep_conntrack, args=(dpid,), name="zone-policy", daemon=True).start()

    def _keep_conntrack(self, dpid: int) -> None:
        """A balancer connected: its zone policy in force, and (a restarted controller has no
        memory) the pins its conntrack holds remembered (lbapp.pinreader)."""
        self.zone_policy.ensure(dpid)
        self.pin_reader.read()

    def _pins_to_read(self) -> bool:
        """Some VIP pins in conntrack and some connected balancer is a bridge of this machine."""
        balancer = self.balancer
        return (any(vip.pins_in_conntrack for vip in balancer.running.vips)
                and any(self.zone_policy.local(dpid) for dpid in balancer.balancers_connected()))

    @set_ev_cls(ofp_event.EventOFPEchoReply, [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _echo_reply(self, ev) -> None:  # registered so os-ken hands echo replies on: _first_look takes them
        pass

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _dead(self, ev) -> None:
        dp = ev.datapath
        with self.lock:
            what = self.switches.gone(dp)
            if what == "released":
                self.balancer.switch_disconnected(dp.id)
        if what == "handed over":
            self._switch_in_use(dp.id, relearn=False)  # its pipeline, as we know it

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev, received: float | None = None) -> None:
        """Registered so os-ken routes packet-ins to this app; called by :meth:`_first_look` on
        the receive thread, with the packet-in's arrival time."""
        msg = ev.msg
        if not self.switches.in_use(msg.datapath):
            return
        in_port = msg.match.get("in_port")
        if in_port is None:
            LOG.warning("switch %016x: ignored a packet-in without in_port (cookie %#x)", msg.datapath.id, msg.cookie)
            return
        self._punted(msg.datapath, msg.cookie, in_port, msg.data, received)

    def _punted(self, dp, cookie: int, in_port: int, data: bytes, received: float | None) -> None:
        """One packet-in to the logic; ``received``: its arrival (a new connection's setup time
        starts there)."""
        started = received if cookies.is_new_connection(cookie) else None
        try:
            self._call(self.balancer.packet_in, dp.id, in_port, cookie, data, time.time(),
                       more_waiting=oskenfix.more_to_read(dp), started=started)
        except Exception:  # the controller never dies on a packet, nor does the switch's connection
            LOG.exception("switch %016x: packet-in (cookie %#x, %d bytes) failed", dp.id, cookie, len(data))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def _flow_removed(self, ev) -> None:
        msg = ev.msg
        if not self.switches.in_use(msg.datapath):
            return
        self._call(self.balancer.flow_removed, msg.datapath.id, msg.cookie, msg.reason, time.time(), msg.byte_count,
                   dict(msg.match.items()), msg.packet_count)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev) -> None:
        if self.switches.in_use(ev.msg.datapath):
            self._call(self.balancer.barrier_reply, ev.msg.datapath.id, ev.msg.xid, time.time())

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev) -> None:
        msg = ev.msg
        if not self.switches.in_use(msg.datapath):
            return
        more = bool(msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE)  # OVS splits large replies
        self._call(self.balancer.session_stats, msg.datapath.id, msg.xid, [_flow_stat(s) for s in msg.body],
                   time.time(), more)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev) -> None:
        msg = ev.msg
        dpid = msg.datapath.id or 0  # an error before the handshake's features reply
        if self.member is not None and is_stale(msg.type, msg.code):
            LOG.warning("switch %016x refused our role request as stale: a newer leader has it", dpid)
            self.member.refused_as_stale()
            return
        LOG.error("switch %016x: OpenFlow error type=%d code=%d on %s", dpid, msg.type, msg.code, msg.data[:64].hex())
        if self.switches.in_use(msg.datapath):  # a statistics request it refused stops waiting
            with self.lock:
                self.balancer.request_failed(dpid, msg.xid)


def _flow_stat(stat) -> FlowStat:
    eth_dst = next((a.value for inst in stat.instructions for a in getattr(inst, "actions", ())
                    if getattr(a, "key", None) == "eth_dst"), None)
    return FlowStat(stat.cookie, stat.byte_count, stat.duration_sec + stat.duration_nsec / 1e9,
                    tuple(stat.match.items()), eth_dst, stat.packet_count, stat.priority)
