"""``lbapp demo [TOPOLOGY]``: start the controller, a Mininet topology and the backends'
services, drive real requests to every VIP, and report what happened. Exit 0 only when every
check holds. Everything started is stopped again, also on Ctrl-C."""
from __future__ import annotations

import argparse
import contextlib
import signal
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lbapp.config import load_config
from lbapp.flows import explain


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a Mininet cross-VLAN demo with real traffic and report")
    p.add_argument("topology", nargs="?", default="cross_vlan", help="a topology in topologies/ (default cross_vlan)")
    p.add_argument("--rounds", type=int, default=3, help="request cycles per VIP (default 3)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (controller log, flow dumps)")
    p.add_argument("--cluster", action="store_true",
                   help="three controllers on etcd instead: kill the leader under load and report the failover")
    p.set_defaults(func=run)


@dataclass
class Check:
    """One line of the demo's report: what was checked, whether it held, and what was seen."""

    name: str
    ok: bool
    detail: str


@dataclass
class VipResult:
    """What the demo saw of one VIP: answers per backend, the clients each backend saw, failures.
    Filled in by the demo as it drives requests."""

    name: str
    target: str
    expected: dict[str, float]
    served: Counter = field(default_factory=Counter)
    clients_seen: dict[str, set] = field(default_factory=lambda: defaultdict(set))
    clients_sent: set = field(default_factory=set)
    failures: int = 0
    in_switch: bool = False  # selection: switch: the switch picked, no session at the controller


SWITCH_ROUNDS = 8  # connections per unit of weight and round for a VIP the switch picks for


def run(args: argparse.Namespace) -> int:
    from lbapp.lab import MininetLab, UplinkCapture, load_topology, parse_answer, require_lab

    require_lab()  # root, a running OVS, Mininet, the tools: each missing piece is one line from main

    # Ctrl-C and SIGTERM both unwind through the lab's cleanup. Set explicitly: a shell that
    # starts the demo in the background hands it SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupted)

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    if args.cluster:
        from lbapp.cli.democluster import run_cluster
        from lbapp.lab import LabError
        if args.topology != "cross_vlan":
            raise LabError(f"the cluster demo runs on cross_vlan, not {args.topology}")
        return run_cluster(console, args.keep)
    module = load_topology(args.topology)
    config_path = Path(module.__file__).with_suffix(".yaml")
    cfg = load_config(config_path)
    workdir = Path(tempfile.mkdtemp(prefix="lbapp-demo-"))
    lab_info = module.LAB
    names = {ip: name for name, ip in lab_info.backends}
    clients = lab_info.clients
    checks: list[Check] = []
    results: list[VipResult] = []

    with console.status("starting OVS bridges, the controller and the Mininet topology...") as status, \
            MininetLab(args.topology, workdir, config_path) as lab:
        console.log(f"topology {args.topology} up; controller log {lab.controller_log}")
        backend_ips = {b.ip for v in cfg.vips for b in v.backends}
        with contextlib.ExitStack() as stack:
            own = tuple(str(b.address.ip) for _, b in cfg.all_balancers())  # probes' answers come there
            captures = [stack.enter_context(UplinkCapture(port, own)) for port in lab_info.uplinks]
            for vip in cfg.vips:
                total_weight = sum(b.weight for b in vip.backends)
                expected = {} if vip.external_director else {
                    names.get(str(b.ip), str(b.ip)): b.weight / total_weight for b in vip.backends if b.weight}
                res = VipResult(vip.name, f"{vip.ip}:{vip.port}/{vip.protocol}", expected,
                                in_switch=vip.selection == "switch")
                # a hash spreads by weight only on average: more connections to see it
                count = args.rounds * (4 if vip.external_director else
                                       total_weight * (SWITCH_ROUNDS if res.in_switch else 1))
                for i in range(count * len(clients)):
                    client = clients[i % len(clients)]
                    status.update(f"VIP {vip.name} {res.target}: request {i + 1}/{count * len(clients)} from {client}")
                    answer = lab.ask(client, vip)
                    if answer is None:
                        res.failures += 1
                        continue
                    seen = parse_answer(answer)
                    res.served[seen["backend"]] += 1
                    res.clients_seen[seen["backend"]].add(seen["client"].split(":")[0])
                    res.clients_sent.add(lab.net.get(client).IP())
                results.append(res)
        by_source = sum((c.by_source for c in captures), Counter())
        status.update("a backend's service stops and starts again")
        checks += failover(lab, cfg, names)
        client_ips = {lab.net.get(c).IP() for c in clients}
        status.update("reading flows and counters")
        explained = {sw: explain(lab.dump_flows(sw), cfg) for sw in lab_info.balancer_switches + lab_info.edge_switches}
        stage_counts = {sw: {**{k: len(v) for k, v in e.stages.items()}, "foreign": len(e.foreign)}
                        for sw, e in explained.items()}
        ports = {sw: lab.dump_ports(sw) for sw in lab_info.balancer_switches}
        lab.save_state()

    for res in results:
        table = Table(title=f"VIP {res.name} {res.target}", title_justify="left")
        for col in ("backend", "requests", "share", "expected", "client address seen"):
            table.add_column(col)
        total = sum(res.served.values()) or 1
        for backend in sorted(set(res.served) | set(res.expected)):
            exp = res.expected.get(backend)
            table.add_row(backend, str(res.served[backend]), f"{res.served[backend] / total:.0%}",
                          f"{exp:.0%}" if exp is not None else "director", ", ".join(sorted(res.clients_seen[backend])))
        console.print(table)
        checks.append(Check(f"{res.name}: every request answered", res.failures == 0, f"{res.failures} failed"))
        seen_ips = {ip for s in res.clients_seen.values() for ip in s}
        checks.append(Check(f"{res.name}: backends saw the clients' real IPs",
                            bool(seen_ips) and seen_ips == res.clients_sent, ", ".join(sorted(seen_ips))))
        if res.in_switch:
            checks.append(Check(f"{res.name}: the switch spread connections over every backend",
                                all(res.served[b] for b in res.expected),
                                " ".join(f"{b}={res.served[b]}" for b in sorted(res.expected))))
            at_controller = sum(1 for e in explained.values() for sess in e.sessions
                                if sess.vip == f"VIP {res.name} {res.target}")
            checks.append(Check(f"{res.name}: no connection went to the controller", at_controller == 0,
                                f"{at_controller} session flows"))
        elif res.expected:
            off = {b: abs(res.served[b] / total - share) for b, share in res.expected.items()}
            checks.append(Check(f"{res.name}: share matches the weights", max(off.values()) < 0.01,
                                " ".join(f"{b}={res.served[b]}" for b in sorted(res.expected))))
        else:
            checks.append(Check(f"{res.name}: director spread connections", len(res.served) > 1,
                                " ".join(f"{b}={n}" for b, n in sorted(res.served.items()))))

    replies = sum(by_source[str(ip)] for ip in backend_ips | {v.ip for v in cfg.vips})
    from_clients = sum(by_source[ip] for ip in client_ips)
    checks.append(Check("replies bypassed the balancer", replies == 0 and from_clients > 0,
                        f"into {', '.join(lab_info.uplinks)} from the router: {from_clients} client packets, "
                        f"{replies} from VIPs or backends"))

    if len(lab_info.balancer_switches) > 1:
        per_balancer = {sw: len(explained[sw].sessions) for sw in lab_info.balancer_switches}
        checks.append(Check("every balancer took connections (router ECMP)", all(per_balancer.values()),
                            " ".join(f"{sw}={n} sessions" for sw, n in per_balancer.items())))

    flows = Table(title="flows per pipeline stage", title_justify="left")
    flows.add_column("switch")
    stages = sorted({s for counts in stage_counts.values() for s in counts})
    for stage in stages:
        flows.add_column(stage)
    for sw, counts in stage_counts.items():
        flows.add_row(sw, *(str(counts.get(s, 0)) for s in stages))
    console.print(flows)
    for sw, dump in ports.items():
        console.print(f"[bold]{sw} port counters[/bold]\n{_port_lines(dump)}")

    verdict = Table(title="checks", title_justify="left")
    for col in ("check", "result", "detail"):
        verdict.add_column(col)
    for c in checks:
        verdict.add_row(c.name, "[green]ok[/green]" if c.ok else "[red]FAILED[/red]", c.detail)
    console.print(verdict)
    console.print(f"work folder: {workdir}" if args.keep or not all(c.ok for c in checks) else "")
    return 0 if all(c.ok for c in checks) else 1


