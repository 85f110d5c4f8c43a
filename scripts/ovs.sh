#!/usr/bin/env bash
# Start Open vSwitch if it is not running (userspace datapath only: this kernel has no OVS module).
set -euo pipefail
if ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  exit 0
fi
/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
ovs-vsctl --timeout=10 show >/dev/null
echo "ovs: started $(ovs-vsctl --version | head -1)"
