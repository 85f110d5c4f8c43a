"""What a cluster's leader leaves its successor (lbapp.cluster shares it through etcd): each
decided health check's state and each balancer's next hops, as flat ``{key: text}``. A new
leader starts from them, so it neither takes a backend found down back at once nor sends the
clients' traffic nowhere while it asks for the gateways' MACs again."""
from __future__ import annotations

from lbapp.state.health import Change, HealthChecks
from lbapp.state.running import Running


def findings(running: Running, checks: HealthChecks) -> dict[str, str]:
    hops = [site.next_hops.findings(dpid) for dpid, site in running.sites.items()]
    return checks.findings() | {key: text for found in hops for key, text in found.items()}


def inherit(running: Running, checks: HealthChecks, found: dict[str, str], now: float) -> list[Change]:
    """Take ``found`` (as :func:`findings` wrote it): the health checks' changes it makes."""
    for dpid, site in running.sites.items():
        site.next_hops.inherit(found, dpid, now)
    return checks.inherit(found)
