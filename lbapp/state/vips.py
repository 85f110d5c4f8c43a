"""The VIP table: each VIP's stable id, lookup key, scheduler and session template.

A VIP is known by its key (address, protocol, port). Its id goes into flow cookies and group ids,
so it must not change while its flows live: an id survives reloads and reordering of the list,
and a new VIP takes the lowest free id. On the first load the ids are the 1-based positions in
the file, which is also how ``lbapp flows`` names VIPs from a config alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from lbapp.config import VipModel
from lbapp.pipeline.fastpath import PickTemplate, SessionTemplate
from lbapp.schedulers import registry
from lbapp.schedulers.base import BackendWeight, Scheduler, SchedulerOptions
from lbapp.shared import MAX_VIP_ID, VipKey


@dataclass
class Vip:
    """One VIP of the running config: its id, key, model, scheduler and session template. Only the
    scheduler changes: each pick moves it (lbapp.handlers.connections), and ``reweigh`` gives it new
    weights (the Balancer, lbapp.handlers.verdicts); a reload may hand it on to the next table."""

    id: int
    key: VipKey
    model: VipModel
    scheduler: Scheduler
    # when the controller picks: the session flow-mod (``pin: flow``) or the packet-out that
    # pins in conntrack (``pin: conntrack``), pre-serialised
    template: SessionTemplate | PickTemplate | None

    @property
    def controller_picks(self) -> bool:
        return not self.model.external_director and self.model.selection == "controller"

    @property
    def pins_in_conntrack(self) -> bool:
        """The controller picks, and its packet-out pins the connection in conntrack (``pin:
        conntrack``): no flow per connection."""
        return self.controller_picks and self.model.pin == "conntrack"

    @property
    def switch_picks(self) -> bool:
        return not self.model.external_director and self.model.selection == "switch"

    @property
    def held_in_conntrack(self) -> bool:
        """Its connections are held to their backend by the switch's conntrack, not by a flow
        each (``selection: switch`` or ``pin: conntrack``): they are not listed one by one."""
        return self.switch_picks or self.pins_in_conntrack

    def __str__(self) -> str:
        return f"VIP {self.model.name} {self.key}"

    def reweigh(self, weights: Callable[[int], list[BackendWeight]]) -> None:
        """Effective weights moved (a reload, feedback, health): the scheduler takes them (a
        scheduler whose weights are as they were keeps its tables: a reload of 10,000 VIPs
        rebuilt every one)."""
        now = weights(self.id)
        if now != self.scheduler.backends:
            self.scheduler.set_backends(now)


def assign_ids(models: list[VipModel], previous: dict[VipKey, int] | None = None) -> dict[VipKey, int]:
    """Ids for ``models``: a VIP keeps its previous id; a new one takes the lowest free id."""
    previous = previous or {}
    keys = [VipKey.of(v) for v in models]
    ids = {key: previous[key] for key in keys if key in previous}
    free = (i for i in range(1, MAX_VIP_ID + 1) if i not in set(ids.values()))
    for key in keys:
        if key not in ids:
            ids[key] = next(free)
    return ids


class VipTable:
    """The running config's VIPs by id and by key. Not changed once built: a reload derives the next
    table (``derive``)."""

    def __init__(self, vips: Iterable[Vip] = ()) -> None:
        self.by_id: dict[int, Vip] = {v.id: v for v in vips}  # in config order
        self.by_key: dict[VipKey, Vip] = {v.key: v for v in self.by_id.values()}  # the hot path's lookup

    def __iter__(self) -> Iterator[Vip]:
        """The VIPs in config order."""
        return iter(self.by_id.values())

    def find(self, ref: str) -> Vip | None:
        """The VIP named ``ref``: its config name or its key as ``ip:port/protocol``."""
        return next((v for v in self if ref in (v.model.name, str(v.key))), None)

    def ids(self) -> dict[VipKey, int]:
        return {vip.key: vip.id for vip in self}

    def derive(self, models: list[VipModel], ids: dict[VipKey, int],
               weights: Callable[[int], list[BackendWeight]]) -> tuple["VipTable", list[Vip]]:
        """The table for ``models`` under ``ids`` (from :func:`assign_ids`), leaving this one as it
        is. A VIP whose scheduler name and options are unchanged keeps its scheduler (its state:
        round-robin position, lblc's destinations); those come back as the second value, to be
        given their new weights (:meth:`Vip.reweigh`) once the new table is taken."""
        table, kept = [], []
        for model in models:
            key = VipKey.of(model)
            options = SchedulerOptions(hash_fields=model.hash, table_size=model.table_size)
            old = self.by_key.get(key)
            if old is not None and old.scheduler.name == model.scheduler and old.scheduler.options == options:
                vip = Vip(ids[key], key, model, old.scheduler, None)
                kept.append(vip)
            else:
                vip = Vip(ids[key], key, model, registry.create(model.scheduler, weights(ids[key]), options), None)
            if vip.pins_in_conntrack:
                vip.template = _kept(old, vip, PickTemplate) or PickTemplate()
            elif vip.controller_picks:
                vip.template = _kept(old, vip, SessionTemplate) or SessionTemplate(
                    vip.id, model.ip, key.protocol, model.port, model.idle_timeout)
            table.append(vip)
        return VipTable(table), kept


def _kept(old: Vip | None, vip: Vip, kind: type) -> Any:
    """``old``'s template of ``kind`` if it serves ``vip`` as it is (same id and idle timeout):
    made once, not again at every reload (10,000 VIPs: a second)."""
    template = old.template if old is not None else None
    if isinstance(template, kind) and old.id == vip.id and old.model.idle_timeout == vip.model.idle_timeout:
        return template
    return None
