"""``lbapp run -c FILE``: the controller, on os-ken's app manager (os-ken 4 ships no osken-manager)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from lbapp.config import load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the controller")
    p.add_argument("-c", "--config", required=True, help="the balancer's YAML config")
    p.add_argument("--listen", default="0.0.0.0", help="OpenFlow listen address (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=6653, help="OpenFlow listen port (default 6653)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (SIGHUP reloads the config)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    load_config(args.config)  # refuse an invalid file before anything starts
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import lbapp.app  # noqa: F401  (registers the [lbapp] options)
    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", args.listen)
    cfg.CONF.set_override("ofp_tcp_listen_port", args.port)
    cfg.CONF.set_override("config", args.config, group="lbapp")
    logging.getLogger("lbapp").info("lbapp: OpenFlow on %s:%d, config %s", args.listen, args.port, args.config)
    # Not AppManager.run_apps: with os-ken 4's native-thread hub its shutdown path calls a
    # kill() that threads lack. The app threads cannot be killed either, so after closing the
    # apps the process exits directly.
    manager = AppManager.get_instance()
    manager.load_apps(["lbapp.app"])
    manager.instantiate_apps(**manager.create_contexts())
    stop, reload = threading.Event(), threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    app = next(a for a in manager.applications.values() if type(a).__name__ == "LbApp")
    while not stop.wait(0.5):
        if reload.is_set():
            reload.clear()
            app.reload()
    log = logging.getLogger("lbapp")
    log.info("lbapp: stopping")
    manager.close()
    log.info("lbapp: stopped")
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)
