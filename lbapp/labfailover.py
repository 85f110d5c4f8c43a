"""Killing a lab cluster's leader and timing the hand-over (issue 24): used by ``lbapp demo
--cluster``, the Mininet test and bench/cluster_failover.py. The hand-over is timed from the
signal to the new leader's role request to the last switch (its log's time); OVS's own record
of the roles (the Controller table) is refreshed only every few seconds, so it proves who took
the switches but does not time it. bench/cluster_failover.py times it by traffic too."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lbapp.lab import LabError, wait_for
from lbapp.labcluster import ControllerProcess

VIP = "117.78.6.19"  # cross_vlan's
NEW_PORTS = {"web": 80, "stream-fast": 7002}  # controller-picked, switch-picked
LONG_PORTS = {"stream": 7000, "stream-fast": 7002}
TIMEOUT = 3.0  # each new connection's (one SYN retransmission)
INTERVAL = 0.2  # between a long-lived connection's lines

HOW = {"kill -9": signal.SIGKILL, "SIGSTOP": signal.SIGSTOP}


@dataclass
class Handover:
    how: str  # "kill -9" or "SIGSTOP"
    old: str  # the member stopped
    new: str  # the member that took every switch
    at: float  # Unix time of the signal
    elected_at: float  # Unix time the new member logged that it leads
    claimed_at: float  # Unix time it logged its role request as master to the last switch

    @property
    def seconds(self) -> float:
        return self.claimed_at - self.at


def _logged_at(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def switch_roles() -> dict[int, list[tuple[str, bool]]]:
    """Every controller OVS knows, by the port of its target: (role, connected) per switch."""
    out = subprocess.run(["ovs-vsctl", "--format=json", "--columns=target,role,is_connected", "list", "controller"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    roles: dict[int, list[tuple[str, bool]]] = {}
    for target, role, connected in json.loads(out)["data"]:
        roles.setdefault(int(target.rsplit(":", 1)[1]), []).append(
            (role if isinstance(role, str) else "", connected is True))
    return roles


def master_everywhere(member: ControllerProcess) -> bool:
    seats = switch_roles().get(member.port, [])
    return bool(seats) and all(role == "master" and connected for role, connected in seats)


def slave_everywhere(member: ControllerProcess) -> bool:
    seats = switch_roles().get(member.port, [])
    return bool(seats) and all(role == "slave" and connected for role, connected in seats)


def stop_leader(members: list[ControllerProcess], how: str, lease: float) -> Handover:
    """Stop the leader (``how``: a key of HOW), wait until another member is master of every
    switch, then bring the old one back: started again after a kill, resumed after a pause.
    Returns once it is a follower, seated as slave on every switch again."""
    old = wait_for(lambda: next((m for m in members if m.running() and master_everywhere(m)), None), 30,
                "a member to be master of every switch")
    at = time.time()
    old.signal(HOW[how])
    try:
        new = wait_for(lambda: next((m for m in members if m is not old and master_everywhere(m)), None),
                    lease * 3 + 15, f"another member to take the switches from {old.name}")
    finally:
        if how == "SIGSTOP":
            old.signal(signal.SIGCONT)
    log = new.log.read_text()
    stamp, generation = re.findall(rf"^(\S+ \S+) lbapp \w+ cluster: {re.escape(new.name)} leads \(generation (\d+)\)",
                                   log, re.M)[-1]
    claims = re.findall(rf"^(\S+ \S+) lbapp \w+ switch \w+: asked to be its master \(generation {generation}\)", log, re.M)
    elected_at = _logged_at(stamp)
    if how == "kill -9":
        old.proc.wait(timeout=10)
        old.start()
    # OVS retries a dropped controller with a growing back-off (up to 8 s)
    wait_for(lambda: slave_everywhere(old), 30, f"{old.name} to be back as a follower", interval=0.2)
    return Handover(how, old.name, new.name, at, elected_at, _logged_at(claims[-1]) if claims else elected_at)


def read_connections(path: Path) -> list[tuple[float, bool, float]]:
    """A paced client's log (topologies/services/paced_client.py): (start, answered, seconds) each."""
    out = []
    for line in path.read_text().splitlines():
        at, ok, took = line.split()
        out.append((float(at), ok == "1", float(took)))
    return out


def served_after(connections: list[tuple[float, bool, float]], at: float, run: int = 20) -> float:
    """When new connections started after ``at`` were steadily answered at their first SYN (in
    under a second: TCP's first retransmission) again: the start of the first ``run`` of them
    in a row (single early answers happen: a SYN that meets a flow still in the switch); ``at``
    if there is none."""
    streak: list[float] = []
    for start, ok, took in connections:
        if start < at:
            continue
        streak = streak + [start] if ok and took < 1.0 else []
        if len(streak) == run:
            return streak[0]
    return at


