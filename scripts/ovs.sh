#!/usr/bin/env bash
# Start Open vSwitch if it is not running (userspace datapath only: this kernel has no OVS module).
# --fresh: first stop it and remove its database, so it starts as on a machine that never had a
# bridge (no bridges, no Datapath rows, no zone policies, no userspace datapath yet). CI does this
# before the tests, so a step that only works on a used machine fails there too.
# --stop-bare: stop it and remove its database, and leave it stopped (OVS installed, never run).
set -euo pipefail
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
DB=/etc/openvswitch/conf.db

if [ "${1:-}" = "--fresh" ] || [ "${1:-}" = "--stop-bare" ]; then
  "$OVS_CTL" stop >/dev/null 2>&1 || true
  rm -f "$(readlink -f "$DB")" "$(readlink -f /etc/openvswitch/.conf.db.~lock~)"
  if [ "$1" = "--stop-bare" ]; then
    echo "ovs: stopped, database removed"
    exit 0
  fi
  echo "ovs: stopped, database removed: starting from a bare OVS"
elif ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  exit 0
fi
# ovs-ctl complains about the missing kernel module and ulimit in a container; neither matters
# for the userspace datapath, so its log is shown only if OVS then does not answer.
log=$(mktemp)
"$OVS_CTL" start --system-id=random >"$log" 2>&1 || true
if ! ovs-vsctl --timeout=10 show >/dev/null 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "ovs: Open vSwitch did not start (ovs-ctl's output above)" >&2
  exit 1
fi
rm -f "$log"
echo "ovs: started $(ovs-vsctl --version | head -1)"
