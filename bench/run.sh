#!/usr/bin/env bash
# Install what is needed and run the benchmarks; prints the results tables.
# The OVS and Mininet ones (ARP latency, end to end, OVS-side scale) need root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python bench/setup_rate.py "$@"
.venv/bin/python bench/scale.py
.venv/bin/python bench/health_cpu.py
.venv/bin/python bench/api_cost.py
.venv/bin/python bench/flows_explain.py
.venv/bin/python bench/config_scale.py
.venv/bin/python bench/vip_scale.py
if [ "$(id -u)" = 0 ]; then
  bash scripts/ovs.sh
  .venv/bin/python bench/arp_latency.py
  .venv/bin/python bench/e2e.py
  .venv/bin/python bench/ovs_scale.py
  .venv/bin/python bench/synflood.py
else
  echo "bench: arp_latency.py, e2e.py and ovs_scale.py need root (OVS, Mininet); skipped"
fi
