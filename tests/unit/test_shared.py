"""The ground floor's keys and limits."""
from ipaddress import IPv4Address as IP

from lbapp.pipeline import cookies
from lbapp.shared import MAX_SESSION_ID, MAX_VIP_ID, ConnKey, VipKey


class _Vip:
    ip, protocol, port = IP("117.78.6.19"), "udp", 5353


def test_a_vip_key_is_found_with_the_tuple_a_packet_gives():
    key = VipKey.of(_Vip)
    conn = ConnKey(17, IP("200.1.1.19"), 40000, IP("117.78.6.19"), 5353)
    assert VipKey.of_connection(conn) == key
    assert {key: "echo"}.get((conn.dst_ip, conn.protocol, conn.dst_port)) == "echo"
    assert str(key) == "117.78.6.19:5353/udp" and key.protocol_name == "udp"


def test_the_limits_fit_the_cookie_layout():
    assert cookies.make(cookies.STAGE_SESSION, vip=MAX_VIP_ID, obj=MAX_SESSION_ID)
    assert cookies.decode(cookies.make(cookies.STAGE_SESSION, vip=MAX_VIP_ID, obj=MAX_SESSION_ID)).obj == MAX_SESSION_ID
    assert cookies.LINGER_VIP == MAX_VIP_ID + 1 == cookies.VIP_MASK >> cookies.VIP_SHIFT
