"""SIGHUP for lbapp loaded by a plain os-ken manager (``lbapp run`` handles its signals itself,
before any app starts). That manager's main thread sleeps in a join where a Python signal
handler may never run, and SIGHUP's default action ends the process."""
from __future__ import annotations

import signal
import threading
from typing import Callable


def reload_on_sighup(reload: Callable[[], None]) -> bool:
    """Call ``reload`` on each SIGHUP when nobody handles it yet and this is the main thread;
    whether it was taken. The signal is blocked here, so the threads started from now on
    inherit that, and one thread takes it with sigwait."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL:
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    # a thread started before (another app's) may still take it: then a late reload, not an end
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=reload, daemon=True).start())

    def take() -> None:
        while True:
            signal.sigwait({signal.SIGHUP})
            reload()
    threading.Thread(target=take, name="sighup", daemon=True).start()
    return True
