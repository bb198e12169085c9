"""The one exception base of aupwatch and its general subclasses.

Errors compare equal when their type, message and context are equal, so tests can
assert on whole error values.
"""

from __future__ import annotations

from typing import Any


class AupwatchError(Exception):
    """Base of every error aupwatch raises on purpose.

    Args:
        message: What went wrong, in one line.
        **context: Where it happened (topic, partition, offset, line, path, key, ...).
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        where = ", ".join(f"{k}={v}" for k, v in sorted(self.context.items()))
        return f"{self.message} ({where})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, AupwatchError)
        return (self.message, self.context) == (other.message, other.context)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.message))


class ConfigError(AupwatchError):
    """A configuration value or file that cannot be used."""


class UsageError(AupwatchError):
    """A command-line mistake: unreadable file, bad option value."""
