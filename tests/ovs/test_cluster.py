"""Two lbapp controllers on a real 3-member etcd cluster (loopback) and a real OVS bridge
(issue 24, first slice): one leads and is the bridge's OpenFlow master, the other is slave;
kill -9 of the leader hands the lead and the bridge over; a leader paused past its lease
(SIGSTOP) is replaced and, resumed, knows it lost the lead and writes nothing; OVS refuses
its old generation as stale. The config is the cluster's, in etcd: a change through any
member reaches all, and a member with another file is refused."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from lbapp import apitoken
from lbapp.lab import free_port
from lbapp.labfailover import switch_roles
from tests.helpers.etcd import EtcdCluster
from tests.helpers.net import PYTHON, ROOT, sh, wait_for

LEASE = 2


@dataclass
class Controller:
    name: str
    proc: subprocess.Popen
    port: int
    log: Path
    api: str
    config: Path
    token_file: Path

    def post(self, path: str, body: dict) -> int:
        """POST ``body`` to its API with its token; the HTTP status."""
        request = urllib.request.Request(f"{self.api}{path}", method="POST", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {apitoken.read(self.token_file)}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status

    def said(self, pattern: str) -> bool:
        return re.search(pattern, self.log.read_text()) is not None


@pytest.fixture
def etcd(lab):
    with EtcdCluster(lab.artifacts) as cluster:
        yield cluster


def start(lab, etcd, name: str, text: str | None = None) -> Controller:
    """``lbapp run`` as member ``name``, with its own copy of the worked example (or ``text``)."""
    port, api = free_port(), free_port()
    log = lab.artifacts / f"{name}.log"
    config, token_file = lab.artifacts / f"{name}.yaml", lab.artifacts / f"{name}.token"
    config.write_text(text or (ROOT / "topologies" / "worked_example.yaml").read_text())
    proc = subprocess.Popen([PYTHON, "-m", "lbapp.cli.main", "run", "-c", str(config),
                             "--listen", "127.0.0.1", "--port", str(port), "--api-port", str(api),
                             "--api-token-file", str(token_file), "--etcd", ",".join(etcd.urls), "--cluster", lab.prefix, "--member", name,
                             "--lease", str(LEASE), "-v"], stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT)
    lab.procs.append(proc)
    return Controller(name, proc, port, log, f"http://127.0.0.1:{api}", config, token_file)


def roles(br: str) -> dict[int, str]:
    """The bridge's controllers (its test's only bridge), by port: their OpenFlow role as OVS sees it."""
    return {port: seats[0][0] for port, seats in switch_roles().items()}


def static_flows(lab, br: str) -> set[str]:
    """The bridge's flows without their counters and ages."""
    return {re.sub(r" (duration|n_packets|n_bytes|idle_age|hard_age)=[^ ,]+,?", "", line).strip()
            for line in lab.dump(br).splitlines() if "cookie=" in line}


def two_members(lab, etcd):
    br = lab.bridge("lb", 1)
    a = start(lab, etcd, "a")
    wait_for(lambda: a.said(r"cluster: a leads"), 20, "a to lead")
    b = start(lab, etcd, "b")
    wait_for(lambda: b.said(r"cluster: b follows a"), 20, "b to follow a")
    sh("ovs-vsctl", "set-controller", br, f"tcp:127.0.0.1:{a.port}", f"tcp:127.0.0.1:{b.port}")
    wait_for(lambda: roles(br) == {a.port: "master", b.port: "slave"}, 20, "a master, b slave")
    wait_for(lambda: "table=0" in lab.dump(br), 20, "a to program the bridge")
    return br, a, b


def status(member: Controller) -> str:
    """``lbapp status`` of ``member``, as a user reads it."""
    return " ".join(sh(PYTHON, "-m", "lbapp.cli.main", "status", "--api", member.api).split())


def gauges(member: Controller) -> dict[str, float]:
    """The member's ``lbapp_cluster_*`` gauges from /metrics (labels dropped)."""
    with urllib.request.urlopen(f"{member.api}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {name: float(value) for name, value in re.findall(r"^(lbapp_cluster_\w+)(?:\{[^}]*\})? (\S+)$", text, re.M)}


