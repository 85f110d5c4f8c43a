"""The HTTP API's entry points into the app (lbapp.api calls them, each on one of its threads):
a mixin of :class:`lbapp.app.LbApp`, which owns the lock, the Balancer and the config file."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from lbapp import __version__
from lbapp.api import ApiError
from lbapp.config import ConfigError
from lbapp.config.errors import FieldError
from lbapp.config.load import config_from_text, read_config_text
from lbapp.configedit import change_backend, write_atomically
from lbapp.predict import predict
from lbapp.snapshot import backend_readings, sessions_of

LOG = logging.getLogger("lbapp")


class ApiEntries:
    """What the API may ask of the app; every read and change under the app's ``lock`` (a change
    of the config file under ``edit_lock`` too)."""

    def api_state(self, **page) -> dict:
        """The snapshot (``page``: lbapp.snapshot's vip, offset, limit) and what only the app knows."""
        with self.lock:
            now = time.time()
            self.balancer.readings.watched(now)  # someone looks: keep the bytes and packets current
            state = self.balancer.snapshot(now, **page) | {"ct_policy": self.zone_policy.as_data(),
                                                   "reloads": dict(self.reloads), "version": __version__}
            return state | ({"cluster": self._cluster_data(now)} if self.member is not None else {})

    def api_readings(self, offset: int, limit: int) -> dict:
        """A page of VIPs' backend readings for /metrics (lbapp.snapshot.backend_readings)."""
        with self.lock:
            self.balancer.readings.watched(time.time())
            return backend_readings(self.balancer, offset, limit)

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
            if self.member is not None and not self.member.shared.publish(text):  # the cluster's first
                raise ApiError(409, "the cluster's config changed meanwhile (another member's change): ask again")
            write_atomically(path, text)
            self._apply(new)
        LOG.warning("API: %s %s of VIP %s%s (written to %s)", action, backend, vip,
                    f" to {weight}" if weight is not None else "", path)
        return {"done": f"{action} {backend} of {vip}", "config": str(path)}

    def api_reload(self) -> dict:
        self._reload_file()
        return {"done": "reloaded", "config": str(self.config_path)}

    def _reload_file(self) -> None:
        """Apply the config file as it is now; in a cluster it becomes the cluster's config
        first (every member then applies it), unless another member changed that meanwhile."""
        with self.edit_lock:  # not between an API change's write and its apply
            path = Path(self.config_path)
            try:
                text = read_config_text(path)
                new = config_from_text(text, str(path))
                shared = self.member.shared if self.member is not None else None
                if shared is not None and text != shared.text and not shared.publish(text):
                    raise ConfigError([FieldError("", "the cluster's config changed meanwhile (another member's "
                                                      "change): reload again")], str(path))
            except ConfigError:
                self.reloads["refused"] += 1
                raise
            self._apply(new)
            self.reloads["applied"] += 1

    def _config_published(self, text: str) -> None:
        """Another member changed the cluster's config (lbapp.cluster.member): our file becomes
        a copy of it and is applied as a reload is; one that does not validate changes nothing."""
        try:
            with self.edit_lock:
                new = config_from_text(text, str(self.config_path))
                write_atomically(Path(self.config_path), text)
                self._apply(new)
            LOG.warning("cluster: applied the config another member changed (written to %s)", self.config_path)
        except ConfigError as exc:
            LOG.error("cluster: the cluster's config is refused, keeping the running one: %s", exc)
