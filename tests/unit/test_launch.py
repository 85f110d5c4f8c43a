"""How lbapp is launched next to other os-ken apps (issue 25): ``lbapp run --app``, a launcher
script of the user's calling lbapp's entry point, and a plain os-ken ``AppManager.run_apps``.
Real processes on loopback ports; no switch is needed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lbapp.environment import listens
from lbapp.labcluster import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "topologies" / "worked_example.yaml")


def start(code: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT)


def wait(predicate, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out; the log ends: {log.read_text()[-1500:]}"
        time.sleep(0.1)


def test_a_side_app_whose_start_raises_ends_the_process_in_one_line():
    """Before: a traceback, and the process hung until SIGTERM."""
    out = subprocess.run([sys.executable, "-m", "lbapp.cli.main", "run", "-c", EXAMPLE, "--port", str(free_port()),
                          "--api-port", "0", "--app", "tests.helpers.failing_app"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "an app failed to start (RuntimeError): this app cannot start: its database is gone" in out.stderr


def test_a_launcher_script_calling_lbapps_entry_point_reloads_on_sighup_and_ends_on_ctrl_c(tmp_path):
    port, log = free_port(), tmp_path / "launcher.log"
    proc = start("from lbapp.cli.main import main\n"
                 f"raise SystemExit(main(['run', '-c', {EXAMPLE!r}, '--port', '{port}', '--api-port', '0', "
                 "'--app', 'tests.helpers.side_app']))", log)
    try:
        wait(lambda: listens("127.0.0.1", port) and "OpenFlow on" in log.read_text(), log)
        os.kill(proc.pid, signal.SIGHUP)
        wait(lambda: "reconfigured" in log.read_text() or "reloading" in log.read_text(), log)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log.read_text()


def test_loaded_by_a_plain_os_ken_manager_sighup_reloads_instead_of_killing(tmp_path):
    """Before: SIGHUP's default action ended the balancer."""
    port, log = free_port(), tmp_path / "manager.log"
    proc = start("import logging; logging.basicConfig(level=logging.INFO)\n"

                 "from os_ken import cfg\n"
                 "import lbapp.app  # its options\n"
                 "cfg.CONF(args=[], project='os_ken', default_config_files=[])\n"
                 f"cfg.CONF.set_override('config', {EXAMPLE!r}, group='lbapp')\n"
                 "cfg.CONF.set_override('api_port', 0, group='lbapp')\n"
                 f"cfg.CONF.set_override('ofp_tcp_listen_port', {port})\n"
                 "from os_ken.base.app_manager import AppManager\n"
                 "AppManager.run_apps(['lbapp.app'])\n", log)
    try:
        wait(lambda: listens("127.0.0.1", port), log)
        os.kill(proc.pid, signal.SIGHUP)
        wait(lambda: "reloading" in log.read_text() or proc.poll() is not None, log)  # the default action kills at once
        assert proc.poll() is None, log.read_text()[-2000:]
    finally:
        proc.kill()
        proc.wait()
