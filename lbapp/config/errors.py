"""What a bad config raises: each problem named by its field path, and all of them at once, so
one ``lbapp check`` shows every mistake. Apart from the models so the rules and the loader share it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem in a config: the field path it is at, and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        # a value from the file may be long: the message stays a line
        message = self.message if len(self.message) <= 300 else self.message[:300] + "..."
        path = self.path if len(self.path) <= 120 else self.path[:120] + "..."
        return f"{path}: {message}" if path else message


class ConfigError(ValueError):
    """Raised with every problem found in a config file."""

    def __init__(self, errors: list[FieldError], source: str = "config") -> None:
        self.errors = errors
        self.source = source
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{source}: {len(errors)} error(s)\n{lines}")
