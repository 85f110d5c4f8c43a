#!/usr/bin/env bash
# Install what is needed and run the cross-VLAN demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ovs.sh
# The Mininet traffic demo (lbapp demo) lands with the pipeline; until then: the worked example.
exec .venv/bin/lbapp check topologies/worked_example.yaml