def failed_around(connections: list[tuple[float, bool, float]], windows: list[tuple[float, float]]) -> tuple[int, int]:
    """Failed connections that started in one of ``windows`` (from, to), and outside all."""
    inside = outside = 0
    for start, ok, _ in connections:
        if ok:
            continue
        if any(begin <= start <= end for begin, end in windows):
            inside += 1
        else:
            outside += 1
    return inside, outside


@dataclass
class FailoverRun:
    """What :func:`under_load` saw: the hand-overs, per VIP the new connections (opened, failed
    in a hand-over, failed outside one) and the long-lived ones broken (of ``streams`` each)."""

    handovers: list[Handover]
    served: list[float]  # per hand-over: signal -> the first web connection answered at its first SYN
    failed: dict[str, tuple[int, int, int]]
    broken: dict[str, int]
    streams: int
    rate: float


def under_load(lab, kills: int, rate: float, streams: int, period: float) -> FailoverRun:
    """On a running cluster lab of cross_vlan: h1 opens ``rate`` new connections a second to each
    of NEW_PORTS and keeps ``streams`` long-lived ones to each of LONG_PORTS, while the leader is
    stopped ``kills`` times, ``period`` seconds apart, by turns kill -9 and SIGSTOP."""
    from lbapp.lab import SYSTEM_PYTHON, TOPOLOGIES, parse_answer

    duration = kills * period + 6
    h1 = lab.net.get("h1")
    long_lived = []
    for name, port in LONG_PORTS.items():
        for _ in range(streams):
            proc = lab.stream("h1", VIP, port, int(duration / INTERVAL), INTERVAL, timeout=20)
            first = proc.stdout.readline()
            if not first.startswith("backend="):
                raise LabError(f"a long-lived connection to {name} did not start: {first!r}")
            long_lived.append((name, proc, parse_answer(first)["backend"]))
    logs = {name: lab.workdir / f"{name}.connections" for name in NEW_PORTS}
    client = TOPOLOGIES / "services" / "paced_client.py"
    load = [h1.popen([SYSTEM_PYTHON, str(client), VIP, str(port), str(rate), str(duration), str(TIMEOUT),
                      str(logs[name])], stdout=subprocess.PIPE, text=True) for name, port in NEW_PORTS.items()]
    began = time.time()
    handovers = []
    for i in range(kills):
        time.sleep(max(began + 3 + i * period - time.time(), 0))
        handovers.append(stop_leader(lab.members, ("kill -9", "SIGSTOP")[i % 2], lab.lease))
    for proc in load:
        proc.communicate(timeout=duration + 60)
    broken = {name: 0 for name in LONG_PORTS}
    for name, proc, first in long_lived:
        out, _ = proc.communicate(timeout=duration + 60)
        backends = {parse_answer(line)["backend"] for line in out.splitlines() if line.startswith("backend=")}
        if proc.returncode != 0 or backends != {first}:
            broken[name] += 1
    web = read_connections(logs["web"])
    served = [served_after(web, h.at) for h in handovers]  # the hand-over as new connections saw it
    windows = [(h.at - TIMEOUT, max(h.claimed_at, end)) for h, end in zip(handovers, served)]
    failed = {}
    for name, log in logs.items():
        connections = read_connections(log)
        failed[name] = (len(connections), *failed_around(connections, windows))
    return FailoverRun(handovers, [end - h.at for h, end in zip(handovers, served)], failed, broken, streams, rate)


def report(run: FailoverRun) -> list[str]:
    """The run as lines: each kill, the hand-overs' p50 and max, connections lost."""
    import statistics

    lines = [f"kill {i + 1}: {h.how} {h.old} -> {h.new}: elected after {h.elected_at - h.at:.2f} s, switches "
             f"claimed after {h.seconds:.2f} s, web answered at the first SYN after {run.served[i]:.2f} s"
             for i, h in enumerate(run.handovers)]
    lines.append(f"{len(run.handovers)} leader kills; hand-over p50 / max, in seconds:")
    for how in ("kill -9", "SIGSTOP", None):
        of = [i for i, h in enumerate(run.handovers) if how in (None, h.how)]
        if of:
            lines.append(f"  {how or 'all'} ({len(of)}): " + "; ".join(
                f"{what} {statistics.median(xs):.2f} / {max(xs):.2f}" for what, xs in (
                    ("elected", [run.handovers[i].elected_at - run.handovers[i].at for i in of]),
                    ("switches claimed", [run.handovers[i].seconds for i in of]),
                    ("web answered at the first SYN", [run.served[i] for i in of]))))
    for name, (total, inside, outside) in run.failed.items():
        lines.append(f"new connections to {name} ({run.rate:g}/s): {total} opened, {inside} failed in a hand-over, "
                     f"{outside} failed outside one")
    for name, n in run.broken.items():
        lines.append(f"long-lived connections to {name} broken: {n}/{run.streams}")
    return lines
