"""``lbapp run -c FILE``: the controller, on os-ken's app manager (os-ken 4 ships no osken-manager)."""
from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from typing import Callable

from lbapp.config import load_config
from lbapp.environment import require_listen_port
from lbapp.pipeline.bundles import BUNDLE_MIN_DEFAULT

DEFAULT_API_PORT = 8553


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the controller")
    p.add_argument("-c", "--config", required=True, help="the balancer's YAML config")
    p.add_argument("--listen", default="127.0.0.1",
                   help="OpenFlow listen address (default 127.0.0.1: switches on this machine only)")
    p.add_argument("--port", type=int, default=6653, help="OpenFlow listen port (default 6653)")
    p.add_argument("--burst", type=int, default=256,
                   help="while packet-ins queue, hold up to this many replies and write them together "
                        "(default 256; 1 sends each at once)")
    p.add_argument("--bundle-min", type=int, default=BUNDLE_MIN_DEFAULT,
                   help="a held burst with at least this many session flow-mods goes to the switch as one "
                        f"ONF bundle, one flow-table change (default {BUNDLE_MIN_DEFAULT}; 0: never)")
    p.add_argument("--api-listen", default="127.0.0.1", help="address of the HTTP API (default 127.0.0.1)")
    p.add_argument("--api-port", type=int, default=DEFAULT_API_PORT,
                   help=f"port of the HTTP API: state, sessions, runtime changes (default {DEFAULT_API_PORT}; 0: none)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (SIGHUP reloads the config)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    load_config(args.config)  # refuse an invalid file before anything starts
    if args.burst < 1:
        raise SystemExit("error: --burst must be at least 1")
    if args.bundle_min < 0:
        raise SystemExit("error: --bundle-min must be 0 (never) or more")
    require_listen_port(args.listen, args.port)
    if args.api_port:
        require_listen_port(args.api_listen, args.api_port, ("--api-listen", "--api-port"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import lbapp.app  # noqa: F401  (registers the [lbapp] options)
    logging.getLogger("lbapp").info("lbapp: OpenFlow on %s:%d, config %s", args.listen, args.port, args.config)
    serve(["lbapp.app"], args.listen, args.port, overrides={("config", "lbapp"): args.config,
                                                           ("burst", "lbapp"): args.burst,
                                                           ("bundle_min", "lbapp"): args.bundle_min,
                                                           ("api_listen", "lbapp"): args.api_listen,
                                                           ("api_port", "lbapp"): args.api_port},
          on_hup=lambda apps: next(a for a in apps if type(a).__name__ == "LbApp").reload())
    return 0


def serve(app_modules: list[str], listen: str, port: int, overrides: dict | None = None,
          on_hup: Callable[[list], None] | None = None) -> None:
    """Run os-ken apps until SIGINT/SIGTERM, then exit the process.

    Not AppManager.run_apps: with os-ken 4's native-thread hub its shutdown path calls a kill()
    that threads lack, and the app threads cannot be killed either, so after closing the apps
    the process exits directly.
    """
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", listen)
    cfg.CONF.set_override("ofp_tcp_listen_port", port)
    for (name, group), value in (overrides or {}).items():
        cfg.CONF.set_override(name, value, group=group)
    manager = AppManager.get_instance()
    manager.load_apps(app_modules)
    manager.instantiate_apps(**manager.create_contexts())
    # Long-lived start-up objects out of the collector's way, and fewer young-generation
    # collections: each session makes a few objects, and full collections showed in the p99.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # os-ken 4 runs receive, dispatch and send on three native threads: hand the GIL over
    # sooner than the default 5 ms, or a reply can wait a whole interval behind another thread.
    sys.setswitchinterval(0.0005)
    stop, hup = threading.Event(), threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: hup.set())
    while not stop.wait(0.5):
        if hup.is_set():
            hup.clear()
            if on_hup:
                try:
                    on_hup(list(manager.applications.values()))
                except Exception:  # noqa: BLE001 - nothing a reload does may end this loop or its signals
                    logging.getLogger("lbapp").exception("reload failed; the running config stays")
    log = logging.getLogger("lbapp")
    log.info("lbapp: stopping")
    manager.close()
    log.info("lbapp: stopped")
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)
