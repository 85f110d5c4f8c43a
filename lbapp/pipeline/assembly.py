"""A switch's pipeline, assembled from the declaration (lbapp.pipeline.tables): the tables its
roles give it, each table's flows from its builder module ``lbapp.pipeline.<table>``
(``balancer_flows(view)`` / ``edge_flows(view)``), one miss flow per table it uses, and the
cookie-masked sweeps of stale static flows. Adding a stage: its declaration and its builder."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Iterator

from lbapp.pipeline import cookies
from lbapp.pipeline.context import SwitchView
from lbapp.pipeline.tables import PIPELINE, Table, tables_on
from lbapp.schedulers.slots import refuses
from lbapp.shared import MAX_VIP_ID


@dataclass
class StaticFlows:
    """One switch's static flows, the tables they cover, and the roles that gave them."""

    flows: list[Any]  # everything but sessions, in pipeline order, each table's miss flow first
    tables: list[Table]  # every table the switch's roles give it (what a sweep covers)
    roles: list[str]  # what the switch is, for the log ("balancer lb1", "edge", "edge (lingering)")


def builder(table: Table) -> ModuleType:
    return importlib.import_module(f"lbapp.pipeline.{table.name}")


def static_flows(running, lingering, dpid: int) -> StaticFlows:
    """One switch's static flows under the running config (a ``lbapp.state.running.Running``),
    including the source NAT that lingers on it (``lbapp.state.lingering.Lingering``)."""
    lingering_flows = lingering.edge_flows(running.ctx, dpid)
    views, roles = _views(running, dpid, edge=bool(lingering_flows))
    return StaticFlows(assemble(views, running.generation) + lingering_flows,
                       [t for t in PIPELINE if any(t in tables_on(role) for role, _ in views)], roles)


def scoped_flows(running, lingering, dpid: int, scope_cfg) -> list[Any]:
    """The flows of switch ``dpid`` that may differ within a reload's scope (``scope_cfg``: the
    config narrowed to it, lbapp.config.changes.Scope.narrowed): as :func:`static_flows` builds
    them, a balancer's flows of the scope's VIPs (by their cookies' VIP ids; the rest of a
    balancer's flows are the VIPs' in common), an edge's of the scope's backends, and every
    lingering flow. What lbapp.pipeline.delta compares, before and after."""
    flows: list[Any] = []
    views, _ = _views(running, dpid, scope_cfg=scope_cfg)
    for _, by_role in _built(views):
        for role, built in by_role:
            flows += built if role == "edge" else [f for f in built if 0 < cookies.vip_of(f.cookie) <= MAX_VIP_ID]
    return flows + lingering.edge_flows(running.ctx, dpid)


def _views(running, dpid: int, edge: bool = False, scope_cfg=None) -> tuple[list[tuple[str, SwitchView]], list[str]]:
    """What each role of switch ``dpid`` sees (``edge``: an edge even if the config names none
    there; ``scope_cfg``: seeing only that part of the config), and the roles for the log."""
    views: list[tuple[str, SwitchView]] = []
    roles: list[str] = []
    site = running.sites.get(dpid)
    if site is not None:
        learned = {name: (gw.mac, gw.port) for name, gw in site.next_hops.by_name.items()}
        refusing = frozenset(vip_id for vip_id, (_, slots) in running.slots.items() if refuses(slots))
        ctx = site.ctx if scope_cfg is None else site.ctx.narrowed(scope_cfg)
        views.append(("balancer", SwitchView(dpid, ctx, learned, running.backends.withheld_pins(), refusing,
                                             frozenset(running.overloaded), dict(running.epochs),
                                             {vip_id: slots for vip_id, (_, slots) in running.slots.items()})))
        roles.append(f"balancer {site.ctx.balancer.name}")
    if running.ctx.edges_of(dpid) or edge:
        # an edge only through lingering flows still needs the edge tables and their misses
        views.append(("edge", SwitchView(dpid, running.ctx if scope_cfg is None else running.ctx.narrowed(scope_cfg))))
        roles.append("edge" if running.ctx.edges_of(dpid) else "edge (lingering)")
    return views, roles


def assemble(views: list[tuple[str, SwitchView]], generation: int) -> list[Any]:
    """Each table's flows from the builder of every role that has it; its miss flow once."""
    flows: list[Any] = []
    for table, by_role in _built(views):
        built = [flow for _, role_flows in by_role for flow in role_flows]
        if by_role and (built or not table.optional):
            flows += [table.miss_flow(generation)] + built
    return flows


def _built(views: list[tuple[str, SwitchView]]) -> Iterator[tuple[Table, list[tuple[str, list[Any]]]]]:
    """Each table of the pipeline, in order, with the flows its builder gives each role of
    ``views`` that has the table (none: the switch has no such table)."""
    for table in PIPELINE:
        yield table, [(role, getattr(builder(table), f"{role}_flows")(view)) for role, view in views
                      if role in table.roles]


def sweep(tables: list[Table]) -> list[Any]:
    """A switch just connected: every static flow of ours in ``tables`` goes, whatever its
    generation (an earlier run's too); sessions stay, they carry live connections."""
    return [t.delete({}, cookie=cookies.make(t.stage), cookie_mask=cookies.stage_mask())
            for t in tables if not t.session_owned]


def stale(tables: list[Table], generation: int) -> list[Any]:
    """After a reload: the flows of ``generation`` (the previous one) in ``tables`` go. Session
    flows carry generation 0 and are never matched."""
    return [t.delete({}, cookie=cookies.make(t.stage, generation=generation),
                     cookie_mask=cookies.stage_mask() | cookies.GEN_MASK)
            for t in tables]


def all_tables() -> list[Table]:
    return list(PIPELINE)

