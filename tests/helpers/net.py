"""Real network pieces for the OVS tier: namespaces with veth ports on netdev bridges, the
controller as a subprocess, ofproto/trace and raw frames. Everything made here is removed by
``close()`` (fixtures call it in ``finally``), by name and by pid, never by pattern."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from lbapp import apitoken
from lbapp.environment import listens
from lbapp.lab import free_port, wait_for  # noqa: F401  (the tests' polling helpers too)

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def sh(*args: str, check: bool = True, timeout: float = 30) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def require_tier(tier: str, mininet: bool = False) -> None:
    """Skip the calling test when this machine cannot run the ``tier`` ("OVS" or "Mininet");
    with LBAPP_REQUIRE_ALL=1 (CI, root) tests/conftest.py turns any such skip into a failure."""
    why_not = have_root_and_ovs()
    if why_not is None and mininet:
        try:
            import mininet.net  # noqa: F401
        except ImportError:
            why_not = "needs Debian's mininet (scripts/setup.sh)"
    if why_not:
        import pytest
        pytest.skip(f"{tier} tier: {why_not}")


def have_root_and_ovs() -> str | None:
    """None when the OVS tier can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("ovs-vsctl"):
        return "needs Open vSwitch (scripts/setup.sh)"
    if subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True).returncode != 0:
        return "Open vSwitch is not running (scripts/ovs.sh)"
    return None


class Lab:
    """Bridges, namespaces and a controller for one test."""

    def __init__(self, prefix: str, artifacts: Path) -> None:
        self.prefix = prefix
        self.artifacts = artifacts
        self.bridges: list[str] = []
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.controller_log: Path | None = None
        self.token_files: list[Path] = []  # the API tokens our controllers made in the default place

    # --- pieces ---

    def bridge(self, name: str, dpid: int) -> str:
        br = f"{self.prefix}{name}"
        sh("ovs-vsctl", "--may-exist", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
           "protocols=OpenFlow13", "fail_mode=secure", f"other-config:datapath-id={dpid:016x}")
        self.bridges.append(br)
        return br

    def host(self, bridge: str, name: str, ofport: int, ip: str, mac: str, gateway: str | None = None) -> str:
        """A namespace with one veth interface on ``bridge`` port ``ofport``; returns the namespace."""
        ns = f"{self.prefix}{name}"
        outside, inside = f"{ns}o", f"{ns}i"
        sh("ip", "netns", "del", ns, check=False)  # left over by a killed run: ours by name
        sh("ip", "link", "del", outside, check=False)
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        self.links.append(outside)
        sh("ip", "link", "set", inside, "netns", ns)
        self.ns(ns, "ip", "link", "set", inside, "address", mac)
        self.ns(ns, "ip", "addr", "add", ip, "dev", inside)
        self.ns(ns, "ip", "link", "set", inside, "up")
        self.ns(ns, "ip", "link", "set", "lo", "up")
        self.ns(ns, "ethtool", "-K", inside, "tx", "off", check=False)  # userspace datapath: see README
        if gateway:
            self.ns(ns, "ip", "route", "add", "default", "via", gateway)
        sh("ip", "link", "set", outside, "up")
        sh("ovs-vsctl", "add-port", bridge, outside, "--", "set", "interface", outside, f"ofport_request={ofport}")
        return ns

    def iface(self, ns: str) -> str:
        return f"{ns}i"

    def ns(self, ns: str, *args: str, check: bool = True, timeout: float = 30) -> str:
        return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)

    def controller(self, config: Path, *bridges: str, extra: tuple[str, ...] = (), conf_file: bool = False,
                   scheme: str = "tcp") -> None:
        """``lbapp run`` for ``config``, its switches ``bridges`` pointed at it (``scheme``: tcp, or
        ssl for a controller run with TLS options); with ``conf_file`` its settings come from an
        os-ken (oslo.config) file instead of the command line."""
        port = self.of_port = free_port()
        self.api_url = f"http://127.0.0.1:{free_port()}"
        self.controller_log = self.artifacts / "controller.log"
        api_port = self.api_url.rsplit(":", 1)[1]
        self.api_token_file = apitoken.default_path(int(api_port))  # as a user's controller would
        self.token_files.append(self.api_token_file)
        if conf_file:
            conf = self.artifacts / "os_ken.conf"
            conf.write_text(f"[DEFAULT]\nofp_listen_host = 127.0.0.1\nofp_tcp_listen_port = {port}\n\n"
                            f"[lbapp]\nconfig = {config}\napi_port = {api_port}\n")
            args = ["--config-file", str(conf)]
        else:
            args = ["-c", str(config), "--listen", "127.0.0.1", "--port", str(port), "--api-port", api_port]
        log = open(self.controller_log, "w")
        proc = subprocess.Popen([PYTHON, "-m", "lbapp.cli.main", "run", *args, "-v", *extra], stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        self.controller_proc = proc
        for br in bridges:
            sh("ovs-vsctl", "set-controller", br, f"{scheme}:127.0.0.1:{port}")
        wait_for(lambda: listens("127.0.0.1", int(api_port)) or proc.poll() is not None, 20, "the controller's API")
        for br in bridges:
            wait_for(lambda: "table=0" in self.dump(br), 20, f"the controller to program {br}")

    # --- observing ---

    def dump(self, bridge: str, *filters: str) -> str:
        return sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge, *filters)

    def groups(self, bridge: str) -> str:
        return sh("ovs-ofctl", "-O", "OpenFlow13", "dump-groups", bridge)

    def trace(self, bridge: str, flow: str) -> str:
        return sh("ovs-appctl", "ofproto/trace", bridge, flow)

    def sniff(self, ns: str, seconds: float, ethertype: int = 0x0003) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, PYTHON, "-m", "tests.helpers.rawsock", "recv",
                                 self.iface(ns), str(seconds), hex(ethertype)], stdout=subprocess.PIPE,
                                text=True, cwd=ROOT)
        self.procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def send(self, ns: str, *frames: bytes) -> None:
        self.ns(ns, PYTHON, "-m", "tests.helpers.rawsock", "send", self.iface(ns), *(f.hex() for f in frames))

    # --- cleanup ---

    def save_state(self) -> None:
        """Flows and ports of every bridge, for a failed test's folder."""
        for br in self.bridges:
            try:
                (self.artifacts / f"{br}.flows").write_text(self.dump(br))
                (self.artifacts / f"{br}.ports").write_text(sh("ovs-ofctl", "-O", "OpenFlow13", "dump-ports", br))
            except Exception as exc:  # noqa: BLE001 - best effort while reporting a failure
                (self.artifacts / f"{br}.error").write_text(str(exc))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for br in self.bridges:
            sh("ovs-vsctl", "--if-exists", "del-br", br, check=False)
        for link in self.links:
            sh("ip", "link", "del", link, check=False)
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)
        for path in self.token_files:
            path.unlink(missing_ok=True)


def lab_with_config(topology: str, workdir: Path, doc: dict):
    """A Mininet lab of ``topology`` run with the config ``doc`` (a changed copy of its YAML);
    its flows and ports are saved to ``workdir`` when it ends. For module fixtures:
    ``with lab_with_config(...) as lab: yield lab``."""
    import contextlib

    import yaml

    from lbapp.lab import MininetLab

    @contextlib.contextmanager
    def running():
        config = workdir / "lb.yaml"
        config.write_text(yaml.safe_dump(doc))
        with MininetLab(topology, workdir, config) as lab:
            try:
                yield lab
            finally:
                lab.save_state()
                print(f"lab state in {workdir}")

    return running()
