#!/usr/bin/env bash
# Install what is needed and run the benchmarks; prints the results tables.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python bench/setup_rate.py "$@"
.venv/bin/python bench/scale.py
