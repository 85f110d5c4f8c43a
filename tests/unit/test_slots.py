"""The slot table behind switch-side selection: shares by weight, and a change moves only the
slots it must."""
import ipaddress
from collections import Counter

from lbapp.schedulers.base import BackendWeight
from lbapp.schedulers.slots import SLOTS, assign, moved, quotas

IP = [ipaddress.IPv4Address(f"10.11.12.{i}") for i in range(1, 12)]


def weights(*pairs):
    return [BackendWeight(IP[i], w) for i, w in pairs]


def test_shares_follow_weights_and_fill_every_slot():
    table = assign(weights((0, 1), (1, 1), (2, 2)))
    assert len(table) == SLOTS and None not in table
    assert Counter(table) == {IP[0]: 64, IP[1]: 64, IP[2]: 128}


def test_uneven_shares_differ_by_at_most_one_slot():
    share = quotas(weights(*((i, 1) for i in range(7))))
    assert sum(share.values()) == SLOTS and max(share.values()) - min(share.values()) == 1


def test_new_slots_of_one_backend_do_not_bunch_together():
    table = assign(weights((0, 1), (1, 1)))
    assert table[:4] == [IP[0], IP[1], IP[0], IP[1]]


def test_removing_a_backend_moves_only_its_slots():
    before = assign(weights((0, 1), (1, 1), (2, 1), (3, 1)))
    after = assign(weights((0, 1), (1, 1), (3, 1)), before)
    assert moved(before, after) == Counter(before)[IP[2]] == 64
    assert all(a == b for a, b in zip(before, after) if b != IP[2] and a != IP[2])
    assert IP[2] not in after


def test_adding_a_backend_takes_only_its_new_share():
    before = assign(weights((0, 1), (1, 1), (2, 1)))
    after = assign(weights((0, 1), (1, 1), (2, 1), (3, 1)), before)
    assert Counter(after)[IP[3]] == 64
    assert moved(before, after) == 64  # every moved slot went to the new backend
    assert all(a == b or b == IP[3] for a, b in zip(before, after))


def test_draining_moves_the_drained_backends_slots():
    before = assign(weights((0, 1), (1, 1)))
    after = assign(weights((0, 1), (1, 0)), before)
    assert set(after) == {IP[0]} and moved(before, after) == 128


def test_no_eligible_backend_leaves_every_slot_empty():
    assert assign(weights((0, 0), (1, 0))) == [None] * SLOTS


def test_same_backends_same_table():
    first = assign(weights((0, 3), (1, 1), (2, 2)))
    assert assign(weights((2, 2), (0, 3), (1, 1))) == first
    assert assign(weights((0, 3), (1, 1), (2, 2)), first) == first
