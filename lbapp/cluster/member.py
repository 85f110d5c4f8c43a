"""A member of a cluster of lbapp controllers: a thread that campaigns for the lead through an
etcd lease and, while it leads, keeps the lease alive. It tells the app each change of its
lead; the app asks :meth:`Member.leads` before each write to a switch (lbapp.app)."""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

from lbapp.cluster.etcd import Etcd, EtcdUnavailable
from lbapp.cluster.leadership import Leadership
from lbapp.cluster.sharedconfig import SharedConfig

LOG = logging.getLogger("lbapp")
PREFIX = "/lbapp/"


class Member:
    """Owns this member's :class:`Leadership` (the only writer) and its lease. ``on_change(leads,
    generation)`` is called on the member's thread when it wins the lead (its generation), when
    it follows a leader (the leader's) and when it loses the lead (its own: the switches may
    still hold it)."""

    def __init__(self, etcd: Etcd, cluster: str, name: str, ttl: int,
                 on_change: Callable[[bool, int], None], on_config: Callable[[str], None] | None = None,
                 findings: Callable[[], dict] | None = None, on_findings: Callable[[dict], None] | None = None) -> None:
        self.etcd, self.name, self.ttl = etcd, name, ttl
        self.health_key = f"{PREFIX}{cluster}/health"
        self.findings, self.on_findings = findings, on_findings  # health checks' findings: ours, to inherit
        self._shared_findings: dict | None = None  # as last put
        self.shared = SharedConfig(etcd, cluster)
        self.on_config = on_config  # told the cluster's config when another member changed it
        self.key = f"{PREFIX}{cluster}/leader"
        self.cluster = cluster
        self.members_prefix = f"{PREFIX}{cluster}/members/"  # each member's name, under its own lease
        self.members_seen: list[str] = []  # as last read
        self._registered: int | None = None  # the lease our name was put with
        self.leader_since: float | None = None  # local time this member saw the present lead begin
        self.leadership = Leadership(float(ttl))
        self.on_change = on_change
        self.lease: int | None = None
        self.leader_seen: tuple[str, int] | None = None  # (name, generation) of the leader, as last read
        self._stop = threading.Event()
        self._unreachable = False
        self._thread: threading.Thread | None = None

    def leads(self, now: float | None = None) -> bool:
        return self.leadership.leads(time.time() if now is None else now)

    def generation(self) -> int:
        """The generation the switches should know: ours while we lead, else the leader's."""
        if self.leadership.leader:
            return self.leadership.generation
        return self.leader_seen[1] if self.leader_seen else 0

    def as_data(self, now: float) -> dict:
        """This member and the cluster as it last saw them: lbapp status and /metrics."""
        leads = self.leads(now)
        leader = self.name if leads else self.leader_seen[0] if self.leader_seen else None
        return {"name": self.cluster, "member": self.name, "role": "leader" if leads else "follower",
                "leader": leader, "generation": self.generation() if leader else None,
                "led_seconds": round(now - self.leader_since, 1) if leader and self.leader_since else None,
                "members": list(self.members_seen), "etcd": "unreachable" if self._unreachable else "reachable"}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cluster-member", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Leave: the lease is revoked, so another member takes over at once, not after the TTL."""
        self._stop.set()
        if self.lease is not None:
            try:
                self.etcd.revoke(self.lease)
            except EtcdUnavailable as exc:
                LOG.warning("cluster: leaving without revoking the lease: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            failed = True
            try:
                self.step(time.time())
                if self._unreachable:
                    LOG.warning("cluster: etcd answers again")
                self._unreachable = failed = False
            except EtcdUnavailable as exc:
                if not self._unreachable:  # once per outage, not four times a second
                    LOG.warning("cluster: %s", exc)
                self._unreachable = True
            except Exception:  # the member thread never dies: the lead depends on it
                LOG.exception("cluster: a step failed")
            if self.leadership.leader and not self.leads():  # the lease may be gone: stop writing now
                self._lose("its lease was not renewed in time")
            # after a failure (etcd electing its own leader, a member gone) again soon: the lead
            # is trusted for 0.8 of the lease from the last renewal sent
            self._stop.wait(self.ttl / (20 if failed else 4))

    def step(self, now: float) -> None:
        """One round: a leader renews its lease; the cluster's config, if another member
        changed it; then a leader shares its findings, a follower campaigns (its lease granted
        once)."""
        if self.leadership.leader:  # the renewal first: nothing else may make it late
            if not self.etcd.keepalive(self.lease):
                self._lose("its lease expired")
                return
            self.leadership.refreshed(now)
        changed = self.shared.newer()
        if changed is not None and self.on_config is not None:
            self.on_config(changed)
        if self.leadership.leader:
            self._share_findings()
            self._roll_call()
            return
        if self.lease is None or not self.etcd.keepalive(self.lease):
            self.lease = self.etcd.grant(self.ttl)
        self._roll_call()
        revision = self.etcd.create(self.key, self.name, self.lease)
        if revision is not None:
            self.leadership.won(revision, now)
            self.leader_seen, self.leader_since = (self.name, revision), now
            LOG.warning("cluster: %s leads (generation %d)", self.name, revision)
            self._inherit_findings()
            self.on_change(True, revision)
            return
        found = self.etcd.get(self.key)
        seen = found[:2] if found else None
        if seen != self.leader_seen:
            self.leader_seen, self.leader_since = seen, now if seen else None
            if seen is not None:
                LOG.info("cluster: %s follows %s (generation %d)", self.name, *seen)
                self.on_change(False, seen[1])

    def _roll_call(self) -> None:
        """Our name under our lease (it goes when we do), and the members' names as they are."""
        if self._registered != self.lease:
            self.etcd.put(self.members_prefix + self.name, self.name, self.lease)
            self._registered = self.lease
        self.members_seen = sorted(self.etcd.under(self.members_prefix).values())

    def _share_findings(self) -> None:
        """The leader's health findings to etcd, when they changed: a next leader starts from them."""
        found = self.findings() if self.findings is not None else None
        if found is not None and found != self._shared_findings:
            self.etcd.put(self.health_key, json.dumps(found, sort_keys=True))
            self._shared_findings = found

    def _inherit_findings(self) -> None:
        """A new leader takes the previous one's findings (lbapp.state.health.HealthChecks.inherit)."""
        stored = self.etcd.get(self.health_key)
        if stored is None or self.on_findings is None:
            return
        try:
            found = json.loads(stored[0])
        except ValueError:
            LOG.warning("cluster: the shared health findings (%s) are not JSON: checks start afresh", self.health_key)
            return
        if isinstance(found, dict):
            self._shared_findings = None
            self.on_findings({str(k): str(v) for k, v in found.items()})

    def refused_as_stale(self) -> None:
        """A switch refused our role request as stale: a newer leader has it."""
        if self.leadership.leader:
            self._lose("a switch refused its role request as stale (a newer leader has it)")

    def _lose(self, why: str) -> None:
        self.leadership.lost()
        self.lease = None
        self.leader_seen, self.leader_since = None, None
        LOG.warning("cluster: %s no longer leads: %s; it stopped writing to the switches", self.name, why)
        self.on_change(False, self.leadership.generation)  # the switch may still hold ours


def from_options(options, on_change: Callable[[bool, int], None], config_text: str = "",
                 on_config: Callable[[str], None] | None = None, findings: Callable[[], dict] | None = None,
                 on_findings: Callable[[dict], None] | None = None) -> Member | None:
    """The member ``[lbapp] etcd``, ``cluster``, ``member`` and ``lease`` ask for (``lbapp run
    --etcd ...``), joined with its config file's ``config_text`` (lbapp.cluster.sharedconfig:
    ConfigDiffers if it is not the cluster's), or None: no etcd, one controller, as before."""
    urls = [u.strip() for u in (options.etcd or "").split(",") if u.strip()]
    if not urls:
        return None
    import socket
    name = options.member or f"{socket.gethostname()}:{options.api_port or 0}"
    lease = min(max(options.lease, 2), 60)  # (lbapp run refuses others; a plain os-ken manager may not)
    member = Member(Etcd(urls, timeout=lease / 4), options.cluster, name, lease, on_change, on_config, findings,
                    on_findings)
    member.shared.join(config_text)
    return member
