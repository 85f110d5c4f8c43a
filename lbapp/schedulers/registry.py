"""Name -> scheduler class. Built-ins register on import; third parties through the
``lbapp.schedulers`` entry-point group (``name = module:Class``)."""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Sequence

from lbapp.schedulers.base import BackendWeight, Scheduler, SchedulerOptions

BUILTIN_MODULES = tuple(f"lbapp.schedulers.{name}" for name in
                        ("rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh"))
ENTRY_POINT_GROUP = "lbapp.schedulers"

_registry: dict[str, type[Scheduler]] = {}
_loaded = False


def register(cls: type[Scheduler]) -> type[Scheduler]:
    """Class decorator: make ``cls`` selectable by ``cls.name`` in a VIP's ``scheduler:``."""
    if cls.name in _registry and _registry[cls.name] is not cls:
        raise ValueError(f"scheduler name {cls.name!r} registered twice")
    _registry[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if ep.name != cls.name:
            raise ValueError(f"entry point {ep.name!r} names a scheduler called {cls.name!r}")
        register(cls)


def names() -> list[str]:
    _load()
    return sorted(_registry)


def create(name: str, backends: Sequence[BackendWeight], options: SchedulerOptions = SchedulerOptions()) -> Scheduler:
    _load()
    try:
        cls = _registry[name]
    except KeyError:
        raise KeyError(f"unknown scheduler {name!r} (known: {', '.join(sorted(_registry))})") from None
    return cls(backends, options)
