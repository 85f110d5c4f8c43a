"""OpenFlow 1.3 role requests: the leader asks each switch for MASTER under its generation id;
followers ask for SLAVE under the leader's (a switch refuses a generation older than the last
it saw as stale, OFPRRFC_STALE, and demotes the previous master to SLAVE itself)."""
from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser


def role_request(master: bool, generation: int, datapath=None) -> parser.OFPRoleRequest:
    """MASTER or SLAVE under ``generation`` (for ``datapath``, when it is sent at once)."""
    role = ofp.OFPCR_ROLE_MASTER if master else ofp.OFPCR_ROLE_SLAVE
    return parser.OFPRoleRequest(datapath, role, generation & 0xFFFFFFFFFFFFFFFF)


def is_stale(error_type: int, error_code: int) -> bool:
    """The switch refused a role request's generation as older than one it saw."""
    return error_type == ofp.OFPET_ROLE_REQUEST_FAILED and error_code == ofp.OFPRRFC_STALE
