"""A persistent VIP's new connection the controller picks for: the backend its client's entry
names, if that backend still holds one of the VIP's slots, else the scheduler's pick; and the
entry written (again) for the switch (lbapp.pipeline.affinity) and the controller's copy."""
from __future__ import annotations

from typing import Any, Callable

from lbapp.pipeline import affinity
from lbapp.shared import ConnKey, IPv4
from lbapp.state.affinity import AffinityMemory
from lbapp.state.running import Running
from lbapp.state.vips import Vip


def choose(running: Running, memory: AffinityMemory, vip: Vip, key: ConnKey, data: bytes, now: float,
           pick: Callable[[], IPv4 | None]) -> tuple[IPv4 | None, bool]:
    """(the client's backend, whether it is a new pick): the one the switch's entry put in the
    punted frame's eth_dst, else the one the controller remembers (an entry the switch's datapath
    did not show yet), while it holds a slot (up, not drained, configured); else ``pick()``,
    whose entry the caller then writes (:func:`written`). A client found keeps its entry: the
    switch's lookup refreshed it, and the controller's copy is refreshed here."""
    persistence = vip.model.persistence
    holding = running.slots.get(vip.id, (None, ()))[1]  # a list of 256: in C, cheaper than a set built here
    pid = running.ctx.persistence_id(vip.id, vip.model)
    prefix = affinity.client_prefix(key.src_ip, persistence.netmask)
    # the backend whose fabricated MAC the switch's entry put in eth_dst; the controller's copy
    for candidate in (running.ctx.backend_by_mac.get(int.from_bytes(data[:6], "big")), memory.named(pid, prefix, now)):
        if candidate is not None and candidate in holding:
            memory.keep(pid, prefix, candidate, now, persistence.timeout)
            return candidate, False
    return pick(), True


def written(running: Running, memory: AffinityMemory, vip: Vip, key: ConnKey, backend: IPv4, now: float) -> Any:
    """The client's entry for the switch, after ``backend`` took its connection; remembered too."""
    persistence = vip.model.persistence
    pid = running.ctx.persistence_id(vip.id, vip.model)
    prefix = affinity.client_prefix(key.src_ip, persistence.netmask)
    memory.keep(pid, prefix, backend, now, persistence.timeout)
    return affinity.entry(pid, persistence.netmask, persistence.timeout, key.src_ip, backend,
                          running.ctx.backend_ids[backend], running.ctx.scheme.encode(backend))
