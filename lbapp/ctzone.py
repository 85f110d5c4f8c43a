"""The conntrack zone policy that ``selection: switch`` wants on each balancer's OVS.

A direct-routing balancer sees one direction of a TCP connection, so OVS's conntrack keeps the
entry in SYN_SENT: its timer is the policy's ``tcp_syn_sent`` after the SYN and
``tcp_syn_recv`` after each later packet (OVS 3.1 userspace conntrack; 30 s each by default),
so a pin lasts as long as the connection sends at least once per ``tcp_syn_recv`` seconds.
After it, the connection's next packet is picked afresh (the same backend for a hash unless
its slot moved meanwhile; most likely another for the controller's other schedulers). A zone
timeout policy makes the pin last longer. It lives in OVSDB, not OpenFlow, so the controller
cannot set it: ``lbapp ct-policy`` prints or runs the ``ovs-vsctl`` commands.
"""
from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterable, Iterator

from lbapp.environment import OVS_TIMEOUT_S, EnvironmentProblem, datapaths, ovs, require_ovs
from lbapp.pipeline.tables import CT_ZONE
from lbapp.shared import PIN_SECONDS, PROTOCOL_NUMBERS, ConnKey, IPv4

DEFAULT_PIN_SECONDS = PIN_SECONDS


def commands(datapath_type: str = "netdev", seconds: int = DEFAULT_PIN_SECONDS, has_datapath_row: bool = True
             ) -> list[list[str]]:
    """ovs-vsctl commands that (re)set the zone's policy; OVS needs a Datapath row for the
    datapath type first."""
    out = []
    if not has_datapath_row:
        out.append(["ovs-vsctl", "--", "--id=@dp", "create", "Datapath", "datapath_version=0", "--",
                    "set", "Open_vSwitch", ".", f"datapaths:{datapath_type}=@dp"])
    out.append(["ovs-vsctl", "--if-exists", "del-zone-tp", datapath_type, f"zone={CT_ZONE}"])
    # one direction only: TCP stays in SYN_SENT (tcp_syn_recv times it after its first
    # packet, measured); UDP in its first (unreplied) state
    out.append(["ovs-vsctl", "add-zone-tp", datapath_type, f"zone={CT_ZONE}", f"tcp_syn_sent={seconds}",
                f"tcp_syn_recv={seconds}", f"udp_first={seconds}", f"udp_single={seconds}"])
    return out


def has_datapath_row(datapath_type: str = "netdev") -> bool:
    out = ovs("ovs-vsctl", "get", "Open_vSwitch", ".", "datapaths").stdout
    return f"{datapath_type}=" in out


def datapath_exists(datapath_type: str = "netdev") -> bool:
    return any(dp.startswith(f"{datapath_type}@") for dp in datapaths())


def apply(datapath_type: str = "netdev", seconds: int = DEFAULT_PIN_SECONDS) -> None:
    """Set the zone's policy on the running datapath.

    OVS hands a zone policy to a datapath only when the policy changes in OVSDB and the datapath
    exists (seen on OVS 3.1): one set before the first bridge, or kept from before the last bridge
    went (the userspace datapath goes with it), stays in OVSDB but is not in force. So this needs
    the bridges first, and deletes and re-adds the zone's policy to make OVS push it.
    """
    require_ovs()
    if not datapath_exists(datapath_type):
        raise EnvironmentProblem(
            f"no {datapath_type} datapath yet: OVS puts a zone policy in force only on an existing datapath; "
            f"create the balancer's bridges (datapath_type={datapath_type}) first, then apply it again")
    for cmd in commands(datapath_type, seconds, has_datapath_row(datapath_type)):
        ovs(*cmd)


def flush() -> None:
    """Forget every pin (a new lab: an earlier one's connections would pin reused ports).
    No datapath, no conntrack table: nothing to forget."""
    out = ovs("ovs-appctl", "dpctl/flush-conntrack", f"zone={CT_ZONE}", check=False)
    if out.returncode != 0 and "no datapaths exist" not in out.stderr:
        raise EnvironmentProblem(f"ovs-appctl dpctl/flush-conntrack zone={CT_ZONE}: {out.stderr.strip()}")


def local_datapath_type(dpid: int) -> str | None:
    """The datapath type of the bridge with datapath id ``dpid`` on this machine's OVS; None when
    no local bridge has it (or no OVS answers here): the switch is somewhere else."""
    try:
        out = ovs("ovs-vsctl", "--timeout=2", "--format=csv", "--no-headings", "--columns=datapath_id,datapath_type",
                  "list", "Bridge", check=False)
    except EnvironmentProblem:
        return None
    for line in out.stdout.splitlines():
        found, _, kind = line.strip().strip('"').partition(",")
        try:
            if int(found.strip('"'), 16) == dpid:
                return kind.strip('"') or "system"
        except ValueError:
            continue
    return None


def in_ovsdb(datapath_type: str = "netdev", seconds: int = DEFAULT_PIN_SECONDS) -> bool:
    """Whether OVSDB holds the zone's policy with ``seconds`` (``ovs-vsctl list-zone-tp``)."""
    out = ovs("ovs-vsctl", "list-zone-tp", datapath_type, check=False).stdout
    policy = next((line for line in out.splitlines() if line.startswith(f"Zone:{CT_ZONE},")), "")
    return all(f"{name}={seconds}" in policy for name in ("tcp_syn_sent", "tcp_syn_recv", "udp_first", "udp_single"))


# one entry of `ovs-appctl dpctl/dump-conntrack`: the original direction's 5-tuple and the mark
_ENTRY = re.compile(r"(tcp|udp),orig=\(src=([0-9.]+),dst=([0-9.]+),sport=(\d+),dport=(\d+)\).*?,zone=(\d+),mark=(\d+)")


def parse_pins(lines: Iterable[str]) -> Iterator[tuple[ConnKey, IPv4]]:
    """The connections pinned in zone ``CT_ZONE`` among conntrack dump lines, each with the
    backend its mark names (lbapp marks a pin with the backend's address); other lines, other
    zones and unmarked entries are skipped."""
    few: dict[str, IPv4] = {}  # VIPs and backends, a handful of addresses read again and again
    for line in lines:
        found = _ENTRY.match(line)
        if found is None or int(found[6]) != CT_ZONE or not 0 < int(found[7]) < 1 << 32:
            continue
        vip = few.get(found[3]) or few.setdefault(found[3], IPv4(found[3]))
        backend = few.get(found[7]) or few.setdefault(found[7], IPv4(int(found[7])))
        yield ConnKey(PROTOCOL_NUMBERS[found[1]], IPv4(found[2]), int(found[4]), vip, int(found[5])), backend


def pins(deadline_s: float = 3 * OVS_TIMEOUT_S) -> list[tuple[ConnKey, IPv4]]:
    """The pins in this machine's userspace conntrack (every datapath's zone ``CT_ZONE``), read
    line by line so a large table costs its entries, not its text; a dump that takes longer
    than ``deadline_s`` is cut there (what was read is returned)."""
    try:
        dump = subprocess.Popen(["ovs-appctl", "dpctl/dump-conntrack", f"zone={CT_ZONE}"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    except FileNotFoundError:
        raise EnvironmentProblem("ovs-appctl not found: Open vSwitch is not installed") from None
    until, found = time.monotonic() + deadline_s, []
    try:
        for pin in parse_pins(dump.stdout):
            found.append(pin)
            if time.monotonic() > until:
                break
    finally:
        dump.kill()
        dump.wait()
    return found
