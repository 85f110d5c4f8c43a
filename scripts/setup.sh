#!/usr/bin/env bash
# Install everything lbapp needs on a fresh Debian machine: Open vSwitch, Mininet and the tools
# the tests and demo drive (Debian packages), then a virtual environment with the package.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(openvswitch-switch mininet ethtool iproute2 iputils-ping arping hping3 iperf3 python3-venv python3-pip curl procps openssl
      etcd-server)
missing=()
for deb in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's mininet is installed for the system Python, so the venv is made from it and sees it.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import lbapp, os_ken, pydantic, ovs.flow.ofp, ruamel.yaml, prometheus_client, pytest, matplotlib, etcd3gw" 2>/dev/null; then
  echo "setup: installing lbapp into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test,draw]' 2>&1 | grep -v '^WARNING: Location' || true
fi
.venv/bin/python -c "import lbapp, os_ken, ovs.flow.ofp, mininet.net" || { echo "setup: install incomplete" >&2; exit 1; }
