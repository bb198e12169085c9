"""The kind label of a dead letter: read from the rejected line when it says."""

from __future__ import annotations

import pytest

from aupwatch.streams.rejected import rejected_kind


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b'{"kind": "api_call", "ts": "yesterday"}', "api_call"),
        (b'{"kind": "data_access"}', "data_access"),
        (b'{"kind": "key_event", "ts": 1}\n', "key_event"),
        (b'{"kind": "telemetry"}', "unknown"),
        (b'{"kind": 3}', "unknown"),
        (b'{"kind": ["api_call"]}', "unknown"),
        (b'{"ts": "2026-03-01T00:00:00Z"}', "unknown"),
        (b'["api_call"]', "unknown"),
        (b'"api_call"', "unknown"),
        (b"not json", "unknown"),
        (b'{"kind": "api_call"', "unknown"),
        (b"\xff\xfe", "unknown"),
        (b"", "unknown"),
    ],
)
def test_rejected_kind(line: bytes, kind: str) -> None:
    assert rejected_kind(line) == kind
