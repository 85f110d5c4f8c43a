"""Runtime changes written back to the config file, so the file stays the one source of truth
(a restart or SIGHUP keeps them): a backend drained, enabled, marked down or given a weight.

The file is edited with a round-trip YAML library (ruamel.yaml), keeping its comments and
layout; the result is validated as a whole, like ``lbapp check``, before it replaces the file
atomically (written beside it, then renamed over it).
"""
from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from lbapp.config import Config, ConfigError, FieldError
from lbapp.config.load import config_from_text

ACTIONS = ("drain", "enable", "down", "weight")


class NotFound(LookupError):
    """No such VIP or backend in the file."""


def _yaml(text: str = "") -> YAML:
    """A round-trip YAML (comments, order, quotes and flow style kept) that writes with the
    indentation ``text`` uses."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    if text:
        _, sequence, offset = load_yaml_guess_indent(text)
        keys = [len(line) - len(line.lstrip(" ")) for line in text.splitlines()
                if line.startswith(" ") and re.match(r"\s+[\w\"'][^:#]*:", line)]
        yaml.indent(mapping=min((k for k in keys if k), default=2), sequence=sequence or 2, offset=offset or 0)
    return yaml


def change_backend(text: str, vip: str, backend: str, action: str, weight: int | None = None,
                   source: str = "config") -> tuple[str, Config]:
    """``text`` with one backend changed, and its validated config. ``vip``: a VIP's name or
    ``ip:port/protocol``; ``backend``: its address. Raises NotFound, or ConfigError with the
    same field-path messages as ``lbapp check``."""
    if action not in ACTIONS:
        raise ConfigError([FieldError("action", f"unknown action {action!r} (one of {', '.join(ACTIONS)})")], source)
    if (action == "weight") != (weight is not None):
        raise ConfigError([FieldError("weight", "give a weight with action weight, and only then")], source)
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise ConfigError([FieldError("", f"not valid YAML ({exc})")], source) from None
    vips = doc.get("vips") if isinstance(doc, dict) else None
    found = next((v for v in vips or () if isinstance(v, dict) and vip in (v.get("name"), _key(v))), None)
    if found is None:
        raise NotFound(f"no VIP {vip!r} in {source}")
    entry = next((b for b in found.get("backends") or () if isinstance(b, dict) and str(b.get("ip")) == backend), None)
    if entry is None:
        raise NotFound(f"VIP {vip!r} has no backend {backend}")
    if action == "drain":
        entry["drain"] = True
    elif action == "down":
        entry["down"] = True
    elif action == "enable":
        for key in ("drain", "down"):
            entry.pop(key, None)
    else:
        entry["weight"] = weight
    out = io.StringIO()
    _yaml(text).dump(doc, out)
    new = out.getvalue()
    return new, config_from_text(new, source)  # validated as the normal loader sees it


def _key(vip: dict[str, Any]) -> str:
    return f"{vip.get('ip')}:{vip.get('port')}/{vip.get('protocol', 'tcp')}"


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one rename: a reader sees the old file or the new one. A
    symbolic link stays one (the file it names is replaced); mode and owner are kept."""
    path = Path(path).resolve()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            before = path.stat()
            os.chmod(tmp, before.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(tmp, before.st_uid, before.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
