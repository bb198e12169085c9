"""What can still be read from a line the decoder rejected."""

from __future__ import annotations

import orjson

from aupwatch.schemas.records import KINDS

UNKNOWN = "unknown"


def rejected_kind(line: bytes) -> str:
    """The record kind of a rejected line, for the ``kind`` label of its dead letter.

    Parses the line again, which costs only on the dead-letter path: a line that is a JSON
    object with a known ``kind`` (say one with a bad timestamp) is counted under that kind.

    Args:
        line: The raw line as received.

    Returns:
        One of :data:`aupwatch.schemas.records.KINDS`, else ``"unknown"`` (not JSON, not
        an object, no or an unknown ``kind``).
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return UNKNOWN
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) and kind in KINDS else UNKNOWN
