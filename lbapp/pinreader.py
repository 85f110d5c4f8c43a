"""The local conntrack's pins read back into the controller's pick memory.

The controller remembers a ``pin: conntrack`` pick for as long as the zone policy keeps an idle
pin (lbapp.state.pinmemory). A connection that keeps sending lives longer than that in the
switch, and a restarted controller starts with no memory at all: were the switch to lose its
conntrack then, those connections would be picked afresh. So, for a balancer that is a bridge of
this machine's OVS, the app reads the pins in its conntrack when the switch connects and every
``READ_EVERY_S``, and remembers them again (lbapp.handlers.connections.remember_pins). For a
switch on another machine the controller keeps only its own picks, ``PIN_SECONDS`` each.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from lbapp import ctzone
from lbapp.environment import EnvironmentProblem
from lbapp.shared import PIN_SECONDS, ConnKey, IPv4

LOG = logging.getLogger("lbapp")
READ_EVERY_S = PIN_SECONDS / 3  # a pin is read again twice before the memory of it would end

Pins = list[tuple[ConnKey, IPv4]]


PINS_PER_LOCK = 5000  # pins remembered under one hold of the controller's lock (~5 ms)


class PinReader:
    """Owns when the pins were last read and that one read runs at a time. The app's ticker calls
    :meth:`tick`; a switch connecting calls :meth:`read` on the thread that keeps its zone
    policy. What a read finds goes to ``remember`` (pins, now -> how many it kept), a slice at a
    time under ``lock``, so the hot path waits for a slice at most; ``wanted`` says whether there
    is anything to read (a ``pin: conntrack`` VIP, a local balancer)."""

    def __init__(self, remember: Callable[[Pins, float], int], lock: threading.Lock, wanted: Callable[[], bool],
                 every_s: float = READ_EVERY_S) -> None:
        self.remember, self.lock, self.wanted, self.every_s = remember, lock, wanted, every_s
        self.last = float("-inf")
        self._reading = threading.Lock()

    def tick(self, now: float) -> None:
        """Read on a thread of its own when due: a dump of a large table takes a while."""
        if now - self.last >= self.every_s and self.wanted():
            self.last = now
            threading.Thread(target=self.read, name="pin-reader", daemon=True).start()

    def read(self) -> None:
        """Read the pins and hand them over; never raises (a failure is one line)."""
        if not self.wanted() or not self._reading.acquire(blocking=False):
            return  # nothing to read, or one read at a time: the one running finds the same pins
        try:
            self.last = time.time()
            found, remembered = ctzone.pins(), 0
            for start in range(0, len(found), PINS_PER_LOCK):
                with self.lock:
                    remembered += self.remember(found[start:start + PINS_PER_LOCK], time.time())
            LOG.info("conntrack holds %d pins: %d of them remembered for pin: conntrack VIPs", len(found), remembered)
        except EnvironmentProblem as exc:
            LOG.warning("reading the pins in conntrack: %s", exc)
        except Exception:  # a thread of its own: say why, keep the controller going
            LOG.exception("reading the pins in conntrack failed")
        finally:
            self._reading.release()
