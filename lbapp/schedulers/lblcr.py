"""lblcr: locality-based least connection with replication (IPVS ``lblcr``). Each destination
IP maps to a set of backends; a connection goes to the least loaded member; when that member is
overloaded, the least loaded backend overall joins the set; a set unchanged for
``SHRINK_AFTER`` seconds drops its busiest member."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler, least, wlc_cost, loads
from lbapp.schedulers.lblc import overloaded
from lbapp.schedulers.registry import register

SHRINK_AFTER = 360.0  # IPVS's default: 6 minutes


@dataclass
class ReplicaSet:
    """One destination's backend set, and when it last changed; owned by its lblcr scheduler."""

    members: list[IPv4] = field(default_factory=list)
    modified: float = 0.0


@register
class LocalityLeastConnectionReplicated(Scheduler):
    """IPVS ``lblcr``; keeps each destination IP's replica set (``sets``) between picks."""

    name = "lblcr"

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        members = self.sets[key.dst_ip].members if key.dst_ip in self.sets else []
        return (f"locality-based least connections with replication: destination {key.dst_ip}'s set is "
                f"[{', '.join(map(str, members))}]: its least loaded member unless overloaded; else the smallest "
                f"sessions/weight joins ({loads(self.eligible, active)})")

    def rebuild(self) -> None:
        self.sets: dict[IPv4, ReplicaSet] = getattr(self, "sets", {})

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        eligible = self.eligible
        by_ip = self.eligible_by_ip
        rs = self.sets.setdefault(key.dst_ip, ReplicaSet(modified=now))
        rs.members = [ip for ip in rs.members if ip in by_ip]  # drained or removed backends leave
        if len(rs.members) > 1 and now - rs.modified > SHRINK_AFTER:
            busiest = max(rs.members, key=lambda ip: active.get(ip, 0) / by_ip[ip].weight)
            rs.members.remove(busiest)
            rs.modified = now
        member = least([by_ip[ip] for ip in rs.members], wlc_cost(active))
        if member is None or overloaded(by_ip[member], eligible, active):
            added = least(eligible, wlc_cost(active))
            if added is None:
                return member
            if added not in rs.members:
                rs.members.append(added)
                rs.modified = now
            member = added
        return member
