"""Run the null reference app: python bench/serve_null.py PORT"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lbapp.cli.run import serve  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    serve(["null_app"], "127.0.0.1", int(sys.argv[1]))
