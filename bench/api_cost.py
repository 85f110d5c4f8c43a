"""What the HTTP API and /metrics cost the per-connection path: lbapp's setup rate and latency
(setup_rate.py's method, each beside its own null app) with a scraper polling /metrics and
/v1/state every second, against lbapp without the API, in alternating runs. ``--vips N``: the
config holds N VIPs (the one connected to, and N - 1 of 10 backends each that only take room:
what a scrape of a large controller costs the one VIP in use).

    python bench/api_cost.py [--seconds 3] [--runs 3] [--vips 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from setup_rate import config_for, free_port, lbapp_command, measure  # noqa: E402


class Scraper:
    """Polls the API every ``interval`` seconds while running; counts the scrapes."""

    def __init__(self, api_port: int, paths: tuple[str, ...], interval: float = 1.0) -> None:
        self.base, self.paths, self.interval = f"http://127.0.0.1:{api_port}", paths, interval
        self.scrapes, self.seconds = 0, []  # each /metrics scrape's time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Scraper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for path in self.paths:
                try:
                    started = time.perf_counter()
                    with urllib.request.urlopen(self.base + path, timeout=30) as r:
                        r.read()
                    self.scrapes += 1
                    if path == "/metrics":
                        self.seconds.append(time.perf_counter() - started)
                except OSError:
                    pass  # not up yet


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--vips", type=int, default=1)
    args = p.parse_args()
    cfg = config_for("rr", Path(tempfile.mkdtemp(prefix="lbapp-api-")) / "rr.yaml", vips=args.vips)
    plain, scraped, scrapes, seconds = [], [], 0, []
    # a large config's pipeline takes a while to build and send: wait for it (quiet for 2 s)
    settle, quiet = (1.0, None) if args.vips == 1 else (600.0, 2.0)
    # a Prometheus server scrapes /metrics; /v1/state of every VIP is a person's look (lbapp status)
    paths = ("/metrics", "/v1/state") if args.vips == 1 else ("/metrics",)
    for _ in range(args.runs):
        port = free_port()
        plain.append(measure(lbapp_command(cfg, port), port, args.seconds, 64, settle, quiet))
        port, api_port = free_port(), free_port()
        with Scraper(api_port, paths) as scraper:
            scraped.append(measure(lbapp_command(cfg, port, api_port), port, args.seconds, 64, settle, quiet))
        scrapes += scraper.scrapes
        seconds += scraper.seconds
    print(f"lbapp rr, {args.vips} VIPs, median of {args.runs} runs; {scrapes} scrapes of {' and '.join(paths)} in "
          "the scraped runs" + (f"; a /metrics scrape took {statistics.median(seconds):.2f} s (median), "
                                f"{max(seconds):.2f} s at most" if seconds else ""))
    print(f"{'':<28}{'setups/s':>10}{'p50 us':>9}{'p99 us':>9}{'p99 x null':>11}")
    rows = {}
    for name, runs in (("without the API", plain), ("API scraped every second", scraped)):
        rows[name] = statistics.median(r["rate"] for r in runs)
        print(f"{name:<28}{rows[name]:>10.0f}{statistics.median(r['p50_us'] for r in runs):>9.0f}"
              f"{statistics.median(r['p99_us'] for r in runs):>9.0f}{statistics.median(r['p99_ratio'] for r in runs):>11.2f}")
    print(f"setup rate, scraped / without: {rows['API scraped every second'] / rows['without the API']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
