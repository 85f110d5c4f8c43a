"""Cookie layout: every lbapp flow says which stage and which config object or session owns it.

    bits 63..56  APP_TAG (0x1b): the flow is lbapp's; anything else is foreign
    bits 55..52  stage code (the table's role)
    bits 51..48  generation: which controller start or reload installed a static flow (1..15);
                 0 on per-connection session flows, which outlive both
    bits 47..32  VIP id (1-based index into vips:, 0 = none): 16 bits, for tens of thousands of VIPs
    bits 31..0   object id: gateway/route/backend index + 1, or a session id

Deletes always carry a cookie mask, so lbapp never touches flows that are not its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from lbapp.shared import MAX_VIP_ID

APP_TAG = 0x1B
APP_SHIFT, STAGE_SHIFT, GEN_SHIFT, VIP_SHIFT = 56, 52, 48, 32

APP_MASK = 0xFF << APP_SHIFT
STAGE_MASK = 0xF << STAGE_SHIFT
MAX_GENERATION = 0xF
GEN_MASK = MAX_GENERATION << GEN_SHIFT
VIP_MASK = 0xFFFF << VIP_SHIFT
OBJECT_MASK = 0xFFFFFFFF

STAGE_CLASSIFY = 1
STAGE_ARP_PROXY = 2
STAGE_SESSION = 3
STAGE_TRANSLATE = 4
STAGE_NEXT_HOP = 5
STAGE_SNAT = 6
STAGE_PIN = 7
STAGE_PROBE = 8
STAGE_AFFINITY = 9

MAX_VIPS = 0xFFFF  # the VIP field's mask
MAX_OBJECT = OBJECT_MASK


@dataclass(frozen=True)
class Cookie:
    """A cookie's fields, decoded (the layout above)."""

    stage: int
    generation: int
    vip: int
    obj: int


def make(stage: int, *, generation: int = 0, vip: int = 0, obj: int = 0) -> int:
    if not 0 < stage <= 0xF:
        raise ValueError(f"stage {stage} out of range")
    if not 0 <= vip <= MAX_VIPS:
        raise ValueError(f"VIP id {vip} does not fit the cookie")
    return ((APP_TAG << APP_SHIFT) | (stage << STAGE_SHIFT) | ((generation & MAX_GENERATION) << GEN_SHIFT)
            | (vip << VIP_SHIFT) | (obj & OBJECT_MASK))


# A backend removed from the config keeps its edge flows while its sessions live ("lingering"):
# those flows carry this VIP id and the backend's IPv4 address as object id.
LINGER_VIP = MAX_VIP_ID + 1


def make_lingering(stage: int, generation: int, backend_ip: int) -> int:
    return make(stage, generation=generation, vip=LINGER_VIP, obj=backend_ip)


def is_ours(cookie: int) -> bool:
    return (cookie & APP_MASK) >> APP_SHIFT == APP_TAG


def stage_of(cookie: int) -> int:
    return (cookie & STAGE_MASK) >> STAGE_SHIFT


def is_new_connection(cookie: int) -> bool:
    """A packet-in punted by the session stage: a new connection for the controller to set up."""
    return is_ours(cookie) and stage_of(cookie) == STAGE_SESSION


def vip_of(cookie: int) -> int:
    return (cookie & VIP_MASK) >> VIP_SHIFT


def decode(cookie: int) -> Cookie | None:
    if not is_ours(cookie):
        return None
    return Cookie(stage_of(cookie), (cookie & GEN_MASK) >> GEN_SHIFT, (cookie & VIP_MASK) >> VIP_SHIFT,
                  cookie & OBJECT_MASK)


def stage_mask() -> int:
    """Mask selecting every flow of one stage (any generation, VIP and object)."""
    return APP_MASK | STAGE_MASK


def vip_mask() -> int:
    """Mask selecting one stage's flows of one VIP (any generation and object)."""
    return APP_MASK | STAGE_MASK | VIP_MASK


def own_flows_mask() -> int:
    """Mask selecting one stage's flows of any VIP with one object (0: the VIPs' own flows)."""
    return APP_MASK | STAGE_MASK | OBJECT_MASK


def object_mask() -> int:
    """Mask selecting one stage's flows of one VIP and object, any generation."""
    return APP_MASK | STAGE_MASK | VIP_MASK | OBJECT_MASK
