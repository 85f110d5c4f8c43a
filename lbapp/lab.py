"""A running lab: the controller, a Mininet topology on userspace OVS, and the backends' services.

Used by ``lbapp demo`` and the Mininet tests. Everything it starts it stops again, by object and
pid (never ``mn -c``, which kills by name): the services, the Mininet network, the controller.
"""
from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Callable

from lbapp.labcluster import ControllerProcess, EtcdCluster, free_port  # noqa: F401 (free_port: the labs' helpers)

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGIES = ROOT / "topologies"
ECHO_SERVER = TOPOLOGIES / "services" / "echo_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # what Mininet hosts run the services with (Debian's mininet lives there)
STREAM_CLIENT = TOPOLOGIES / "services" / "stream_client.py"
HTTP_PORTS = (80, 8080)
UDP_PORTS = (5353,)
# 7001 is in no VIP (direct access for comparisons); 7002 is free for VIPs a test or benchmark adds
STREAM_PORTS = (7000, 7001, 7002, 7003)


class LabError(RuntimeError):
    pass


def require_lab() -> None:
    """What a lab needs of this machine, each missing piece named with what to do."""
    from lbapp.environment import require_mininet, require_ovs, require_root, require_tools

    require_root("a Mininet lab")
    require_ovs()
    require_mininet()
    # ethtool: without TX offload off on the hosts' veths, TCP through the userspace datapath
    # fails silently; curl: the HTTP client of every request
    require_tools("ethtool", "curl", "ip")


def topology_names() -> list[str]:
    """The topologies in topologies/: the modules that define ``topos`` (not their helpers)."""
    return sorted(p.stem for p in TOPOLOGIES.glob("*.py") if not p.stem.startswith("_")
                  and "\ntopos = " in p.read_text())


