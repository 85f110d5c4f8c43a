"""The scheduler interface the balancer calls for every new connection."""
from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

IPv4 = ipaddress.IPv4Address


@dataclass(frozen=True)
class ConnKey:
    """The 5-tuple of a connection as the balancer sees it (dst is the VIP)."""

    protocol: int
    src_ip: IPv4
    src_port: int
    dst_ip: IPv4
    dst_port: int


@dataclass(frozen=True)
class BackendWeight:
    ip: IPv4
    weight: int


class Scheduler(ABC):
    """Chooses a backend. Deterministic for a given sequence of calls; holds no clock.

    ``active`` maps each backend to its live connection count, for the connection-aware
    policies; ``pick`` returns None when no backend can take a connection (all weights 0).
    """

    name: ClassVar[str]

    def __init__(self, backends: Sequence[BackendWeight]) -> None:
        self.backends = list(backends)

    @abstractmethod
    def pick(self, key: ConnKey, active: Mapping[IPv4, int]) -> IPv4 | None:
        """The backend for the new connection ``key``."""

    def set_backends(self, backends: Sequence[BackendWeight]) -> None:
        """Replace the backend set (weights changed, backend added or drained)."""
        self.backends = list(backends)

    @property
    def eligible(self) -> list[BackendWeight]:
        return [b for b in self.backends if b.weight > 0]
