"""A switch that sends malformed packet-ins and other malformed messages: each is ignored with one
line, no traceback, and the connection goes on: the next good packet-in is answered. A real controller process, the switch's
side spoken over a TCP socket."""
import socket
import struct
import subprocess
import sys
import time

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from tests.unit.test_connection_churn import (BALANCER_DPID, BARRIER_REPLY, BARRIER_REQUEST, ECHO_REPLY,
                                              ECHO_REQUEST, FEATURES_REPLY, FEATURES_REQUEST, HEADER, HELLO,
                                              MULTIPART_REPLY, MULTIPART_REQUEST, ROOT, _free_port, _send)
from tests.unit.test_service import NEW_CONN, syn

PACKET_IN, PACKET_OUT = ofp.OFPT_PACKET_IN, ofp.OFPT_PACKET_OUT


def _packet_in_body(match: bytes, data: bytes, cookie: int = NEW_CONN) -> bytes:
    """buffer_id, total_len, reason, table_id, cookie, the match (padded), 2 pad bytes, the packet."""
    return struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(data), ofp.OFPR_ACTION, 20, cookie) + match + bytes(2) + data


def _match(**fields) -> bytes:
    buf = bytearray()
    parser.OFPMatch(**fields).serialize(buf, 0)
    return bytes(buf)


class Switch:
    """The switch's side of one OpenFlow connection: answers the handshake and the controller's
    requests, and keeps what the controller sent."""

    def __init__(self, port: int, dpid: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.dpid, self.buf, self.got = dpid, bytearray(), []
        _send(self.sock, HELLO, 1)

    def until(self, predicate, seconds: float = 10) -> bool:
        """Read and answer until ``predicate(type, body)`` holds for a message, or ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            while len(self.buf) >= 8 and len(self.buf) >= HEADER.unpack_from(self.buf)[2]:
                _, t, length, xid = HEADER.unpack_from(self.buf)
                body, self.buf = bytes(self.buf[8:length]), self.buf[length:]
                self.got.append((t, body))
                if t == FEATURES_REQUEST:
                    _send(self.sock, FEATURES_REPLY, xid, struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0x4F, 0))
                elif t == MULTIPART_REQUEST:
                    _send(self.sock, MULTIPART_REPLY, xid, struct.pack("!HH4x", struct.unpack_from("!H", body)[0], 0))
                elif t == BARRIER_REQUEST:
                    _send(self.sock, BARRIER_REPLY, xid)
                elif t == ECHO_REQUEST:
                    _send(self.sock, ECHO_REPLY, xid, body)
                if predicate(t, body):
                    return True
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            if not chunk:
                return False
            self.buf += chunk
        return False


def test_malformed_packet_ins_cost_one_line_each_and_the_connection_goes_on(tmp_path):
    port, log = _free_port(), tmp_path / "controller.log"
    proc = subprocess.Popen([sys.executable, "-m", "lbapp.cli.main", "run", "-c", "topologies/worked_example.yaml",
                             "--port", str(port), "--api-port", "0"], cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "the controller did not start"
            time.sleep(0.1)
        switch = Switch(port, BALANCER_DPID)
        assert switch.until(lambda t, body: t == ofp.OFPT_FLOW_MOD), "no pipeline came"
        frame = syn(40000)
        good = _packet_in_body(_match(in_port=3), frame)
        hostile = [good[:10],  # cut inside its fixed part
                   _packet_in_body(_match(reg1=5), frame),  # no in_port
                   good[:18] + b"\x02\x00" + good[20:],  # a match length beyond the message
                   _packet_in_body(_match(in_port=3), b"\x00" * 30)]  # a packet that is no frame
        for i, body in enumerate(hostile):
            _send(switch.sock, PACKET_IN, 100 + i, body)
        _send(switch.sock, ofp.OFPT_FLOW_REMOVED, 110, b"abcd")  # 12 bytes of a 56-byte message
        _send(switch.sock, 99, 111, b"x" * 5000)  # a type OpenFlow 1.3 has not
        _send(switch.sock, PACKET_IN, 200, good)

        def answers_the_good_one(t, body):  # the packet-out re-injecting the SYN, from port 3
            return t == PACKET_OUT and body.endswith(frame) and struct.unpack_from("!I", body, 4)[0] == 3

        assert switch.until(answers_the_good_one), "the good packet-in after the bad ones was not answered"
        assert proc.poll() is None
        switch.sock.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    text = log.read_text()
    assert "Traceback" not in text
    assert text.count("ignored a malformed packet-in") == 3
    assert text.count("ignored packet-in") == 1  # the one whose packet is no frame: the logic's own line
    assert text.count("ignored a malformed OpenFlow message") == 2  # os-ken's parser's, in one line each
    assert max(map(len, text.splitlines())) < 500  # no message dumped in hex
