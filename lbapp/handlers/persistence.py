"""A persistent VIP's new connection the controller picks for: the backend its client's entry
names, if that backend still holds one of the VIP's slots, else the scheduler's pick; and the
entry written (again) for the switch (lbapp.pipeline.affinity) and the controller's copy."""
from __future__ import annotations

from typing import Any, Callable

from lbapp import mac as macs
from lbapp.pipeline import affinity
from lbapp.shared import ConnKey, IPv4
from lbapp.state.affinity import AffinityMemory
from lbapp.state.running import Running
from lbapp.state.vips import Vip


def choose(running: Running, memory: AffinityMemory, vip: Vip, key: ConnKey, data: bytes, now: float,
           pick: Callable[[], IPv4 | None]) -> IPv4 | None:
    """The client's backend: the one the switch's entry put in the punted frame's eth_dst, else
    the one the controller remembers (an entry the switch's datapath did not show yet), while it
    holds a slot (up, not drained, configured); else ``pick()``."""
    persistence = vip.model.persistence
    holding = set(running.slots.get(vip.id, (None, ()))[1]) - {None}
    pid = running.ctx.persistence_id(vip.id, vip.model)
    for candidate in (_named_by_frame(running, data),
                      memory.named(pid, affinity.client_prefix(key.src_ip, persistence.netmask), now)):
        if candidate in holding:
            return candidate
    return pick()


def written(running: Running, memory: AffinityMemory, vip: Vip, key: ConnKey, backend: IPv4, now: float) -> Any:
    """The client's entry for the switch, after ``backend`` took its connection; remembered too."""
    persistence = vip.model.persistence
    pid = running.ctx.persistence_id(vip.id, vip.model)
    prefix = affinity.client_prefix(key.src_ip, persistence.netmask)
    memory.keep(pid, prefix, backend, now, persistence.timeout)
    return affinity.entry(pid, persistence.netmask, persistence.timeout, key.src_ip, backend,
                          running.ctx.backend_ids[backend], running.ctx.scheme.encode(backend))


def _named_by_frame(running: Running, data: bytes) -> IPv4 | None:
    """The backend whose fabricated MAC the frame's destination is (the entry's), if any."""
    try:
        return running.ctx.scheme.decode(int.from_bytes(data[:6], "big"))
    except macs.MacError:
        return None
