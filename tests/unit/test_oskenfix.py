"""An OpenFlow connection that ends ends its os-ken threads (lbapp.oskenfix): os-ken's own
connection handler on a loopback TCP pair, no controller process."""
import socket
import threading

from os_ken.base import app_manager  # noqa: F401 - first: os-ken's controller module imports it back
from os_ken.controller import controller

from lbapp import oskenfix

HELLO_13 = b"\x04\x00\x00\x08\x00\x00\x00\x01"


def _connection(then) -> threading.Thread:
    """os-ken serves one connection on a thread, as its listener does; the switch's side reads
    the controller's hello, does ``then(sock)`` and hangs up. Returns the serving thread once
    it ended, or after 3 s."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        switch = socket.create_connection(listener.getsockname(), timeout=3)
        ours, address = listener.accept()
    thread = threading.Thread(target=controller.datapath_connection_factory, args=(ours, address), daemon=True)
    thread.start()
    with switch:
        assert switch.recv(8)[1] == 0  # the hello: the send thread is up, then waits
        then(switch)
    thread.join(timeout=3)
    return thread


def test_the_serving_thread_and_its_send_thread_end_when_the_switch_goes():
    oskenfix.apply()
    before = threading.active_count()
    assert not _connection(lambda sock: None).is_alive()  # hangs up at once
    assert not _connection(lambda sock: sock.sendall(HELLO_13)).is_alive()  # after its hello
    assert threading.active_count() <= before


def test_apply_is_idempotent():
    oskenfix.apply()
    patched = controller.Datapath._recv_loop
    oskenfix.apply()
    assert controller.Datapath._recv_loop is patched
