"""Stage pin (table 25): commit connections the switch picked a backend for (``selection:
switch``, or a controller VIP under overload) to conntrack, with the backend's address (left in
reg1 by the select group's bucket) as the connection's mark. A persistent VIP's connection also
writes its client's affinity entry (learn(): lbapp.pipeline.affinity)."""
from __future__ import annotations

from lbapp.pipeline import affinity, cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, conntrack, move
from lbapp.pipeline.context import SwitchView
from lbapp.pipeline.tables import CT_ZONE, REG_PERSIST, REG_PICKED, TABLES

TABLE = TABLES["pin"]


def balancer_flows(view: SwitchView) -> list:
    ctx = view.ctx
    if not ctx.balanced_vips():
        return []  # the stage is empty unless a VIP uses it (declared optional: no miss flow then)
    cookie = cookies.make(TABLE.stage, generation=ctx.generation)
    commit = conntrack(CT_ZONE, commit=True, mark_from=move(REG_PICKED, "ct_mark", 32))
    groups = {ctx.persistence_id(vip_id, vip): vip.persistence for vip_id, vip in ctx.balanced_vips() if vip.persistence}
    # a persistence group's flow carries its id as VIP id: it is its VIPs' (a reload of them sends it)
    return [TABLE.flow("remember", {"eth_type": ETH_TYPE_IP, REG_PERSIST: pid}, cookie=cookie | cookies.make(
                TABLE.stage, vip=pid), goto="translate",
                       actions=[commit, affinity.learn(pid, persistence.netmask, persistence.timeout)])
            for pid, persistence in sorted(groups.items())] + [
        TABLE.flow("commit", {"eth_type": ETH_TYPE_IP}, cookie=cookie, actions=[commit], goto="translate")]