def failover(lab, cfg, names: dict[str, str]) -> list[Check]:
    """The first backend of the first controller-picked VIP with a health check: its service
    stops while a client keeps asking, its check takes it out (no request fails after), then
    it starts again and comes back."""
    import re
    import time

    from lbapp.lab import LabError, parse_answer, wait_for

    vip = next((v for v in cfg.vips if v.health and v.selection == "controller" and not v.external_director), None)
    if vip is None:
        return []
    backend, client = vip.backends[0], lab.module.LAB.clients[0]
    name, check = names[str(backend.ip)], vip.health_of(backend)
    label = f"{check.type} check of {backend.ip}" + ("" if check.type == "icmp" else f":{check.port or vip.port}")

    def says(state: str) -> bool:
        return re.findall(rf"{re.escape(label)}: (up|down) \(", lab.controller_log.read_text())[-1:] == [state]

    def asks(count: int) -> list[str | None]:
        return [(parse_answer(a)["backend"] if (a := lab.ask(client, vip)) else None) for _ in range(count)]

    lab.stop_service(name)
    stopped, before = time.monotonic(), []
    while not says("down") and time.monotonic() < stopped + 60:
        before += asks(1)
    out, taken_out = time.monotonic() - stopped, says("down")
    after = asks(3 * len(vip.backends))
    lab.start_service(name)
    started = time.monotonic()
    try:
        wait_for(lambda: says("up"), 60, f"{label} to pass again")
    except LabError:
        pass
    back = time.monotonic() - started
    again = asks(2 * len(vip.backends))
    return [Check(f"{vip.name}: {name} stopped: its {check.type} check took it out",
                  taken_out and None not in after and name not in after,
                  f"in {out:.1f} s; failed requests: {before.count(None)} of {len(before)} before, "
                  f"{after.count(None)} of {len(after)} after"),
            Check(f"{vip.name}: {name} started again: back in service", name in again, f"in {back:.1f} s")]


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def _port_lines(dump: str) -> str:
    return "\n".join(line.strip() for line in dump.splitlines()[1:] if line.strip())
