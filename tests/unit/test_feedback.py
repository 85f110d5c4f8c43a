import ipaddress

from lbapp.feedback import Feedback

A, B = ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.2")


def test_factors_move_toward_equal_load_per_weight_and_are_bounded():
    fb = Feedback(interval=5, max_step=0.25, min_factor=0.25, max_factor=2.0)
    assert fb.observe(0, {A: 0, B: 0}, {A: 1, B: 1}) is None  # the first reading is the baseline
    changed = fb.observe(5, {A: 9000, B: 1000}, {A: 1, B: 1})
    assert changed[A] == 0.75 and changed[B] == 1.25  # one bounded step each way
    for t in range(10, 200, 5):
        fb.observe(t, {A: 1800 * t, B: 200 * t}, {A: 1, B: 1})
    # settles where the load is shared out: A's factor mean/load = 5/9; B's 5 is capped at 2
    assert abs(fb.factors[A] - 5 / 9) < 1e-6 and fb.factors[B] == 2.0



def test_the_floor_holds_however_busy_a_backend_gets():
    others = [ipaddress.IPv4Address(f"10.0.1.{i}") for i in range(1, 8)]
    weights = {A: 1, **{ip: 1 for ip in others}}
    fb = Feedback(interval=5)
    for t in range(0, 200, 5):
        fb.observe(t, {A: 100_000 * t, **{ip: 10 * t for ip in others}}, weights)
    assert fb.factors[A] == 0.25 and all(fb.factors[ip] == 2.0 for ip in others)


def test_weight_follows_configured_weight_and_load():
    fb = Feedback(interval=5)
    fb.observe(0, {A: 0, B: 0}, {A: 3, B: 1})
    fb.observe(5, {A: 3000, B: 1000}, {A: 3, B: 1})  # same load per unit of weight: no change
    assert fb.factors == {} and fb.effective(A, 3) == 300 and fb.effective(B, 0) == 0


def test_due_follows_the_interval():
    fb = Feedback(interval=5)
    assert fb.due(0) and not fb.due(4.9) and fb.due(5)
