#!/usr/bin/env bash
# Install what is needed and run the whole test suite: unit, real-OVS and Mininet tiers.
# As root every tier must run: a skipped OVS or Mininet test then fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" = 0 ]; then
  # CI (or LBAPP_FRESH_OVS=1) starts from a bare OVS: no bridges, an empty database. Not by
  # default: on a developer's machine that would delete bridges that are not ours.
  if [ "${CI:-}" = true ] || [ "${LBAPP_FRESH_OVS:-}" = 1 ]; then
    bash scripts/ovs.sh --fresh
  else
    bash scripts/ovs.sh
  fi
  export LBAPP_REQUIRE_ALL=1
fi
exec .venv/bin/python -m pytest -v -rs "$@"
