"""A cluster's config: one copy in etcd (``/lbapp/CLUSTER/config``), each member's file a copy
of it. The first member seeds etcd with its file; a member whose file differs is refused at
start; a runtime change made through any member's API (drain, weight, down, enable) goes to
etcd first, under a compare on the revision it was read at, and every member writes the new
text to its file and applies it as a reload does (lbapp.cluster.member polls it)."""
from __future__ import annotations

import hashlib

from lbapp.cluster.etcd import Etcd


class ConfigDiffers(RuntimeError):
    """This member's config file is not the cluster's."""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class SharedConfig:
    """The config key of one cluster, and the revision of it this member last applied."""

    def __init__(self, etcd: Etcd, cluster: str) -> None:
        self.etcd = etcd
        self.key = f"/lbapp/{cluster}/config"
        self.revision = 0
        self.text = ""  # the cluster's config as this member last applied it

    def join(self, text: str) -> bool:
        """This member's file: seeds etcd if it has no config (True), or must equal it."""
        created = self.etcd.create(self.key, text)
        if created is not None:
            self.revision, self.text = created, text
            return True
        found = self.etcd.get(self.key)
        if found is None:  # deleted between the two: seed again on the next start
            raise ConfigDiffers(f"the cluster's config ({self.key}) vanished while joining: start again")
        current, _, self.revision = found
        if current != text:
            raise ConfigDiffers(f"this config file (sha256 {digest(text)}) differs from the cluster's ({self.key} "
                                f"in etcd, sha256 {digest(current)}, revision {self.revision}): give every member "
                                "the same file")
        self.text = text
        return False

    def publish(self, text: str) -> bool:
        """A runtime change: put ``text`` if the cluster's config is still the one we applied."""
        revision = self.etcd.replace(self.key, text, self.revision)
        if revision is None:
            return False
        self.revision, self.text = revision, text
        return True

    def newer(self) -> str | None:
        """The cluster's config if it changed since we applied it (another member's change)."""
        found = self.etcd.get(self.key)
        if found is None or found[2] <= self.revision:
            return None
        self.revision, self.text = found[2], found[0]
        return found[0]
