"""A lab's control plane: one ``lbapp run`` process, or several joined through a real etcd
cluster on loopback (Debian's etcd-server: several members, each its own process, data folder
and ports). Used by lbapp.lab (the demo, the Mininet tests, the benchmarks) and the OVS tests.
Each process is started, paused, killed and stopped by pid, never by name."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lbapp.environment import listens

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _end(proc: subprocess.Popen, sig: int = signal.SIGINT, wait: float = 10) -> None:
    """Stop ``proc`` (resumed first if paused): ``sig``, then a kill after ``wait`` seconds."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGCONT)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# etcd's own leader election on loopback: a heartbeat every 50 ms and an election after 500 ms
# without one (etcd's defaults, 100 and 1000 ms, suit a LAN). A member lost then costs etcd well
# under a second without a leader, less than the share of a lab's 2 s lease a controller's
# lead survives without a renewal (lbapp.cluster.leadership).
HEARTBEAT_MS, ELECTION_MS = 50, 500


class EtcdCluster:
    """Owns ``members`` etcd processes on loopback, their logs and data folders under ``workdir``."""

    def __init__(self, workdir: Path, members: int = 3) -> None:
        if shutil.which("etcd") is None:
            raise RuntimeError("etcd is not installed: run scripts/setup.sh (Debian's etcd-server)")
        self.workdir = workdir
        self.names = [f"m{i + 1}" for i in range(members)]
        self.client = {n: free_port() for n in self.names}
        self.peer = {n: free_port() for n in self.names}
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.client[n]}" for n in self.names]

    def start(self) -> "EtcdCluster":
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            self.start_member(name, new=True)
        deadline = time.monotonic() + 30
        while not all(self.healthy(n) for n in self.names):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd did not become healthy: see {self.workdir}/etcd-*.log")
            time.sleep(0.2)
        return self

    def start_member(self, name: str, new: bool = False) -> None:
        """Member ``name``'s process (again, after :meth:`kill`: from its data folder)."""
        initial = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.names)
        self.procs[name] = subprocess.Popen(
            ["etcd", "--name", name, "--data-dir", str(self.workdir / f"etcd-{name}"),
             "--listen-client-urls", f"http://127.0.0.1:{self.client[name]}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.client[name]}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer[name]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[name]}",
             "--initial-cluster", initial, "--initial-cluster-state", "new" if new else "existing",
             "--initial-cluster-token", f"lbapp-lab-{os.getpid()}",
             "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS)],
            stdout=open(self.workdir / f"etcd-{name}.log", "a"), stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        _end(self.procs[name], signal.SIGKILL)

    def healthy(self, name: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.client[name]}/health", timeout=1) as answer:
                return b'"true"' in answer.read()
        except OSError:
            return False

    def stop(self) -> None:
        for proc in self.procs.values():
            _end(proc, signal.SIGTERM)
        self.procs.clear()

    def __enter__(self) -> "EtcdCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ControllerProcess:
    """One ``lbapp run`` of a lab: its process, OpenFlow and API ports and log. ``cluster``:
    the etcd URLs to join (with ``member`` as its name and ``lease`` seconds), or none."""

    def __init__(self, name: str, config: Path, workdir: Path, debug: bool = True, cluster: list[str] | None = None,
                 cluster_name: str = "lbapp", lease: int = 2, extra: tuple[str, ...] = ()) -> None:
        self.name, self.config, self.debug = name, config, debug
        self.port, self.api_port = free_port(), free_port()
        self.log, self.token_file = workdir / f"{name}.log", workdir / f"{name}.token"
        joining = ["--etcd", ",".join(cluster), "--cluster", cluster_name, "--member", name,
                   "--lease", str(lease)] if cluster else []
        self.args = [sys.executable, "-m", "lbapp.cli.main", "run", "-c", str(config), "--listen", "127.0.0.1",
                     "--port", str(self.port), "--api-port", str(self.api_port),
                     "--api-token-file", str(self.token_file), *joining, *extra,
                     *(["-v"] if debug else [])]
        self.proc: subprocess.Popen | None = None

    @property
    def openflow(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, timeout: float = 30) -> None:
        """Run it (its log appended to) and wait until it listens; RuntimeError if it exits."""
        self.proc = subprocess.Popen(self.args, stdout=open(self.log, "a"), stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while not listens("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"controller {self.name} did not start listening: see {self.log}")
            time.sleep(0.1)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def said(self, pattern: str) -> bool:
        return self.log.exists() and re.search(pattern, self.log.read_text()) is not None

    def state(self, timeout: float = 5) -> dict:
        """Its ``GET /v1/state``."""
        with urllib.request.urlopen(f"{self.api_url}/v1/state", timeout=timeout) as answer:
            return json.load(answer)

    def leads(self) -> bool:
        """Whether it says it leads its cluster (False if it does not answer)."""
        try:
            return self.state(timeout=1).get("cluster", {}).get("role") == "leader"
        except (OSError, ValueError):
            return False

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is not None:
            _end(self.proc)
