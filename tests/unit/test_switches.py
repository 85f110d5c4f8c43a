"""Which connection speaks for a datapath id (lbapp.switches): a live switch is never replaced;
a newcomer takes over only from a connection that is silent or gone. Fake connections record
what they were sent and whether they were hung up on."""
from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3_parser

from lbapp.switches import ECHO_DEADLINE_S, SwitchConnections


class FakeSocket:
    def __init__(self) -> None:
        self.shut = False

    def shutdown(self, how: int) -> None:
        self.shut = True


class FakeConnection:
    ofproto_parser = ofproto_v1_3_parser

    def __init__(self, port: int) -> None:
        self.address, self.socket, self.id, self.sent = ("127.0.0.1", port), FakeSocket(), None, []

    def send_msg(self, msg) -> None:
        self.sent.append(msg)

    @property
    def hung_up(self) -> bool:
        return self.socket.shut


def _connect(switches: SwitchConnections, port: int, dpid: int = 1, now: float = 0.0) -> tuple[FakeConnection, bool]:
    dp = FakeConnection(port)
    taken = switches.connected(dp, dpid, now)
    dp.id = dpid
    return dp, taken


def test_a_newcomer_is_refused_when_the_connection_in_use_answers_its_echo():
    switches = SwitchConnections()
    switch, taken = _connect(switches, 1000)
    assert taken and switches.in_use(switch)
    impostor, taken = _connect(switches, 2000, now=1.0)
    assert not taken and not switches.in_use(impostor) and impostor.sent == []
    (echo,) = switch.sent
    assert isinstance(echo, ofproto_v1_3_parser.OFPEchoRequest)
    switches.echo_reply(impostor, echo.data)  # the newcomer cannot answer for the switch
    switches.echo_reply(switch, b"forged")
    assert not impostor.hung_up
    switches.echo_reply(switch, echo.data)
    assert impostor.hung_up and switches.in_use(switch) and not switch.hung_up
    assert switches.expired(1.0 + ECHO_DEADLINE_S + 1) == []  # answered: nothing left to take over
    assert switches.gone(impostor) == ""


def test_a_newcomer_takes_over_from_a_connection_that_stays_silent():
    switches = SwitchConnections()
    old, _ = _connect(switches, 1000)
    new, _ = _connect(switches, 2000, now=5.0)
    assert switches.expired(5.0 + ECHO_DEADLINE_S / 2) == []
    assert switches.expired(5.0 + ECHO_DEADLINE_S) == [1]
    assert switches.in_use(new) and old.hung_up
    assert switches.gone(old) == ""  # its end changes nothing now


def test_a_newcomer_takes_over_when_the_connection_in_use_ends_and_only_one_claim_waits():
    switches = SwitchConnections()
    old, _ = _connect(switches, 1000)
    new, _ = _connect(switches, 2000)
    third, taken = _connect(switches, 3000)
    assert not taken and third.hung_up  # one claim at a time
    assert switches.gone(old) == "handed over" and switches.in_use(new)
    assert switches.gone(new) == "released" and switches.datapaths == {}
