"""Errors of the log contract: a record that breaks it, and the dead-letter reason codes."""

from __future__ import annotations

from typing import Any

from aupwatch.errors import AupwatchError


class BadRecord(AupwatchError):
    """An input record that breaks the log contract; it becomes a dead letter.

    Args:
        reason: A reason code from ``DEAD_LETTER_REASONS``.
        message: Human detail, e.g. which field and why.
        **context: Where the record came from.
    """

    def __init__(self, reason: str, message: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BadRecord):
            return NotImplemented
        return self.reason == other.reason and super().__eq__(other)

    def __hash__(self) -> int:
        return hash((self.reason, self.message))


DEAD_LETTER_REASONS = (
    "invalid_utf8",
    "invalid_json",
    "not_object",
    "unknown_kind",
    "missing_field",
    "wrong_type",
    "bad_value",
    "bad_timestamp",
    "too_large",
)