def load_topology(name: str) -> ModuleType:
    path = TOPOLOGIES / f"{name}.py"
    if name not in topology_names():
        raise LabError(f"no topology {name!r} in {TOPOLOGIES} (have: {', '.join(topology_names())})")
    if str(TOPOLOGIES) not in sys.path:
        sys.path.insert(0, str(TOPOLOGIES))  # the topologies import their shared node classes
    spec = importlib.util.spec_from_file_location(f"lbapp_topology_{name}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "mininet":
            from lbapp.environment import require_mininet
            require_mininet()  # says what is missing and how to get it
        raise
    return module


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def run(*args: str, check: bool = True) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if check and out.returncode != 0:
        raise LabError(f"{' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


class MininetLab:
    """Owns one lab: the controller process (and its log), the Mininet network and the backends'
    services (``services``: host -> process), each as the object that started it. Changed only
    through its methods; ``stop`` ends what it started, by object and pid, never by name."""

    def __init__(self, topology: str, workdir: Path, config: Path | None = None, debug: bool = True,
                 controllers: int = 1, lease: int = 2) -> None:
        """``debug``: the controller logs every connection (``lbapp run -v``: the demo and the
        tests read those lines); benchmarks turn it off, as a log line per connection costs the
        controller about as much as the connection's pick. ``controllers`` > 1: a cluster of
        that many on a 3-member etcd on loopback, with a lease of ``lease`` seconds."""
        from lbapp.config import load_config

        self.module = load_topology(topology)
        self.config = config or TOPOLOGIES / f"{topology}.yaml"
        self.cfg = load_config(self.config)
        self.workdir = workdir
        self.net = None
        self.services: dict[str, subprocess.Popen] = {}  # backend host -> its service
        self.debug = debug
        self.lease = lease
        self.etcd: EtcdCluster | None = EtcdCluster(workdir) if controllers > 1 else None
        names = ["controller"] if controllers == 1 else [f"c{i + 1}" for i in range(controllers)]
        urls = self.etcd.urls if self.etcd is not None else None
        self.members = [ControllerProcess(name, self.config, workdir, debug, urls, lease=lease) for name in names]
        self.controller_log = self.members[0].log
        self.api_url = self.members[0].api_url  # the (first) controller's HTTP API
        self.api_token_file = self.members[0].token_file  # what its writes need (lbapp.apitoken)
        self.openflow = self.members[0].openflow  # its OpenFlow target (tcp:IP:PORT)

    @property
    def controller(self) -> subprocess.Popen | None:
        """The (first) controller's process."""
        return self.members[0].proc

    def leader(self) -> ControllerProcess | None:
        """The member that says it leads (the only one, without a cluster), if any."""
        if self.etcd is None:
            return self.members[0]
        return next((m for m in self.members if m.running() and m.leads()), None)

    # --- lifecycle ---

    def __enter__(self) -> "MininetLab":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        require_lab()
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import RemoteController

        class AlreadyListening(RemoteController):
            """We wait for the port ourselves: Mininet's own check pipes the controller's binary
            hello through telnet and fails to decode it whenever its random xid is not UTF-8."""

            def checkListening(self) -> None:
                pass

        self.workdir.mkdir(parents=True, exist_ok=True)
        topo = self.module.topos[next(iter(self.module.topos))]()
        self._remove_leftovers(topo)
        if self.etcd is not None:
            self.etcd.start()
        for member in self.members:
            member.log.write_text("")
            try:
                member.start()
            except RuntimeError as exc:
                raise LabError(str(exc)) from None
        if self.etcd is not None:
            wait_for(self.leader, 30, "a controller to lead the cluster")
        setLogLevel("warning")
        self.net = Mininet(topo=topo, controller=None, autoSetMacs=False, build=False, waitConnected=False)
        for i, member in enumerate(self.members):  # each switch is given every controller
            self.net.addController(f"c{i}", controller=AlreadyListening, ip="127.0.0.1", port=member.port)
        self.net.build()
        self.net.start()
        from lbapp import ctzone
        ctzone.flush()  # an earlier lab's pins would hold this one's reused client ports
        for switch in self.net.switches:
            wait_for(lambda: "table=0" in self.dump_flows(switch.name), 30,
                     f"the controller to program {switch.name} (see {self.controller_log})")
        # the controller applies the zone policy to the local datapath as each balancer connects
        # (lbapp.ctkeeper): pins outlive OVS's 30 s SYN_SENT timeout
        wait_for(lambda: any(m.said("conntrack zone policy applied") for m in self.members), 30,
                 f"the controller to apply the conntrack zone policy (see {self.controller_log})")
        lab = self.module.LAB
        for name, _ in lab.backends:
            self.start_service(name)
        for switch in lab.balancer_switches:
            wait_for(lambda: lab.router_balancer_mac in self.dump_flows(switch, "table=40"), 30,
                     f"balancer {switch} to learn the router's MAC")

    def start_service(self, name: str) -> None:
        """The echo service on backend ``name`` (HTTP, UDP and the stream ports), once it listens."""
        proc = self.net.get(name).popen([SYSTEM_PYTHON, str(ECHO_SERVER), name, "--http", *map(str, HTTP_PORTS),
                                         "--udp", *map(str, UDP_PORTS), "--stream", *map(str, STREAM_PORTS)],
                                        stdout=subprocess.PIPE, text=True)
        self.services[name] = proc
        if proc.stdout.readline().strip() != "ready":
            raise LabError(f"the service on {name} did not start")

    def stop_service(self, name: str) -> None:
        """Stop backend ``name``'s service (its host stays up: its kernel refuses connections)."""
        proc = self.services.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        """Stop everything this lab started; each step runs even if an earlier one failed."""
        try:
            for name in list(self.services):
                self.stop_service(name)
            if self.net is not None:
                net, self.net = self.net, None
                for host in net.hosts:
                    if host.waiting:  # interrupted in the middle of a command: finish it first
                        host.sendInt()
                        host.waitOutput()
                try:
                    net.stop()
                finally:
                    for switch in net.switches:  # in case Mininet stopped half-way
                        run("ovs-vsctl", "--if-exists", "del-br", switch.name, check=False)
        finally:
            try:
                for member in self.members:
                    member.stop()
            finally:
                if self.etcd is not None:
                    self.etcd.stop()

    @staticmethod
    def _remove_leftovers(topo) -> None:
        """A killed run can leave its bridges and root-namespace veths: remove ours, by name."""
        for switch in topo.switches():
            run("ovs-vsctl", "--if-exists", "del-br", switch, check=False)
        links = run("ip", "-o", "link", "show", check=False)
        for switch in topo.switches():
            for name in re.findall(rf"^\d+: ({re.escape(switch)}-eth\d+)[@:]", links, re.M):
                run("ip", "link", "del", name, check=False)

    # --- observing and driving ---

    def state(self) -> dict:
        """The (first) controller's ``GET /v1/state``."""
        return self.members[0].state(timeout=10)

    def dump_flows(self, switch: str, *filters: str) -> str:
        return run("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", switch, *filters, check=False)

    def dump_ports(self, switch: str) -> str:
        return run("ovs-ofctl", "-O", "OpenFlow13", "dump-ports", switch, check=False)

    def http_get(self, client: str, url: str, timeout: float = 3, local_port: int | None = None) -> str | None:
        """One request on a new TCP connection; the body, or None on failure. ``local_port``: its
        source port (one above the ephemeral range: no session flow of an earlier connection
        can match it)."""
        out = self.net.get(client).cmd(f"curl -s -m {timeout} {f'--local-port {local_port} ' if local_port else ''}{url}")
        return out.strip() if out.strip().startswith("backend=") else None

    def udp_ask(self, client: str, ip: str, port: int, timeout: float = 2) -> str | None:
        script = (f"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout({timeout});"
                  f"s.sendto(b'hi',('{ip}',{port}));print(s.recv(512).decode().strip())")
        out = self.net.get(client).cmd(f"{SYSTEM_PYTHON} -c \"{script}\" 2>/dev/null").strip()
        return out if out.startswith("backend=") else None

    def ask(self, client: str, vip) -> str | None:
        """One request to ``vip`` on a new connection, with the service its port runs."""
        if vip.protocol == "udp":
            return self.udp_ask(client, str(vip.ip), vip.port)
        if vip.port in STREAM_PORTS:
            out, _ = self.stream(client, str(vip.ip), vip.port, 1, 0).communicate(timeout=15)
            return out.strip() if out.startswith("backend=") else None
        return self.http_get(client, f"http://{vip.ip}:{vip.port}/")

    def stream(self, client: str, ip: str, port: int, count: int, interval: float, timeout: float = 10
               ) -> subprocess.Popen:
        """A long-lived TCP connection from ``client``, in the background; read its stdout
        (``timeout``: the longest wait for one answer)."""
        return self.net.get(client).popen([SYSTEM_PYTHON, str(STREAM_CLIENT), ip, str(port), str(count), str(interval),
                                           str(timeout)], stdout=subprocess.PIPE, text=True)

    def save_state(self) -> None:
        for switch in self.module.LAB.switches:
            (self.workdir / f"{switch}.flows").write_text(self.dump_flows(switch))
            (self.workdir / f"{switch}.ports").write_text(self.dump_ports(switch))


class UplinkCapture:
    """Counts the IPv4 packets a switch port receives, by source address, while running.

    Runs in this (root) namespace on the switch's side of the veth: frames the switch *sends*
    are PACKET_OUTGOING there and skipped, so what is counted is what arrived at the switch.
    Packets to ``ignore_dst`` (the balancers' own addresses: health probes' answers) are not.
    """

    def __init__(self, port: str, ignore_dst: tuple[str, ...] = ()) -> None:
        self.port = port
        self.ignore_dst = {socket.inet_aton(ip) for ip in ignore_dst}
        self.by_source: Counter[str] = Counter()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        self._sock.bind((port, 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "UplinkCapture":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] != socket.PACKET_OUTGOING and len(frame) >= 34 and frame[30:34] not in self.ignore_dst:
                self.by_source[socket.inet_ntoa(frame[26:30])] += 1


def parse_answer(text: str) -> dict[str, str]:
    """``backend=b1 client=IP:PORT server=IP:PORT`` -> dict."""
    return dict(part.split("=", 1) for part in text.split())
