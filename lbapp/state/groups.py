"""The select groups of the VIPs a balancer schedules: each VIP's slot table (which backend each
of the 256 dp_hash buckets names) and which balancer holds which VIP's group. A ``selection:
switch`` VIP picks by its group always; a controller-picked one during an overload
(lbapp.state.overload)."""
from __future__ import annotations

from typing import Any, Callable

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.pipeline import session
from lbapp.pipeline.context import Context
from lbapp.schedulers import slots as slot_tables
from lbapp.schedulers.base import BackendWeight
from lbapp.shared import IPv4

Slots = list[IPv4 | None]


def derive_slots(vips, weights: Callable[[int], list[BackendWeight]], previous: dict | None = None
                 ) -> dict[int, tuple[object, Slots]]:
    """VIP id -> (VIP key, slot table) for the VIPs a balancer schedules. A slot keeps its
    backend unless the new weights take it away; matched by key, since an id a removed VIP
    freed may now be another VIP's."""
    old = {key: table for key, table in (previous or {}).values()}
    return {vip.id: (vip.key, slot_tables.assign(weights(vip.id), old.get(vip.key)))
            for vip in vips if not vip.model.external_director}


class SelectGroups:
    """Which balancer holds which VIP's group (the slot tables come with the running config).
    Changed by the Balancer (``install`` on connect, ``disconnected``); a reload changes a copy
    (lbapp.reload.plan_reload), which the Balancer then takes."""

    def __init__(self, installed: dict[int, set[int]] | None = None) -> None:
        self.installed: dict[int, set[int]] = installed or {}  # balancer dpid -> VIP ids whose group it has

    def copy(self) -> "SelectGroups":
        return SelectGroups({dpid: set(ids) for dpid, ids in self.installed.items()})

    def install(self, ctx: Context, dpid: int, slots: dict[int, tuple[object, Slots]]) -> list[Any]:
        """A balancer (re)connected: an earlier run's groups may be there, so each is replaced
        (deleted, then added) rather than modified."""
        out = []
        for vip_id in sorted(slots):
            out += [session.remove_selection_group(vip_id),
                    session.selection_group(ctx, vip_id, slots[vip_id][1], ofp.OFPGC_ADD)]
        self.installed[dpid] = set(slots)
        return out

    def change(self, ctx: Context | None, dpid: int, slots: dict[int, tuple[object, Slots]],
               only: set[int] | None = None) -> tuple[list[Any], list[Any]]:
        """A reload's group messages for one switch (``ctx`` None: it is no balancer now): those
        to send before the new flows (add or modify; ``only``: of these VIPs alone, the others'
        are as they were), and those after the old flows went (delete: deleting a group deletes
        the flows that use it)."""
        have = self.installed.get(dpid, set())
        want = set(slots) if ctx is not None else set()
        before = [session.selection_group(ctx, vip_id, slots[vip_id][1],
                                          ofp.OFPGC_MODIFY if vip_id in have else ofp.OFPGC_ADD)
                  for vip_id in sorted(want if only is None else want & only)]
        after = [session.remove_selection_group(vip_id) for vip_id in sorted(have - want)]
        self.installed[dpid] = want
        return before, after

    def disconnected(self, dpid: int) -> None:
        self.installed.pop(dpid, None)
