"""``lbapp run -c FILE``: the controller, on os-ken's app manager (os-ken 4 ships no osken-manager).

Its settings are os-ken's own oslo.config options, so lbapp drops into an os-ken deployment:
``--config-file`` reads them in the format os-ken apps use (``[DEFAULT]`` ofp_listen_host,
ofp_tcp_listen_port, ctl_privkey, ctl_cert, ca_certs; ``[lbapp]`` config, burst, bundle_min,
api_listen, api_port, api_token_file), options given on the command line win, and ``--app`` runs further
os-ken applications beside lbapp in the same manager, as ryu-manager runs several.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lbapp import apitoken
from lbapp.config import load_config
from lbapp.config.load import read_config_text
from lbapp.environment import EnvironmentProblem, listens, require_listen_port, require_tls
from lbapp.pipeline.bundles import BUNDLE_MIN_DEFAULT

LISTEN_WAIT_S = 10  # for os-ken's OpenFlow server to listen

DEFAULT_LISTEN = "127.0.0.1"  # switches on this machine only, unless told otherwise
DEFAULT_PORT = 6653
DEFAULT_API_PORT = 8553

# command-line option -> (oslo option, group): what each sets when given
_OVERRIDES = {"config": ("config", "lbapp"), "listen": ("ofp_listen_host", None),
              "port": ("ofp_tcp_listen_port", None), "burst": ("burst", "lbapp"),
              "bundle_min": ("bundle_min", "lbapp"), "api_listen": ("api_listen", "lbapp"),
              "api_port": ("api_port", "lbapp"), "api_token_file": ("api_token_file", "lbapp"), "tls_key": ("ctl_privkey", None),
              "tls_cert": ("ctl_cert", None), "tls_ca": ("ca_certs", None), "etcd": ("etcd", "lbapp"),
              "cluster": ("cluster", "lbapp"), "member": ("member", "lbapp"), "lease": ("lease", "lbapp")}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the controller")
    p.add_argument("-c", "--config", help="the balancer's YAML config (or [lbapp] config in a --config-file)")
    p.add_argument("--config-file", action="append", default=[], metavar="FILE",
                   help="an oslo.config file, as os-ken apps read ([DEFAULT] ofp_listen_host, ofp_tcp_listen_port, "
                        "ctl_privkey, ctl_cert, ca_certs; [lbapp] config, burst, bundle_min, api_listen, api_port, api_token_file, etcd, "
                        "cluster, member, lease); "
                        "repeatable; options given here win")
    p.add_argument("--app", action="append", default=[], metavar="MODULE",
                   help="another os-ken application module to run beside lbapp (repeatable): a module "
                        "of yours, importable (on PYTHONPATH); os-ken 4 ships no example apps")
    p.add_argument("--listen", help=f"OpenFlow listen address (default {DEFAULT_LISTEN}: switches on this "
                                     "machine only)")
    p.add_argument("--port", type=int, help=f"OpenFlow listen port (default {DEFAULT_PORT})")
    p.add_argument("--tls-key", metavar="FILE", help="the controller's private key (PEM): OpenFlow over TLS only")
    p.add_argument("--tls-cert", metavar="FILE", help="the controller's certificate (PEM)")
    p.add_argument("--tls-ca", metavar="FILE",
                   help="the CA certificate(s) (PEM) that must have signed each switch's certificate")
    p.add_argument("--burst", type=at_least(1),
                   help="while packet-ins queue, hold up to this many replies and write them together "
                        "(default 256; 1 sends each at once)")
    p.add_argument("--bundle-min", type=at_least(0),
                   help="a held burst with at least this many session flow-mods goes to the switch as one "
                        f"ONF bundle, one flow-table change (default {BUNDLE_MIN_DEFAULT}; 0: never)")
    p.add_argument("--api-listen", help="address of the HTTP API (default 127.0.0.1)")
    p.add_argument("--api-port", type=int,
                   help=f"port of the HTTP API: state, sessions, runtime changes (default {DEFAULT_API_PORT}; 0: none)")
    p.add_argument("--api-token-file", metavar="FILE",
                   help="the token the API's writes need, made 0600 at first start (default "
                        "/run/lbapp/api-PORT.token as root, else in $XDG_RUNTIME_DIR/lbapp)")
    p.add_argument("--etcd", metavar="URL[,URL...]",
                   help="join a cluster of lbapp controllers through these etcd members (one leader at a time "
                        "writes to the switches; give every switch every controller: see the printed command)")
    p.add_argument("--cluster", help="the cluster's name: its keys in etcd (default lbapp)")
    p.add_argument("--member", help="this member's name (default host:api-port)")
    p.add_argument("--lease", type=int, help="seconds a leader may go without renewing its etcd lease (default 5: "
                                             "longer than etcd takes to elect a leader of its own, with its defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (SIGHUP reloads the config)")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Settings:
    """What the controller runs with, resolved from defaults, config files and options."""

    config: str
    listen: str
    port: int
    api_listen: str
    api_port: int
    api_token_file: str
    burst: int
    bundle_min: int
    tls: bool


def at_least(lowest: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``lowest`` on."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = lowest - 1
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number from {lowest} on")
        return value
    return whole


def run(args: argparse.Namespace) -> int:
    from lbapp import oskenfix

    oskenfix.check()  # an os-ken without an internal lbapp relies on: one line, before anything starts
    for module in args.app:
        if not _importable(module):
            raise EnvironmentProblem(f"--app {module[:100]!r}: no such Python module")
    settings = configure(args.config_file, {key: getattr(args, key) for key in _OVERRIDES})
    load_config(settings.config)  # refuse an invalid file before anything starts
    if cfg_etcd():
        _join_cluster(settings.config)  # and one that is not the cluster's
    require_listen_port(settings.listen, settings.port)
    if settings.api_port:
        require_listen_port(settings.api_listen, settings.api_port, ("--api-listen", "--api-port"))
        apitoken.ensure(settings.api_token_file)  # made, or one line on why not, before anything starts
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    opened = (f"lbapp: OpenFlow{' over TLS' if settings.tls else ''} on {settings.listen}:{settings.port}, config "
              f"{settings.config}{', with ' + ', '.join(args.app) if args.app else ''}")
    if cfg_etcd():
        logging.getLogger("lbapp").info(
            "lbapp: a cluster member: give every switch every member, e.g. ovs-vsctl set-controller BRIDGE "
            "tcp:%s:%d tcp:OTHER:PORT ...", settings.listen, settings.port)
    serve(["lbapp.app", *args.app], on_hup=lambda apps: next(a for a in apps if type(a).__name__ == "LbApp").reload(),
          listening=(settings.listen, settings.port, opened))
    return 0


def cfg_etcd() -> str:
    from os_ken import cfg
    return cfg.CONF.lbapp.etcd


def configure(config_files: list[str], given: dict[str, Any]) -> Settings:
    """Set os-ken's options: lbapp run's defaults, then ``config_files``, then the options
    ``given`` on the command line (those not None). One line of error for anything wrong."""
    from oslo_config import cfg as oslo
    from os_ken import cfg

    import lbapp.app  # noqa: F401  (registers the [lbapp] options)

    conf = cfg.CONF
    conf.set_default("ofp_listen_host", DEFAULT_LISTEN)
    conf.set_default("ofp_tcp_listen_port", DEFAULT_PORT)
    conf.set_default("api_port", DEFAULT_API_PORT, group="lbapp")
    for name in config_files:
        if not Path(name).is_file():
            raise EnvironmentProblem(f"--config-file {name}: no such file")
    said = io.StringIO()  # oslo.config prints some errors itself, then exits
    try:
        # no default config files: what this machine has in /etc/os_ken must not change a run silently
        with contextlib.redirect_stderr(said):
            conf(args=[f"--config-file={name}" for name in config_files], project="os_ken", default_config_files=[])
        for key, value in given.items():
            if value is not None:
                option, group = _OVERRIDES[key]
                conf.set_override(option, value, group=group)
        tls = [conf.ctl_privkey, conf.ctl_cert, conf.ca_certs]
        settings = Settings(conf.lbapp.config or os.environ.get("LBAPP_CONFIG") or "", conf.ofp_listen_host,
                            conf.ofp_tcp_listen_port, conf.lbapp.api_listen, conf.lbapp.api_port,
                            conf.lbapp.api_token_file or str(apitoken.default_path(conf.lbapp.api_port)), conf.lbapp.burst,
                            conf.lbapp.bundle_min, all(tls))
    except (oslo.Error, ValueError) as exc:
        raise EnvironmentProblem(f"--config-file: {_first_line(exc)}") from None
    except SystemExit:
        raise EnvironmentProblem(f"--config-file: {said.getvalue().strip()[:300] or 'refused'}") from None
    if not settings.config:
        raise EnvironmentProblem("no balancer config: give -c FILE (or [lbapp] config in a --config-file)")
    conf.set_override("config", settings.config, group="lbapp")
    if any(tls) and not all(tls):
        raise EnvironmentProblem("TLS needs all three: --tls-key, --tls-cert and --tls-ca (ctl_privkey, ctl_cert, "
                                 "ca_certs): without the CA any peer would be let in")
    for path in filter(None, tls):
        if not Path(path).is_file():
            raise EnvironmentProblem(f"TLS: {path}: no such file")
    if settings.tls:
        require_tls(*tls)
    if settings.tls:  # os-ken then listens on its TLS port alone: the one asked for
        conf.set_override("ofp_ssl_listen_port", settings.port)
    if settings.burst < 1:
        raise EnvironmentProblem("--burst (burst) must be at least 1")
    if settings.bundle_min < 0:
        raise EnvironmentProblem("--bundle-min (bundle_min) must be 0 (never) or more")
    _check_cluster(conf.lbapp)
    return settings


def _join_cluster(config: str) -> None:
    """Refuse, in one line, a member whose config is not the cluster's, or an etcd that does
    not answer (the first member seeds the cluster's config with its file)."""
    from os_ken import cfg

    from lbapp.cluster.etcd import Etcd, EtcdUnavailable
    from lbapp.cluster.sharedconfig import ConfigDiffers, SharedConfig

    options = cfg.CONF.lbapp
    try:
        SharedConfig(Etcd([u.strip() for u in options.etcd.split(",") if u.strip()]), options.cluster).join(
            read_config_text(Path(config)))
    except (ConfigDiffers, EtcdUnavailable) as exc:
        raise EnvironmentProblem(f"--etcd: {exc}") from None


def _check_cluster(options) -> None:
    """The cluster options: etcd URLs that parse, a lease etcd can keep."""
    from lbapp.cluster.etcd import parse_url

    for url in filter(None, (u.strip() for u in (options.etcd or "").split(","))):
        try:
            parse_url(url)
        except ValueError as exc:
            raise EnvironmentProblem(f"--etcd (etcd): {exc}") from None
    if not 2 <= options.lease <= 60:
        raise EnvironmentProblem(f"--lease (lease): {options.lease}: give 2 to 60 seconds")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or an empty or relative name
        return False


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def serve(app_modules: list[str], on_hup: Callable[[list], None] | None = None,
          listening: tuple[str, int, str] | None = None) -> None:
    """Run os-ken apps (options set: :func:`configure`) until SIGINT/SIGTERM, then exit the process.
    ``listening``: (host, port, line): the OpenFlow port os-ken opens on a thread of its own,
    where a failure is only a traceback there; the line is logged once it listens, else the
    process ends with one line after LISTEN_WAIT_S.

    Not AppManager.run_apps: with os-ken 4's native-thread hub its shutdown path calls a kill()
    that threads lack, and the app threads cannot be killed either, so after closing the apps
    the process exits directly.
    """
    from os_ken.base.app_manager import AppManager

    from lbapp import oskenfix

    oskenfix.apply()  # any app served here: an ended connection's threads end
    manager = AppManager.get_instance()
    try:
        manager.load_apps(app_modules)
    except Exception as exc:  # noqa: BLE001 - another app's module that fails to load: one line, not a traceback
        raise EnvironmentProblem(f"loading {', '.join(app_modules[1:]) or app_modules[0]}: {_first_line(exc)}"
                                 ) from None
    log = logging.getLogger("lbapp")
    # ours before any app starts: a signal during the start is not lost, nor a KeyboardInterrupt
    stop, hup = threading.Event(), threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: hup.set())
    try:
        manager.instantiate_apps(**manager.create_contexts())
    except Exception as exc:  # noqa: BLE001 - an app whose start raises: one line, and no process left hanging
        log.error("lbapp: an app failed to start (%s): %s", type(exc).__name__, _first_line(exc))
        logging.shutdown()
        os._exit(1)  # the apps already started run threads that would keep the process alive
    if listening is not None:
        host, port, opened = listening
        deadline = time.monotonic() + LISTEN_WAIT_S
        while not listens(host, port):
            if time.monotonic() > deadline:
                log.error("lbapp: nothing listens on %s:%d after %d s: the OpenFlow server did not start (see above)",
                          host, port, LISTEN_WAIT_S)
                logging.shutdown()
                os._exit(1)
            time.sleep(0.05)
        log.info("%s", opened)
    # Long-lived start-up objects out of the collector's way, and fewer young-generation
    # collections: each session makes a few objects, and full collections showed in the p99.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # os-ken 4 runs receive, dispatch and send on three native threads: hand the GIL over
    # sooner than the default 5 ms, or a reply can wait a whole interval behind another thread.
    sys.setswitchinterval(0.0005)
    while not stop.wait(0.5):
        if hup.is_set():
            hup.clear()
            if on_hup:
                try:
                    on_hup(list(manager.applications.values()))
                except Exception:  # noqa: BLE001 - nothing a reload does may end this loop or its signals
                    logging.getLogger("lbapp").exception("reload failed; the running config stays")
    log.info("lbapp: stopping")
    manager.close()
    log.info("lbapp: stopped")
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)
