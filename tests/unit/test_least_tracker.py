"""The least-load policies' heap picks exactly what a scan of every backend picks, through
random session starts and ends, weight changes and a replaced count table."""
import ipaddress
import random

import pytest

from lbapp.schedulers import registry
from lbapp.schedulers.base import BackendWeight, ConnKey, LiveCounts

KEY = ConnKey(6, ipaddress.IPv4Address("200.1.1.19"), 40000, ipaddress.IPv4Address("117.78.6.19"), 80)


@pytest.mark.parametrize("name", ["lc", "wlc", "sed", "nq"])
def test_heap_pick_equals_scan_pick(name):
    rng = random.Random(name)
    ips = [ipaddress.IPv4Address(0x0A000000 + i) for i in range(40)]

    def backends():
        return [BackendWeight(ip, rng.choice([0, 1, 1, 2, 3, 5])) for ip in ips]

    weights = backends()
    tracked, scanned = registry.create(name, weights), registry.create(name, weights)
    counts = LiveCounts()
    for step in range(3000):
        roll = rng.random()
        if roll < 0.5:  # a new connection on the backend the policy picks
            ip = tracked.pick(KEY, counts)
            assert ip == scanned.pick(KEY, dict(counts)), step  # a plain dict: the scan
            if ip is not None:
                counts[ip] += 1
        elif roll < 0.95:  # a connection ends somewhere
            live = [ip for ip, n in counts.items() if n > 0]
            if live:
                ip = rng.choice(live)
                counts[ip] -= 1
                if counts[ip] == 0:
                    del counts[ip]
        elif roll < 0.99:  # a reload or feedback changes weights
            weights = backends()
            tracked.set_backends(weights)
            scanned.set_backends(weights)
        else:  # the count table is rebuilt (VIPs renumbered)
            counts = LiveCounts(counts)


def test_heap_stays_bounded():
    ips = [ipaddress.IPv4Address(0x0A000000 + i) for i in range(10)]
    sched = registry.create("wlc", [BackendWeight(ip, 1) for ip in ips])
    counts = LiveCounts()
    for _ in range(5000):
        ip = sched.pick(KEY, counts)
        counts[ip] += 1
        counts[ip] -= 1
    assert len(sched.tracker) <= 4 * len(ips) + 64 + 1
