"""Run the null reference app: python bench/serve_null.py PORT"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lbapp.cli.run import configure, serve  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    configure([], {"config": "unused", "listen": "127.0.0.1", "port": int(sys.argv[1]), "api_port": 0})
    serve(["null_app"])
