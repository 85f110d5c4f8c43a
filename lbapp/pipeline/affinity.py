"""Stage affinity (table 60): client persistence entries, held in the switch. An entry maps a
client (its address under the VIP's netmask) of a persistence group to a backend: it sets the
backend's fabricated MAC, reg1 = the backend and reg3 = 1 (found), and lives while the client
opens a new connection within the timeout (an idle timeout: each lookup refreshes it).

One entry, two writers, one shape: the switch learns it (``learn()`` in the pin stage) for the
connections its select group picks; the controller installs it (:func:`entry`) for the ones it
picks. Generation 0: reloads and controller restarts leave entries alone, as they leave sessions.
"""
from __future__ import annotations

from ipaddress import IPv4Address

from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp import mac as macs
from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, load, resubmit, set_field
from lbapp.pipeline.context import SwitchView
from lbapp.pipeline.tables import REG_KNOWN, REG_PERSIST, REG_PICKED, TABLES

TABLE = TABLES["affinity"]


def balancer_flows(view: SwitchView) -> list:
    """Per persistence group: the lookup that finds no entry (its counter counts new clients).
    The entries themselves are learned or installed per client."""
    ctx = view.ctx
    groups = sorted({ctx.persistence_id(vip_id, vip) for vip_id, vip in ctx.balanced_vips() if vip.persistence})
    return [TABLE.flow("none", {"eth_type": ETH_TYPE_IP, REG_PERSIST: pid},
                       cookie=cookies.make(TABLE.stage, generation=ctx.generation, vip=pid)) for pid in groups]


def entry_cookie(persistence_id: int, backend_id: int = 0) -> int:
    """Generation 0 (never swept); the persistence id as VIP; the backend's id where the
    controller installed it (0: learned, the switch does not say)."""
    return cookies.make(TABLE.stage, vip=persistence_id, obj=backend_id)


def client_prefix(client: IPv4Address, netmask: int) -> IPv4Address:
    """The part of a client address that persistence counts."""
    return client if netmask == 32 else IPv4Address(int(client) & _mask(netmask))


def entry(persistence_id: int, netmask: int, timeout: int, client: IPv4Address, backend: IPv4Address,
          backend_id: int, fabricated_mac: int) -> parser.OFPFlowMod:
    """The entry the controller installs after picking ``backend`` for ``client``: what
    :func:`learn` makes the switch write for its own picks."""
    return TABLE.flow("entry", {"eth_type": ETH_TYPE_IP, REG_PERSIST: persistence_id,
                                "ipv4_src": (str(client_prefix(client, netmask)), str(IPv4Address(_mask(netmask))))},
                      cookie=entry_cookie(persistence_id, backend_id), idle_timeout=timeout,
                      actions=[set_field(eth_dst=macs.format_mac(fabricated_mac)), load(REG_PICKED, int(backend), 0, 32),
                               load(REG_KNOWN, 1, 0, 1)])


def learn(persistence_id: int, netmask: int, timeout: int) -> parser.NXActionLearn:
    """The learn() that writes :func:`entry` from a packet whose backend the switch picked (its
    fabricated MAC in eth_dst, its address in reg1, the persistence id in reg2)."""
    low = 32 - netmask  # the client bits that count: ipv4_src[low..31]
    return parser.NXActionLearn(
        table_id=TABLE.table_id, priority=TABLE.priority("entry"), idle_timeout=timeout,
        cookie=entry_cookie(persistence_id), specs=[
            parser.NXFlowSpecMatch(src=ETH_TYPE_IP, dst=("eth_type_nxm", 0), n_bits=16),
            parser.NXFlowSpecMatch(src=(REG_PERSIST, 0), dst=(REG_PERSIST, 0), n_bits=32),
            parser.NXFlowSpecMatch(src=("ipv4_src_nxm", low), dst=("ipv4_src_nxm", low), n_bits=netmask),
            parser.NXFlowSpecLoad(src=("eth_dst_nxm", 0), dst=("eth_dst_nxm", 0), n_bits=48),
            parser.NXFlowSpecLoad(src=(REG_PICKED, 0), dst=(REG_PICKED, 0), n_bits=32),
            parser.NXFlowSpecLoad(src=1, dst=(REG_KNOWN, 0), n_bits=1)])


def lookup(persistence_id: int) -> list:
    """The actions that look a new connection's client up: afterwards reg3 says whether an
    entry was found (and reg1 and eth_dst name its backend)."""
    return [load(REG_PERSIST, persistence_id, 0, 32), resubmit(TABLE.table_id)]


def _mask(netmask: int) -> int:
    return (0xFFFFFFFF << (32 - netmask)) & 0xFFFFFFFF
