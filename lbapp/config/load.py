"""From a file to a validated :class:`Config`, in two passes: pydantic checks each field's shape,
then :mod:`lbapp.config.rules` what only the whole file can tell. Either pass reports every
problem it finds as ``path: message``, so one ``lbapp check`` shows every mistake.

A config file is input from outside: its cost is bounded before it is built (at most 16 MiB,
UTF-8, then lbapp.config.yamlread's bounds on nodes, nesting and aliases, checked on libyaml's
events as the data is built), and values are cut short in messages. The largest config lbapp
is measured with, 10,000 VIPs of 10 backends (bench/config_scale.py), is 5.4 MiB and 510,000
nodes: a file at the node bound is refused in about 0.6 s, the time libyaml takes to hand over
its events."""
from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import gc
import typing
from pathlib import Path
from typing import Any

import pydantic
import yaml

from lbapp.config.errors import ConfigError, FieldError
from lbapp.config.models import Config
from lbapp.config.rules import semantic_errors
from lbapp.config.yamlread import YamlRefused, read_yaml, shown


MAX_CONFIG_BYTES = 16 << 20  # three times the largest measured config (10,000 VIPs of 10 backends: 5.4 MiB)


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
            msg = f"{msg} (got {shown(err['input'])})"
        if err["type"] == "extra_forbidden" and err["loc"]:
            close = difflib.get_close_matches(str(err["loc"][-1]), _field_names(), n=1)
            msg += f" (did you mean {close[0]!r}?)" if close else ""
        errors.append(FieldError(_loc_to_path(err["loc"]), msg))
    return errors


@functools.cache
def _field_names() -> list[str]:
    """Every field name of the config's models: what a misspelt key is compared with."""
    names, todo = set(), [Config]
    while todo:
        model = todo.pop()
        for name, field in model.model_fields.items():
            names.add(name)
            todo += [t for t in typing.get_args(field.annotation) + (field.annotation,)
                     if isinstance(t, type) and issubclass(t, pydantic.BaseModel)]
            todo += [a for t in typing.get_args(field.annotation) for a in typing.get_args(t)
                     if isinstance(a, type) and issubclass(a, pydantic.BaseModel)]
    return sorted(names)


def _rules_despite_unknown_keys(data: dict, exc: pydantic.ValidationError) -> list[FieldError]:
    """When unknown keys (typos) are the only shape errors, the whole-file rules' errors too, as
    the file reads without them: ``lbapp check`` shows every mistake at once."""
    if any(err["type"] != "extra_forbidden" for err in exc.errors()):
        return []
    stripped = copy.deepcopy(data)
    for err in exc.errors():
        *parents, key = err["loc"]
        node = stripped
        for part in parents:
            node = node[part]
        node.pop(key, None)
    try:
        return semantic_errors(Config.model_validate(stripped))
    except pydantic.ValidationError:
        return []


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate a parsed YAML document; raise :class:`ConfigError` listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError([FieldError("", "the file must hold a mapping (balancer:, gateways:, ...)")], source)
    try:
        cfg = Config.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_pydantic_errors(exc) + _rules_despite_unknown_keys(data, exc), source) from None
    errors = semantic_errors(cfg)
    if errors:
        raise ConfigError(errors, source)
    return cfg


def read_config_text(path: Path) -> str:
    """The file's text: at most MAX_CONFIG_BYTES, UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([FieldError("", f"cannot read file: {exc.strerror}")], str(path)) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([FieldError("", f"over {MAX_CONFIG_BYTES >> 20} MiB: not a balancer config (10,000 VIPs "
                                          "of 10 backends take 5.4)")], str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError([FieldError("", f"line {line}: byte {data[exc.start]:#04x} is not UTF-8")],
                          str(path)) from None


def load_config(path: str | Path) -> Config:
    """Read, parse and validate a YAML config file; raise :class:`ConfigError` listing every problem."""
    return config_from_text(read_config_text(Path(path)), str(path))


def config_from_text(text: str, source: str = "config") -> Config:
    """Parse (bounded) and validate a config's YAML text."""
    with _collector_paused():
        return _config_from_text(text, source)


@contextlib.contextmanager
def _collector_paused() -> typing.Iterator[None]:
    """Python's cyclic garbage collector off while a config is read: a large one allocates
    millions of objects and no cycles, and the collector's full passes, each over every object
    so far, made reading 10,000 VIPs take twice as long (bench/config_scale.py)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _config_from_text(text: str, source: str) -> Config:
    try:
        data = read_yaml(text)
    except YamlRefused as exc:
        raise ConfigError([FieldError("", str(exc))], source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([FieldError("", f"{where}not valid YAML ({getattr(exc, 'problem', exc)})")],
                          source) from None
    return parse_config(data, source)
