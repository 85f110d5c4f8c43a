"""A config's YAML text to Python data, bounded, in one pass over libyaml's parser events.

The bounds are checked on each event before anything is built: no alias (a few bytes can stand
for millions of nodes), nesting at most MAX_DEPTH deep, at most MAX_NODES nodes. The data is the
same PyYAML's safe loader gives (its resolver types plain scalars, its safe constructors build
tagged ones), except that a key given twice is refused (PyYAML keeps the last: a second
``vips:`` would replace the first without a word) and so are merge keys (``<<``) and tagged
collections (``!!set``, ``!!omap``), which no balancer config needs.

Why not ``yaml.load``: composing a node tree and walking it again costs twice the events, and
the resolver's regular expressions ran on every one of 390,000 scalars of a 10,000-VIP config
that repeat a few dozen keys and words (bench/config_scale.py)."""
from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

MAX_NODES = 750_000  # 1.5 times a 10,000-VIP config's 510,000 nodes: what pydantic checks and the rules walk
MAX_DEPTH = 32
MAX_VALUE_SHOWN = 60

# libyaml's parser where PyYAML has it (Debian's and the wheels do): the pure-Python one costs
# about ten times more on a large file
_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()
_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_MERGE, _VALUE = "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"
_ADDRESS_LIKE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")  # the scalars a config has most of, each once
_MEMO_LONGEST = 32  # plain scalars up to this long are resolved once per text (keys, words, ports)


class YamlRefused(Exception):
    """The text is over a bound or holds what a config cannot: one line saying where and what."""


def shown(value: Any) -> str:
    """``repr(value)``, cut to a sane length for a message."""
    text = repr(value)
    return text if len(text) <= MAX_VALUE_SHOWN else text[:MAX_VALUE_SHOWN] + "..."


def where(event: yaml.Event) -> str:
    return f"line {event.start_mark.line + 1}, column {event.start_mark.column + 1}"


class _Mapping:
    """A mapping being built: its dict, the key waiting for its value, each key's line."""

    __slots__ = ("data", "key", "has_key", "lines")

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}
        self.key: Any = None
        self.has_key = False
        self.lines: dict[Any, int] = {}


def read_yaml(text: str) -> Any:
    """The one document in ``text`` as Python data (None for an empty one); raises
    :class:`YamlRefused` past a bound, ``yaml.YAMLError`` for text that is not YAML."""
    stack: list[Any] = []  # the open collections: lists and _Mappings
    plain_memo: dict[str, Any] = {}  # short plain scalars as resolved (keys, words, numbers repeat)
    documents = nodes = 0
    result = None
    parser = _Parser(text)
    scalar_event, missing = yaml.ScalarEvent, object()
    append = None  # the innermost open collection's append, while it is a list (the hot path)
    try:
        while True:
            event = parser.get_event()  # alone: yaml.parse's check_event before each costs a third more
            kind = type(event)
            if kind is scalar_event:
                nodes += 1
                if nodes > MAX_NODES:
                    raise YamlRefused(f"{where(event)}: over {MAX_NODES:,} YAML nodes: not a balancer config")
                # inline: a plain scalar seen before
                value = plain_memo.get(event.value, missing) if event.tag is None and event.implicit[0] else missing
                if value is missing:
                    value = _scalar(event, plain_memo)
                if append is not None:
                    append(value)
                    continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                done = stack.pop()
                value = done if kind is yaml.SequenceEndEvent else done.data
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                nodes += 1
                stack.append(_opened(event, len(stack)))
                append = stack[-1].append if type(stack[-1]) is list else None
                continue
            elif kind is yaml.AliasEvent:
                raise YamlRefused(f"{where(event)}: YAML aliases (*name) are not accepted")
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise YamlRefused(f"{where(event)}: a second YAML document (---): a config is one")
                continue
            elif kind is yaml.StreamEndEvent:
                return result
            else:
                continue
            if not stack:
                result = value
                continue
            into = stack[-1]
            append = into.append if type(into) is list else None
            if append is not None:
                append(value)
            elif into.has_key:  # a mapping's value
                into.data[into.key] = value
                into.has_key = False
            else:
                _key(into, value, event)
    finally:
        parser.dispose()


def _opened(event: yaml.CollectionStartEvent, depth: int) -> Any:
    """The collection a start event opens, at ``depth`` open ones."""
    if depth >= MAX_DEPTH:
        raise YamlRefused(f"{where(event)}: nested more than {MAX_DEPTH} deep")
    mapping = type(event) is yaml.MappingStartEvent
    if event.tag not in (None, "!", _MAP if mapping else _SEQ):
        raise YamlRefused(f"{where(event)}: YAML tag {shown(event.tag)} is not accepted")
    return _Mapping() if mapping else []


def _key(into: _Mapping, key: Any, event: yaml.Event) -> None:
    """``key`` (complete) as the open mapping ``into``'s next key: once, and hashable."""
    line = event.start_mark.line + 1
    if isinstance(key, (list, dict)):
        raise YamlRefused(f"line {line}: a key that is a list or mapping")
    if key in into.lines:
        raise YamlRefused(f"line {line}: key {shown(key)} given twice (first on line {into.lines[key]})")
    into.lines[key] = line
    into.key, into.has_key = key, True


def _scalar(event: yaml.ScalarEvent, plain_memo: dict[str, Any]) -> Any:
    """A scalar's value as PyYAML's safe loader builds it: a plain one typed by the resolver
    (and remembered if short), a quoted one a string, a tagged one by the tag's constructor."""
    tag, text = event.tag, event.value
    if tag is None or tag == "!":
        if not event.implicit[0] or _ADDRESS_LIKE.match(text):
            return text  # quoted, or an address: a string (no YAML 1.1 type has three dots)
        value = _construct(_RESOLVER.resolve(yaml.ScalarNode, text, event.implicit), event)
        if tag is None and len(text) <= _MEMO_LONGEST:
            plain_memo[text] = value
        return value
    return _construct(tag, event)


def _construct(tag: str, event: yaml.ScalarEvent) -> Any:
    if tag == _STR or tag == _VALUE:
        return event.value
    if tag == _MERGE:
        raise YamlRefused(f"{where(event)}: YAML merge keys (<<) are not accepted")
    build = _CONSTRUCTOR.yaml_constructors.get(tag)
    if build is None:
        raise YamlRefused(f"{where(event)}: YAML tag {shown(tag)} is not accepted")
    try:
        return build(_CONSTRUCTOR, yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style))
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise YamlRefused(f"{where(event)}: {shown(event.value)} is not a valid {tag.rsplit(':', 1)[-1]}: "
                          f"{str(exc).splitlines()[-1][:80]}") from None
