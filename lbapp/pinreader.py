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


class PinReader:
    """Owns when the pins were last read and that one read runs at a time. The app's ticker asks
    :meth:`due` and calls :meth:`start`; a switch connecting calls :meth:`read` on the thread that
    keeps its zone policy. What a read finds goes to ``remember`` (pins, now)."""

    def __init__(self, remember: Callable[[Pins, float], None], every_s: float = READ_EVERY_S) -> None:
        self.remember, self.every_s = remember, every_s
        self.last = float("-inf")
        self._reading = threading.Lock()

    def due(self, now: float) -> bool:
        return now - self.last >= self.every_s

    def start(self, now: float) -> None:
        """Read on a thread of its own: a dump of a large table takes a while."""
        self.last = now
        threading.Thread(target=self.read, name="pin-reader", daemon=True).start()

    def read(self) -> None:
        """Read the pins and hand them over; never raises (a failure is one line)."""
        if not self._reading.acquire(blocking=False):
            return  # one read at a time: the one running finds the same pins
        try:
            self.last = time.time()
            self.remember(ctzone.pins(), time.time())
        except EnvironmentProblem as exc:
            LOG.warning("reading the pins in conntrack: %s", exc)
        except Exception:  # a thread of its own: say why, keep the controller going
            LOG.exception("reading the pins in conntrack failed")
        finally:
            self._reading.release()
