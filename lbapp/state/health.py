"""Health checks' state: the probe targets, when each is due, and the up/down machine (``rise``
passes in a row bring a backend up, ``fall`` failures in a row take it down; a backend not yet
decided counts as up). One probe per target, however many VIPs share it. Pure, time passed in.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal

from lbapp.shared import MAX_PROBES_IN_FLIGHT as MAX_IN_FLIGHT, IPv4

LOG = logging.getLogger("lbapp")
# A late probe is void, not failed, when the balancer was behind by more than this share of its
# timeout: a multi-step probe (an http check) loses that much at each of its steps.
VOID_BEHIND_SHARE = 0.25
Health = Literal["unchecked", "up", "down"]


@dataclass(frozen=True)
class Target:
    """What one probe checks, and how often."""

    backend: IPv4
    type: str  # tcp | http | udp | icmp
    port: int  # 0 for icmp
    interval: float
    timeout: float
    rise: int
    fall: int
    path: str = "/"
    host: str = ""
    expect: tuple[int, int] = (200, 399)

    def __str__(self) -> str:
        where = f"{self.backend}" if self.type == "icmp" else f"{self.backend}:{self.port}"
        return f"{self.type} check of {where}"

    @property
    def key(self) -> str:
        """Names the check across controllers (a cluster's leader shares findings by it)."""
        return f"{self.type} {self.backend}:{self.port}{self.path if self.type == 'http' else ''}"


def target_for(vip, backend) -> Target | None:
    """What checks ``backend`` of ``vip`` (config models), or None when nothing does."""
    check = vip.health_of(backend)
    if check is None or vip.external_director:
        return None
    return Target(backend.ip, check.type, 0 if check.type == "icmp" else check.port or vip.port, check.interval,
                  check.timeout, check.rise, check.fall, check.path if check.type == "http" else "/",
                  check.host or "" if check.type == "http" else "", check.expect_status if check.type == "http"
                  else (200, 399))


@dataclass
class Status:
    """One target's check: up or down, passes and failures in a row, the probe in flight. Changed
    only by its ``HealthChecks``."""

    state: Health = "unchecked"
    passes: int = 0  # in a row
    failures: int = 0  # in a row
    next_probe: float | None = None  # None: not yet started (then: ``offset`` after the first look)
    offset: float = 0.0  # spreads new targets over their first interval
    probe: int | None = None  # the probe in flight
    deadline: float = 0.0
    reason: str = ""  # what the last probe found
    probes: int = 0  # sent, in all
    quick: bool = False  # rechecked: each pass brings the next probe at once, until up or a failure
    not_judged: int = 0  # late probes: the balancer itself was behind (HealthChecks.judge)


@dataclass(frozen=True)
class Change:
    """A target's state changed (``was`` before): the verdict lbapp.healthcheck.Checker hands the
    Balancer."""

    target: Target
    state: Health  # "up" or "down"
    reason: str
    was: Health = "unchecked"


@dataclass
class HealthChecks:
    """Owns every target's ``Status`` and the probes in flight (id -> target). Changed only by
    lbapp.healthcheck.Checker, its owner, when the Balancer calls it: ``load``, ``due``, ``report``,
    ``expired``."""

    status: dict[Target, Status] = field(default_factory=dict)
    in_flight: dict[int, Target] = field(default_factory=dict)  # probe id -> its target
    held: set[int] = field(default_factory=set)  # probes past their deadline, awaiting judgement
    _random: random.Random = field(default_factory=random.SystemRandom, repr=False)

    def load(self, targets: Iterable[Target]) -> None:
        """The targets the config asks for; a target kept from before keeps its state. New ones
        are spread over their first interval, so a thousand backends are not probed at once."""
        wanted = sorted(set(targets), key=lambda t: (int(t.backend), t.type, t.port, t.path))
        old, self.status = self.status, {}
        for i, target in enumerate(wanted):
            self.status[target] = old.get(target) or Status(offset=target.interval * i / len(wanted))
        self.in_flight = {pid: t for pid, t in self.in_flight.items() if t in self.status}
        self.held &= set(self.in_flight)

    def due(self, now: float, ready: Callable[[Target], bool] = lambda t: True) -> list[tuple[int, Target]]:
        """Probes to send now, each under a fresh id; a target's next one is an interval later.
        A target not ``ready`` (its route's next hop unknown: the probe could only be dropped)
        waits, and is not failed for it."""
        out = []
        for target, status in self.status.items():
            if status.next_probe is None:
                status.next_probe = now + status.offset
            if status.probe is not None or status.next_probe > now or not ready(target):
                continue
            probe = self._allocate()
            if probe is None:
                break  # every id in flight: the rest wait for the next tick
            status.probe, status.deadline = probe, now + target.timeout
            # on its own beat, not the tick's: ticks come late by up to their grain
            status.next_probe = max(status.next_probe + target.interval, now)
            status.probes += 1
            self.in_flight[probe] = target
            out.append((probe, target))
        return out

    def recheck(self, targets: Iterable[Target], now: float) -> None:
        """Probe ``targets`` at once (their path came back: a switch reconnected), and while one
        is not up, each pass brings its next probe at once: ``rise`` passes take round trips,
        not intervals."""
        for target in targets:
            status = self.status.get(target)
            if status is not None and status.next_probe is not None:  # (never probed: keeps its spread start)
                status.next_probe, status.quick = now, status.state != "up"

    def target_of(self, probe: int) -> Target | None:
        return self.in_flight.get(probe)

    def report(self, probe: int, passed: bool, reason: str) -> Change | None:
        """What probe ``probe`` found; the change of its target's state, if this made one."""
        target = self.in_flight.pop(probe, None)
        self.held.discard(probe)
        if target is None:
            return None  # late, repeated or forged: not a probe in flight
        status = self.status[target]
        status.probe, status.reason = None, reason
        if passed:
            status.passes, status.failures = status.passes + 1, 0
            if status.state != "up" and status.passes >= target.rise:
                status.quick = False
                return self._change(target, status, "up", f"{reason}, {status.passes} passes")
            if status.quick:
                status.next_probe = status.deadline - target.timeout  # when this one left: due at once
        else:
            status.quick = False
            status.failures, status.passes = status.failures + 1, 0
            if status.state != "down" and status.failures >= target.fall:
                return self._change(target, status, "down", f"{reason}, {status.failures} failures")
        return None

    def overdue(self, now: float) -> list[int]:
        """Probes past their deadline, not yet held: from now on held for judgement (``judge``)."""
        late = [probe for probe, target in self.in_flight.items()
                if probe not in self.held and self.status[target].deadline <= now]
        self.held.update(late)
        return late

    def judge(self, probes: Iterable[int], behind: float) -> tuple[list[int], list[Change], int]:
        """Held probes still unanswered once the balancer was seen to be ``behind`` seconds late
        (a barrier's round trip): each fails, unless the balancer was behind by more than a
        quarter of its timeout, which its answer may have lost in the queue: then it is void
        (no pass, no failure). The ids judged, the changes made, and how many were void."""
        judged, changes, void = [], [], 0
        for probe in probes:
            target = self.in_flight.get(probe)
            if target is None or probe not in self.held:
                continue  # answered meanwhile
            judged.append(probe)
            if behind > target.timeout * VOID_BEHIND_SHARE:
                self.in_flight.pop(probe)
                self.held.discard(probe)
                status = self.status[target]
                status.probe, status.reason = None, f"not judged: the balancer was {behind:.2f} s behind"
                status.not_judged += 1
                void += 1
            elif (change := self.report(probe, False, "timeout")) is not None:
                changes.append(change)
        return judged, changes, void

    def findings(self) -> dict[str, str]:
        """Each decided check's state, by its key: what a cluster's leader shares."""
        return {t.key: s.state for t, s in self.status.items() if s.state != "unchecked"}

    def inherit(self, findings: dict[str, str]) -> list[Change]:
        """A new leader takes over the last one's ``findings``: each check not yet decided here
        starts from them (a backend found down stays out until it passes ``rise`` times)."""
        out = []
        for target, status in self.status.items():
            state = findings.get(target.key)
            if status.state == "unchecked" and state in ("up", "down"):
                status.state = state
                out.append(Change(target, state, "found by the cluster's previous leader"))
        return out

    def _change(self, target: Target, status: Status, state: Health, reason: str) -> Change:
        was, status.state = status.state, state
        first = was == "unchecked" and state == "up"  # a start, not news
        LOG.log(logging.INFO if first else logging.WARNING, "%s: %s (%s)", target, state, reason)
        return Change(target, state, reason, was)

    def _allocate(self) -> int | None:
        """A free probe id, drawn at random: a forged answer cannot guess the next one."""
        if len(self.in_flight) >= MAX_IN_FLIGHT - 1:
            return None
        while True:
            probe = self._random.randrange(1, MAX_IN_FLIGHT)
            if probe not in self.in_flight:
                return probe
