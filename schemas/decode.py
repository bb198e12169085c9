"""Decode and validate one log record: the runtime twin of the JSON Schema files.

``decode_line`` accepts exactly what ``schemas/json/record.schema.json`` accepts (draft
2020-12 semantics: ``200.0`` is an integer); ``tests/schemas/test_agreement.py`` feeds the
same cases, and generated near-valid records, through both. A line goes first through
msgspec (``schemas.structs``), which vouches only for records the precise path
(``orjson`` then ``schemas.validate``) would build equal; every other line, and so every
dead letter, is decided by the precise path.
"""

from __future__ import annotations

import orjson

from aupwatch.schemas.errors import BadRecord
from aupwatch.schemas.records import Record
from aupwatch.schemas.structs import decode_fast
from aupwatch.schemas.validate import validate_object as validate_object

DEFAULT_MAX_RECORD_BYTES = 1 << 20


def decode_line(raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Record:
    """Decodes one JSON Lines record.

    Args:
        raw: The line, without or with its trailing newline.
        max_bytes: Lines longer than this are rejected unread.

    Returns:
        The typed record.

    Raises:
        BadRecord: Not UTF-8, not JSON, too large, or breaks the contract.
    """
    if len(raw) > max_bytes:
        raise BadRecord("too_large", f"record of {len(raw)} bytes exceeds {max_bytes} bytes")
    rec = decode_fast(raw)
    if rec is None:
        return decode_line_precise(raw, max_bytes)
    return rec


def decode_line_precise(raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Record:
    """Decodes one record the precise way (``orjson``, then field by field).

    The same verdict and record as ``decode_line``; it also gives every dead letter its
    reason and message.

    Args:
        raw: The line, without or with its trailing newline.
        max_bytes: Lines longer than this are rejected unread.

    Returns:
        The typed record.

    Raises:
        BadRecord: Not UTF-8, not JSON, too large, or breaks the contract.
    """
    if len(raw) > max_bytes:
        raise BadRecord("too_large", f"record of {len(raw)} bytes exceeds {max_bytes} bytes")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise BadRecord(
                "invalid_utf8", f"not UTF-8: {uexc.reason} at byte {uexc.start}"
            ) from None
        raise BadRecord("invalid_json", f"not JSON: {exc}") from None
    return validate_object(obj)
