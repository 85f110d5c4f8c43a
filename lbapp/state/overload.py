"""Overload: when a VIP the controller picks for gets more new connections per second than the
controller should take (a SYN flood, most likely from spoofed sources that never finish the
handshake), its new connections go to the switch's own path for a while: its select group
picks by the slot table (the same effective weights, hashed instead of counted) and conntrack
pins each connection, as for ``selection: switch``. Connections set up before keep their
session flows; those pinned meanwhile keep their pins afterwards. Held at least ``hold``
seconds, then handed back; a flood still going takes it again within one sampling interval.
While the switch picks, the controller sees none of the VIP's new connections: their rate is
read from the switch instead, from the packet counter of the VIP's pick flow (the first SYNs)
on each balancer, so a flood that goes on keeps the VIP with the switch. Pure, time passed in."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


# Of the punt meter's rate, what the controller-picked VIPs may use together before the busiest
# go to the switch: the meter is then not yet full, so it drops no legitimate first packet.
BUDGET_SHARE = 0.75


@dataclass
class SwitchRates:
    """First packets per second through each VIP's pick flow, summed over the balancers, from
    successive readings of its packet counter. Owned by lbapp.handlers.readings.Readings, which
    adds each ``reading``; lbapp.handlers.picking ``forget``s a VIP handed back."""

    readings: dict[tuple[int, int], tuple[float, int]] = field(default_factory=dict)  # (VIP, dpid) -> (t, count)
    rates: dict[tuple[int, int], float] = field(default_factory=dict)

    def reading(self, vip_id: int, dpid: int, packets: int, now: float) -> None:
        last = self.readings.get((vip_id, dpid))
        self.readings[(vip_id, dpid)] = (now, packets)
        if last is not None and now > last[0] and packets >= last[1]:  # a re-added flow starts at 0
            self.rates[(vip_id, dpid)] = (packets - last[1]) / (now - last[0])

    def of_vip(self, vip_id: int) -> float:
        return sum(rate for (vip, _), rate in self.rates.items() if vip == vip_id)

    def forget(self, vip_id: int) -> None:
        """The VIP went back to the controller: the next overload reads afresh."""
        for key in [k for k in self.readings if k[0] == vip_id]:
            del self.readings[key]
            self.rates.pop(key, None)


@dataclass(frozen=True)
class Verdict:
    """What one ``decide`` changed: VIPs handed to the switch, and VIPs handed back."""

    entered: list[int]  # VIP ids the switch takes over now
    left: list[int]  # VIP ids handed back to the controller now


def decide(overloaded: dict[int, float], rates: Mapping[int, float], controller_vips: Iterable[int],
           above: int, hold: float, now: float, budget: float = 0.0) -> Verdict:
    """Update ``overloaded`` (VIP id -> when it was last seen flooded) from ``rates`` (each VIP's
    new connections per second over the last second) and say what changed. A VIP is flooded
    when it alone is over ``above``, or when together the VIPs are over ``budget`` (0: no
    budget): then the busiest go to the switch until the rest fit, so a flood spread over many
    VIPs, each under ``above``, cannot fill the controller's share either. VIPs no longer picked
    by the controller leave; ``above`` 0 turns the hand-over off."""
    eligible = set(controller_vips)
    flooded = {v for v in eligible if above and rates.get(v, 0.0) > above}
    if above and budget:
        rest = sorted(eligible - flooded, key=lambda v: (-rates.get(v, 0.0), v))
        total = sum(rates.get(v, 0.0) for v in rest)
        for vip_id in rest:
            if total <= budget:
                break
            flooded.add(vip_id)
            total -= rates.get(vip_id, 0.0)
    entered = sorted(v for v in flooded if v not in overloaded)
    for vip_id in flooded:
        overloaded[vip_id] = now
    left = sorted(v for v, since in overloaded.items() if v not in eligible or now - since >= hold)
    for vip_id in left:
        del overloaded[vip_id]
    return Verdict(entered, left)
