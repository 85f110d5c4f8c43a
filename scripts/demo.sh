#!/usr/bin/env bash
# Install what is needed and run the cross-VLAN demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ovs.sh
exec .venv/bin/lbapp demo "$@"
