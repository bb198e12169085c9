"""Decode and validate one log record: the runtime twin of the JSON Schema files.

``decode_line`` accepts exactly what ``schemas/json/record.schema.json`` accepts (draft
2020-12 semantics: ``200.0`` is an integer); ``tests/schemas/test_agreement.py`` feeds the
same cases, and generated near-valid records, through both. A line goes first through
msgspec (``schemas.structs``), which vouches only for records the precise path
(``decode_line_precise``: ``orjson`` then ``schemas.validate``) would build equal; every
other line, and so every dead letter, is decided by the precise path.
"""

from __future__ import annotations

from aupwatch.schemas.structs import decode_line as decode_line
from aupwatch.schemas.validate import DEFAULT_MAX_RECORD_BYTES as DEFAULT_MAX_RECORD_BYTES
from aupwatch.schemas.validate import decode_line_precise as decode_line_precise
from aupwatch.schemas.validate import validate_object as validate_object
