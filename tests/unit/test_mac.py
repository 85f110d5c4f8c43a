import ipaddress
import random

import pytest

from lbapp import mac as macs

IP = ipaddress.IPv4Address


def test_worked_example_prefix_layout():
    scheme = macs.ComputedScheme("prefix", 0xAABB)
    assert macs.format_mac(scheme.encode(IP("10.11.12.13"))) == "aa:bb:0a:0b:0c:0d"
    assert scheme.decode(macs.parse_mac("aa:bb:0a:0b:0c:0d")) == IP("10.11.12.13")


@pytest.mark.parametrize("layout, expected", [
    ("prefix", "aa:bb:0a:0b:0c:0d"),
    ("suffix", "0a:0b:0c:0d:aa:bb"),
    ("split", "0a:0b:aa:0c:0d:bb"),
])
def test_three_layouts_of_the_source(layout, expected):
    scheme = macs.ComputedScheme(layout, 0xAABB)
    assert macs.format_mac(scheme.encode(IP("10.11.12.13"))) == expected
    assert scheme.decode(macs.parse_mac(expected)) == IP("10.11.12.13")


@pytest.mark.parametrize("layout", sorted(macs.LAYOUTS))
def test_round_trip_random_addresses(layout):
    rng = random.Random(7)
    scheme = macs.ComputedScheme(layout, rng.randrange(1 << 16))
    for _ in range(2000):
        ip = IP(rng.randrange(1 << 32))
        assert scheme.decode(scheme.encode(ip)) == ip


def test_configurable_tag():
    scheme = macs.ComputedScheme("prefix", macs.parse_tag("02:42"))
    assert macs.format_mac(scheme.encode(IP("192.168.1.2"))) == "02:42:c0:a8:01:02"


def test_decode_refuses_wrong_tag():
    scheme = macs.ComputedScheme("prefix", 0xAABB)
    with pytest.raises(macs.MacError, match="does not carry tag aa:bb"):
        scheme.decode(macs.parse_mac("aa:bc:0a:0b:0c:0d"))


def test_multicast_detection_for_ip_first_layouts():
    scheme = macs.ComputedScheme("suffix", 0xAABB)
    assert macs.is_multicast(scheme.encode(IP("11.0.0.1")))
    assert not macs.is_multicast(scheme.encode(IP("10.0.0.1")))
    assert macs.LAYOUTS["suffix"].first_octet_from_ip
    assert not macs.LAYOUTS["prefix"].first_octet_from_ip


def test_network_match_covers_exactly_the_subnet():
    scheme = macs.ComputedScheme("split", 0xAABB)
    value, mask = scheme.network_match(ipaddress.IPv4Network("10.11.12.0/24"))
    assert scheme.encode(IP("10.11.12.200")) & mask == value
    assert scheme.encode(IP("10.11.13.1")) & mask != value
    other_tag = macs.ComputedScheme("split", 0xAABC)
    assert other_tag.encode(IP("10.11.12.200")) & mask != value


def test_table_scheme_is_one_to_one():
    scheme = macs.TableScheme({IP("10.0.0.1"): 0x020000000001, IP("10.0.0.2"): 0x020000000002})
    assert scheme.decode(0x020000000002) == IP("10.0.0.2")
    with pytest.raises(macs.MacError, match="no entry"):
        scheme.encode(IP("10.0.0.3"))
    with pytest.raises(macs.MacError, match="two IPs to one MAC"):
        macs.TableScheme({IP("10.0.0.1"): 1, IP("10.0.0.2"): 1})


@pytest.mark.parametrize("text", ["aa:bb:cc", "gg:00:00:00:00:00", "aabbccddeeff", "aa:bb:cc:dd:ee:fff"])
def test_parse_mac_rejects_garbage(text):
    with pytest.raises(macs.MacError):
        macs.parse_mac(text)
