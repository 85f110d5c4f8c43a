"""The conntrack zone policy kept in force on each balancer's OVS by the running controller.

``pin: conntrack``, ``selection: switch`` and the flood hand-over pin connections in conntrack
zone 27, and a pin outlives OVS's 30 s SYN_SENT timeout only under the zone's timeout policy
(lbapp.ctzone). It lives in OVSDB, outside OpenFlow, and OVS puts it in force only on a datapath
that exists when it changes: a re-created datapath (ovs-vswitchd restarted, the last bridge gone)
runs without it. So each time a balancer switch connects, the controller applies it again when
that switch is a bridge of this machine's OVS, and otherwise warns once with the command to run
where the switch is.
"""
from __future__ import annotations

import logging
import threading
import time

from lbapp import ctzone
from lbapp.environment import EnvironmentProblem

LOG = logging.getLogger("lbapp")


class ZonePolicyKeeper:
    """Owns what the controller knows of the zone policy per balancer (datapath id -> state,
    detail, when). Changed only by :meth:`ensure`, which the app runs on a thread of its own when
    a balancer switch connects (each call runs a few ``ovs-vsctl`` commands)."""

    def __init__(self, seconds: int = ctzone.DEFAULT_PIN_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()  # the state
        self._applying = threading.Lock()  # one policy change at a time (two balancers on one OVS)
        self._state: dict[int, tuple[str, str, float]] = {}

    def ensure(self, dpid: int) -> None:
        """Apply the policy to the datapath of switch ``dpid`` if it is local; never raises."""
        with self._applying:
            state = self._apply(dpid)
        with self._lock:
            before = self._state.get(dpid)
            self._state[dpid] = state
        if state[0] == "in force":
            LOG.info("switch %016x: conntrack zone policy applied (%s)", dpid, state[1])
        elif before is None or before[0] != state[0]:  # warned once, until it changes
            LOG.warning("switch %016x: conntrack zone policy %s: %s; pinned connections idle for 30 s are picked "
                        "afresh", dpid, state[0], state[1])

    def _apply(self, dpid: int) -> tuple[str, str, float]:
        kind = ctzone.local_datapath_type(dpid)
        if kind is None:
            state = ("not checked", f"switch {dpid:016x} is not a bridge of this machine's OVS: run "
                     f"`lbapp ct-policy --apply --seconds {self.seconds}` where it is, after each OVS restart", time.time())
        else:
            try:
                ctzone.apply(kind, self.seconds)
                in_force = ctzone.in_ovsdb(kind, self.seconds)
                state = ("in force" if in_force else "failed",
                         f"zone {ctzone.CT_ZONE} of the {kind} datapath: {self.seconds} s"
                         + ("" if in_force else ", but OVSDB does not show it"), time.time())
            except EnvironmentProblem as exc:
                state = ("failed", str(exc), time.time())
        return state

    def local(self, dpid: int) -> bool:
        """Whether switch ``dpid`` was found to be a bridge of this machine's OVS."""
        with self._lock:
            found = self._state.get(dpid)
        return found is not None and found[0] != "not checked"

    def as_data(self) -> dict[str, dict]:
        with self._lock:
            return {f"{dpid:016x}": {"state": s, "detail": d, "at": at} for dpid, (s, d, at) in self._state.items()}
