"""The prediction ``lbapp trace`` shows for a new connection: the backend the VIP's scheduler
would pick now, and why, without moving any scheduler or count."""
from pathlib import Path

import pytest
import yaml

from lbapp.config import parse_config
from lbapp.pipeline import cookies
from lbapp.predict import BadClient, predict
from lbapp.service import Balancer
from lbapp.snapshot import sessions_of
from tests.helpers.frames import arp_request, tcp_frame
from tests.helpers.reads import tick

ROOT = Path(__file__).resolve().parents[2]
NEW_CONN = cookies.make(cookies.STAGE_SESSION, vip=1)


def balancer(**vip):
    raw = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    raw["vips"][0].update(vip)
    lb = Balancer(parse_config(raw))
    lb.switch_connected(1, 0.0)
    return lb


def connect(lb, sport):
    """A SYN through the switch's packet-in: the backend the controller pinned it to."""
    lb.packet_in(1, 1, NEW_CONN, tcp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "200.1.1.19", "117.78.6.19",
                                           sport, 80), 1.0)
    return next(s["backend"] for s in sessions_of(lb, "web", 1.0) if s["client"] == f"200.1.1.19:{sport}")


@pytest.mark.parametrize("scheduler", ["rr", "wrr", "wlc", "lc", "sed", "nq", "sh", "mh", "dh", "lblc", "lblcr"])
def test_the_prediction_is_the_pick_that_follows_and_moves_nothing(scheduler):
    lb = balancer(scheduler=scheduler)
    for sport in range(40000, 40007):
        first = predict(lb, "web", f"200.1.1.19:{sport}", 1.0)
        assert predict(lb, "117.78.6.19:80/tcp", f"200.1.1.19:{sport}", 1.0) == first  # asking twice changes nothing
        assert first["picked_by"] == "controller" and first["why"]
        assert connect(lb, sport) == first["backend"]


def test_the_reason_names_what_the_policy_decides_by():
    lb = balancer(scheduler="wlc")
    connect(lb, 40000)
    why = predict(lb, "web", "200.1.1.19:40001", 1.0)["why"]
    assert why.startswith("weighted least connections") and "10.11.12.11 1/1" in why, why
    why = predict(balancer(scheduler="sh"), "web", "200.1.1.19:40001", 1.0)["why"]
    assert "source address 200.1.1.19 is bucket" in why and "of 256" in why, why


def test_a_known_connection_keeps_its_session_and_the_switch_picks_for_switch_vips():
    lb = balancer()
    backend = connect(lb, 40000)
    known = predict(lb, "web", "200.1.1.19:40000", 1.0)
    assert (known["picked_by"], known["backend"]) == ("session", backend)
    switch = predict(balancer(selection="switch", scheduler="mh"), "web", "200.1.1.19:40000", 1.0)
    assert switch["picked_by"] == "switch" and switch["backend"] is None
    assert "slots per backend 10.11.12.11 86, 10.11.12.12 85, 10.11.12.13 85" in switch["why"], switch


def test_no_backend_left_is_a_refusal_and_bad_questions_are_told_apart():
    lb = balancer(health={"type": "tcp", "interval": 1, "timeout": 0.5, "rise": 1, "fall": 2}, panic_below=0)
    lb.packet_in(1, 3, cookies.make(cookies.STAGE_CLASSIFY, obj=1),  # the gateway: the probes' way out
                 arp_request("aa:bb:cc:dd:ee:ff", "10.0.0.1", "10.0.0.2"), 0.0)
    for i in range(16):  # nobody answers the probes: every backend goes down
        tick(lb, 0.3 + i * 0.25)
    none = predict(lb, "web", "200.1.1.19:40000", 5.0)
    assert none["backend"] is None and none["why"].endswith("the connection would be refused")
    assert predict(lb, "nope", "200.1.1.19:40000", 1.0) is None
    for bad in ("200.1.1.19", "200.1.1.19:70000", "x:1", ""):
        with pytest.raises(BadClient, match="IPv4:port expected"):
            predict(lb, "web", bad, 1.0)
