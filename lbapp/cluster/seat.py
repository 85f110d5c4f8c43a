"""The app's side of a cluster (lbapp.cluster.member calls these on its thread): a mixin of
:class:`lbapp.app.LbApp`, which owns the switch connections, the lock and the Balancer."""
from __future__ import annotations

import logging
import time

from lbapp.cluster.roles import role_request
from lbapp.handlers import succession

LOG = logging.getLogger("lbapp")
ROLES = {True: "master", False: "slave"}


class ClusterSeat:
    """Roles asked of the switches when the lead changes, and the health findings shared with
    the next leader."""

    def _claim(self, dpid: int, master: bool, generation: int) -> bool:
        """Ask switch ``dpid`` for our role (lbapp.cluster.roles); whether we are its master."""
        with self.lock:
            dp = self.switches.datapaths.get(dpid)
            if dp is not None:
                dp.send_msg(role_request(master, generation, dp))
                self.switch_roles[dpid] = ROLES[master]
                LOG.info("switch %016x: asked to be its %s (generation %d)", dpid, ROLES[master], generation)
        return master and dp is not None

    def _lead_changed(self, leads: bool, generation: int) -> None:
        """The cluster member won or lost the lead (on its thread): every switch is told."""
        with self.lock:
            dpids = sorted(self.switches.datapaths)
        for dpid in dpids:
            if leads:  # a takeover as after a restart (read back, not wiped), in one bundle, next hops inherited
                self._switch_in_use(dpid, relearn=False)
            else:
                self._claim(dpid, False, generation)

    def _cluster_data(self, now: float) -> dict:
        """The member's view of the cluster and the role it asked of each switch connected to it."""
        roles = {f"{dpid:016x}": self.switch_roles.get(dpid, "not asked yet") for dpid in sorted(self.switches.datapaths)}
        return self.member.as_data(now) | {"switches": roles}

    def _findings(self) -> dict:
        """The health checks' findings and the next hops, for the next leader."""
        with self.lock:
            return succession.findings(self.balancer.running, self.balancer.checker.checks)

    def _inherit_findings(self, findings: dict) -> None:
        """Won the lead: the previous leader's findings first (before any switch is taken)."""
        self._call(self.balancer.inherit, findings, time.time())
        LOG.info("cluster: %d findings (health checks, next hops) taken over from the previous leader", len(findings))
