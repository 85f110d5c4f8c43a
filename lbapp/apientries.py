"""The HTTP API's entry points into the app (lbapp.api calls them, each on one of its threads):
a mixin of :class:`lbapp.app.LbApp`, which owns the lock, the Balancer and the config file."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from lbapp.config import load_config
from lbapp.config.load import read_config_text
from lbapp.configedit import change_backend, write_atomically
from lbapp.predict import predict
from lbapp.snapshot import sessions_of

LOG = logging.getLogger("lbapp")


class ApiEntries:
    """What the API may ask of the app; every read and change under the app's ``lock`` (a change
    of the config file under ``edit_lock`` too)."""

    def api_state(self) -> dict:
        with self.lock:
            now = time.time()
            self.balancer.readings.watched(now)  # someone looks: keep the bytes and packets current
            return self.balancer.snapshot(now) | {"ct_policy": self.zone_policy.as_data()}

    def api_sessions(self, vip: str) -> list | None:
        with self.lock:
            return sessions_of(self.balancer, vip, time.time())

    def api_predict(self, vip: str, client: str) -> dict | None:
        with self.lock:
            return predict(self.balancer, vip, client, time.time())

    def api_change_backend(self, vip: str, backend: str, action: str, weight: int | None) -> dict:
        """Change one backend in the config file (comments and layout kept), then apply the file
        as a reload does; an invalid result changes nothing."""
        with self.edit_lock:  # one read-modify-write of the file at a time
            path = Path(self.config_path)
            text, new = change_backend(read_config_text(path), vip, backend, action, weight, str(path))
            write_atomically(path, text)
            self._apply(new)
        LOG.warning("API: %s %s of VIP %s%s (written to %s)", action, backend, vip,
                    f" to {weight}" if weight is not None else "", path)
        return {"done": f"{action} {backend} of {vip}", "config": str(path)}

    def api_reload(self) -> dict:
        with self.edit_lock:
            self._apply(load_config(self.config_path))
        return {"done": "reloaded", "config": str(self.config_path)}
