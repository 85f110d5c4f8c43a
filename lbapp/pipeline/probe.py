"""Stage probe (table 15): answers to health probes go to the controller. Probes leave from the
balancer's own address (lbapp.probes); what comes back to that address is punted only if it can
be an answer: from a checked backend (or its VIP) to a probe's source port or an echo reply, or
an unreachable, through the probe meters (lbapp.pipeline.meters), so a flood at that address
costs the controller no more than ``balancer.probe_limit`` packets a second."""
from __future__ import annotations

from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, to_controller
from lbapp.pipeline.context import SwitchView
from lbapp.pipeline.tables import METER_PROBE, METER_UNREACHABLE, TABLES
from lbapp.shared import PROBE_PORT_BASE as PORT_BASE
from lbapp.shared import PROBE_PORT_MASK as PORT_MASK
from lbapp.shared import TCP, UDP

TABLE = TABLES["probe"]
ICMP = 1
ICMP_ECHO_REPLY, ICMP_UNREACHABLE = 0, 3


def balancer_flows(view: SwitchView) -> list:
    """Answers from where a probe's answer can come from (a checked backend, its VIP) go
    through the probe meter; unreachables (a router may send them) from anywhere, through a
    meter of their own: a flood of forged answers from other addresses never reaches the
    controller, and one of forged unreachables does not crowd out the answers."""
    sources = view.ctx.probe_answer_sources()
    if not sources:
        return []  # the stage is empty unless a backend is checked (declared optional)
    cookie = cookies.make(TABLE.stage, generation=view.ctx.generation)
    answers = [{"ip_proto": TCP, "tcp_dst": (PORT_BASE, PORT_MASK)}, {"ip_proto": UDP, "udp_dst": (PORT_BASE, PORT_MASK)},
               {"ip_proto": ICMP, "icmpv4_type": ICMP_ECHO_REPLY}]
    flows = [TABLE.flow("answer", {"eth_type": ETH_TYPE_IP, "ipv4_src": str(ip), **m}, cookie=cookie,
                        actions=[to_controller()], meter=METER_PROBE) for ip in sources for m in answers]
    return flows + [TABLE.flow("answer", {"eth_type": ETH_TYPE_IP, "ip_proto": ICMP, "icmpv4_type": ICMP_UNREACHABLE},
                               cookie=cookie, actions=[to_controller()], meter=METER_UNREACHABLE)]
