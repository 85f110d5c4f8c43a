"""From a file to a validated :class:`Config`, in two passes: pydantic checks each field's shape,
then :mod:`lbapp.config.rules` what only the whole file can tell. Either pass reports every
problem it finds as ``path: message``, so one ``lbapp check`` shows every mistake."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import yaml

from lbapp.config.errors import ConfigError, FieldError
from lbapp.config.models import Config
from lbapp.config.rules import semantic_errors


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _pydantic_errors(exc: pydantic.ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err \
                and repr(err["input"]) not in msg:
            msg = f"{msg} (got {err['input']!r})"
        errors.append(FieldError(_loc_to_path(err["loc"]), msg))
    return errors


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate a parsed YAML document; raise :class:`ConfigError` listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError([FieldError("", "the file must hold a mapping (balancer:, gateways:, ...)")], source)
    try:
        cfg = Config.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_pydantic_errors(exc), source) from None
    errors = semantic_errors(cfg)
    if errors:
        raise ConfigError(errors, source)
    return cfg


def read_config_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError([FieldError("", f"cannot read file: {exc.strerror}")], str(path)) from None


def load_config(path: str | Path) -> Config:
    """Read, parse and validate a YAML config file; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    text = read_config_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([FieldError("", f"{where}not valid YAML ({getattr(exc, 'problem', exc)})")],
                          str(path)) from None
    return parse_config(data, str(path))
