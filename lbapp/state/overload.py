"""Overload: when a VIP the controller picks for gets more new connections per second than the
controller should take (a SYN flood, most likely from spoofed sources that never finish the
handshake), its new connections go to the switch's own path for a while: its select group
picks by the slot table (the same effective weights, hashed instead of counted) and conntrack
pins each connection, as for ``selection: switch``. Connections set up before keep their
session flows; those pinned meanwhile keep their pins afterwards. Held at least ``hold``
seconds, then handed back; a flood still going takes it again within one sampling interval.
Pure, time passed in."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    entered: list[int]  # VIP ids the switch takes over now
    left: list[int]  # VIP ids handed back to the controller now


def decide(overloaded: dict[int, float], rates: Mapping[int, float], controller_vips: Iterable[int],
           above: int, hold: float, now: float) -> Verdict:
    """Update ``overloaded`` (VIP id -> when it was last seen over ``above`` new connections
    per second) from ``rates`` (each VIP's, over the last second) and say what changed. VIPs
    no longer picked by the controller leave; ``above`` 0 never enters."""
    eligible = set(controller_vips)
    entered = []
    for vip_id in sorted(eligible):
        if above and rates.get(vip_id, 0.0) > above:
            if vip_id not in overloaded:
                entered.append(vip_id)
            overloaded[vip_id] = now
    left = sorted(v for v, since in overloaded.items() if v not in eligible or now - since >= hold)
    for vip_id in left:
        del overloaded[vip_id]
    return Verdict(entered, left)