def test_the_leader_is_master_and_a_kill_hands_the_bridge_to_the_other(lab, etcd):
    br, a, b = two_members(lab, etcd)
    assert not b.said(r"installing \d+ flows")  # a follower writes nothing
    dpid = f"{int(sh('ovs-vsctl', 'get', 'bridge', br, 'datapath_id').strip().strip(chr(34)), 16):016x}"
    wait_for(lambda: "members a, b" in status(b), 10, "b to see both members")
    first = int(re.search(r"leader a, generation (\d+), leading for [\d.]+ s", status(b))[1])
    assert f"this member: b, follower; switches: {dpid} slave" in status(b)
    assert f"this member: a, leader; switches: {dpid} master" in status(a)
    led = gauges(a)
    assert led["lbapp_cluster_led_seconds"] > 0
    assert led | {"lbapp_cluster_led_seconds": 0} == {"lbapp_cluster_leader": 1, "lbapp_cluster_generation": first,
                                                       "lbapp_cluster_led_seconds": 0, "lbapp_cluster_members": 2}
    assert gauges(b)["lbapp_cluster_leader"] == 0 and gauges(b)["lbapp_cluster_generation"] == first
    os.kill(a.proc.pid, signal.SIGKILL)
    wait_for(lambda: b.said(r"cluster: b leads"), 3 * LEASE + 5, "b to take the lead after the lease")
    wait_for(lambda: roles(br).get(b.port) == "master", 10, "b to be the bridge's master")
    wait_for(lambda: b.said(r"installing \d+ flows"), 10, "b to program the bridge")
    generations = [int(g) for g in re.findall(r"generation (\d+)", a.log.read_text() + b.log.read_text())]
    assert generations == sorted(generations) and len(set(generations)) >= 2  # etcd's revision: it grows
    wait_for(lambda: "members b;" in status(b), 10, "a's name to go with its lease")
    second = int(re.search(r"leader b, generation (\d+)", status(b))[1])
    assert second > first and f"this member: b, leader; switches: {dpid} master" in status(b)
    assert gauges(b)["lbapp_cluster_leader"] == 1 and gauges(b)["lbapp_cluster_generation"] == second


def test_a_leader_paused_past_its_lease_is_replaced_and_resumed_writes_nothing(lab, etcd):
    br, a, b = two_members(lab, etcd)
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: b.said(r"cluster: b leads"), 3 * LEASE + 5, "b to take the lead")
        wait_for(lambda: roles(br).get(b.port) == "master", 10, "b to be master")
        wait_for(lambda: b.said(r"installing \d+ flows"), 10, "b to program the bridge")
        wait_for(lambda: roles(br).get(b.port) == "master" and static_flows(lab, br), 5, "b's flows")
        before = static_flows(lab, br)
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_for(lambda: a.said(r"cluster: a no longer leads"), 10, "a to notice it lost the lead")
    wait_for(lambda: a.said(r"cluster: a follows b"), 10, "a to follow b")
    # its first request after the pause, under its old generation, OVS refused (OFPRRFC_STALE)
    assert a.said(r"refused our role request as stale")
    assert roles(br)[b.port] == "master" and roles(br)[a.port] == "slave"
    assert static_flows(lab, br) == before  # nothing a sent after its lease reached the bridge
    assert not a.said(r"OpenFlow error type=1 code=10")  # nor did it try (OFPBRC_IS_SLAVE)


def test_a_drain_through_a_followers_api_reaches_the_leader_and_every_file(lab, etcd):
    """The cluster's config lives in etcd, each member's file a copy: a runtime change made on
    any member goes there first, and every member applies it."""
    br, a, b = two_members(lab, etcd)
    assert b.post("/v1/vips/web/backends/10.11.12.12", {"action": "drain"}) == 200
    wait_for(lambda: a.said(r"cluster: applied the config another member changed"), 10, "a to apply b's change")
    assert a.config.read_text() == b.config.read_text() and "drain: true" in a.config.read_text()
    with urllib.request.urlopen(f"{a.api}/v1/state", timeout=10) as answer:
        backends = json.load(answer)["vips"][0]["backends"]
    assert {x["ip"]: x["admin"] for x in backends}["10.11.12.12"] == "drain"
    # a file edited on one member and reloaded there becomes the cluster's too
    a.config.write_text(a.config.read_text().replace("idle_timeout: 30", "idle_timeout: 45"))
    assert a.post("/v1/reload", {}) == 200
    wait_for(lambda: "idle_timeout: 45" in b.config.read_text(), 10, "b to take a's reloaded file")


def test_a_member_whose_config_differs_is_refused_at_start(lab, etcd):
    br, a, b = two_members(lab, etcd)
    other = (ROOT / "topologies" / "worked_example.yaml").read_text().replace("idle_timeout: 30", "idle_timeout: 31")
    c = start(lab, etcd, "c", other)
    assert c.proc.wait(timeout=30) == 1
    said = c.log.read_text().strip().splitlines()
    assert len(said) == 1 and "differs from the cluster's" in said[0], said


def test_the_leaders_health_findings_reach_the_next_leader_through_etcd(lab, etcd):
    """The members' own rounds against the real etcd: a leads and shares what its checks found;
    it leaves; b wins and is handed those findings before it takes any switch."""
    import time

    from lbapp.cluster.etcd import Etcd
    from lbapp.cluster.member import Member

    told: list = []
    a = Member(Etcd(etcd.urls), lab.prefix, "a", LEASE, lambda *_: None, findings=lambda: {"tcp 10.11.12.11:80": "down"})
    b = Member(Etcd(etcd.urls), lab.prefix, "b", LEASE, lambda leads, _: told.append(("lead", leads)),
               on_findings=lambda found: told.append(("findings", found)))
    for member in (a, b):
        member.shared.join("config")
    a.step(time.time())
    assert a.leads()
    a.step(time.time())  # a renewal: the findings go to etcd
    b.step(time.time())
    assert not b.leads() and told == [("lead", False)]
    a.stop()  # leaves: its lease revoked
    b.step(time.time())
    assert b.leads() and told[1:] == [("findings", {"tcp 10.11.12.11:80": "down"}), ("lead", True)]
