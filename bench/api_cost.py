"""What the HTTP API and /metrics cost the per-connection path: lbapp's setup rate and latency
(setup_rate.py's method, each beside its own null app) with a scraper polling /metrics and
/v1/state every second, against lbapp without the API, in alternating runs.

    python bench/api_cost.py [--seconds 3] [--runs 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from setup_rate import config_for, free_port, lbapp_command, measure  # noqa: E402


class Scraper:
    """Polls the API every ``interval`` seconds while running; counts the scrapes."""

    def __init__(self, api_port: int, interval: float = 1.0) -> None:
        self.base, self.interval = f"http://127.0.0.1:{api_port}", interval
        self.scrapes = 0
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
            for path in ("/metrics", "/v1/state"):
                try:
                    with urllib.request.urlopen(self.base + path, timeout=2) as r:
                        r.read()
                    self.scrapes += 1
                except OSError:
                    pass  # not up yet


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    cfg = config_for("rr", Path(tempfile.mkdtemp(prefix="lbapp-api-")) / "rr.yaml")
    plain, scraped, scrapes = [], [], 0
    for _ in range(args.runs):
        port = free_port()
        plain.append(measure(lbapp_command(cfg, port), port, args.seconds, 64))
        port, api_port = free_port(), free_port()
        with Scraper(api_port) as scraper:
            scraped.append(measure(lbapp_command(cfg, port, api_port), port, args.seconds, 64))
        scrapes += scraper.scrapes
    print(f"lbapp rr, median of {args.runs} runs; {scrapes} scrapes of /metrics and /v1/state in the scraped runs")
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
