"""``lbapp demo --cluster``: three controllers on a real 3-member etcd on loopback, the
cross_vlan topology on Mininet, and the leader stopped twice while clients keep opening new
connections and keep long-lived ones open (lbapp.labfailover): once by kill -9, once by SIGSTOP.
Reports each hand-over and the connections lost, if any. Exit 0 only when every check holds."""
from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

LEASE = 2
KILLS = 2
RATE = 50.0  # new connections per second to each of two VIPs


def run_cluster(console: Console, keep: bool) -> int:
    from lbapp.cli.status import cluster_lines
    from lbapp.lab import MininetLab, wait_for
    from lbapp.labfailover import NEW_PORTS, report, under_load

    workdir = Path(tempfile.mkdtemp(prefix="lbapp-demo-cluster-"))
    with console.status("starting etcd (3 members), 3 controllers and the Mininet topology...") as status, \
            MininetLab("cross_vlan", workdir, controllers=3, lease=LEASE) as lab:
        leader = wait_for(lab.leader, 30, "a leader")
        for line in cluster_lines(leader.state()["cluster"]):
            console.print(line)
        for member in lab.members:
            console.log(f"controller {member.name}: OpenFlow {member.openflow}, API {member.api_url}, log {member.log}")
        for name in NEW_PORTS:
            vip = next(v for v in lab.cfg.vips if v.name == name)
            wait_for(lambda: lab.ask("h1", vip), 20, f"{name} to answer")
        status.update(f"{RATE:g} new connections/s to web and to stream-fast, 6 long-lived ones; "
                      f"the leader is stopped {KILLS} times...")
        run = under_load(lab, KILLS, RATE, 3, 10.0)
        lab.save_state()
    for line in report(run):
        console.print(line)
    web, fast = run.failed["web"], run.failed["stream-fast"]
    checks = [
        ("each hand-over took less than the lease plus 1 s", max(h.seconds for h in run.handovers) < LEASE + 1,
         ", ".join(f"{h.how} {h.old} -> {h.new}: {h.seconds:.2f} s" for h in run.handovers)),
        ("no long-lived connection broke", not any(run.broken.values()),
         ", ".join(f"{name} {n}/{run.streams}" for name, n in run.broken.items())),
        ("stream-fast (picked by the switch) lost no new connection", fast[1] + fast[2] == 0,
         f"{fast[0]} opened, {fast[1] + fast[2]} failed"),
        ("web (picked by the controller) lost new connections only in a hand-over", web[2] == 0,
         f"{web[0]} opened, {web[1]} failed in a hand-over, {web[2]} outside one"),
    ]
    verdict = Table(title="checks", title_justify="left")
    for col in ("check", "result", "detail"):
        verdict.add_column(col)
    for name, ok, detail in checks:
        verdict.add_row(name, "[green]ok[/green]" if ok else "[red]FAILED[/red]", detail)
    console.print(verdict)
    ok = all(c[1] for c in checks)
    console.print(f"work folder: {workdir}" if keep or not ok else "")
    return 0 if ok else 1
