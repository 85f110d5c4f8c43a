import ipaddress
from collections import Counter

import pytest

from lbapp.schedulers import registry
from lbapp.schedulers.base import BackendWeight, ConnKey

IP = ipaddress.IPv4Address
A, B, C = IP("10.0.0.1"), IP("10.0.0.2"), IP("10.0.0.3")
KEY = ConnKey(6, IP("200.1.1.19"), 40000, IP("117.78.6.19"), 80)


def picks(sched, n):
    return [sched.pick(KEY, {}) for _ in range(n)]


def test_registry_knows_builtins_and_refuses_unknown():
    assert {"rr", "wrr"} <= set(registry.names())
    with pytest.raises(KeyError, match="unknown scheduler 'nope'"):
        registry.create("nope", [])


def test_rr_cycles_in_config_order_and_skips_drained():
    sched = registry.create("rr", [BackendWeight(A, 1), BackendWeight(B, 0), BackendWeight(C, 5)])
    assert picks(sched, 4) == [A, C, A, C]


def test_wrr_gives_exact_share_over_a_cycle_and_spreads_picks():
    sched = registry.create("wrr", [BackendWeight(A, 3), BackendWeight(B, 2), BackendWeight(C, 1)])
    cycle = picks(sched, 6)
    assert Counter(cycle) == {A: 3, B: 2, C: 1}
    assert cycle[:2] != [A, A]  # smooth: the heavy backend is not picked back to back first
    assert Counter(picks(sched, 600)) == {A: 300, B: 200, C: 100}


def test_all_drained_gives_none():
    for name in ("rr", "wrr"):
        assert registry.create(name, [BackendWeight(A, 0)]).pick(KEY, {}) is None


def test_wrr_follows_a_weight_change():
    sched = registry.create("wrr", [BackendWeight(A, 1), BackendWeight(B, 1)])
    picks(sched, 3)
    sched.set_backends([BackendWeight(A, 0), BackendWeight(B, 1)])
    assert set(picks(sched, 4)) == {B}
