"""A real etcd cluster on loopback for tests (Debian's etcd-server): several members, each its
own process, data folder and ports; killed, paused and resumed by pid. Never a mock."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from lbapp.lab import free_port


class EtcdCluster:
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
        initial = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.names)
        for name in self.names:
            data = self.workdir / f"etcd-{name}"
            log = open(self.workdir / f"etcd-{name}.log", "w")
            self.procs[name] = subprocess.Popen(
                ["etcd", "--name", name, "--data-dir", str(data),
                 "--listen-client-urls", f"http://127.0.0.1:{self.client[name]}",
                 "--advertise-client-urls", f"http://127.0.0.1:{self.client[name]}",
                 "--listen-peer-urls", f"http://127.0.0.1:{self.peer[name]}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[name]}",
                 "--initial-cluster", initial, "--initial-cluster-state", "new",
                 "--initial-cluster-token", f"lbapp-test-{os.getpid()}"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not all(self.healthy(n) for n in self.names):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd did not become healthy: see {self.workdir}/etcd-*.log")
            time.sleep(0.2)
        return self

    def healthy(self, name: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.client[name]}/health", timeout=1) as answer:
                return b'"true"' in answer.read()
        except OSError:
            return False

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()

    def __enter__(self) -> "EtcdCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
