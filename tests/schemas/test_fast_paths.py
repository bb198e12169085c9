"""Decoding shortcuts give exactly what the plain way gives."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aupwatch.schemas import times
from aupwatch.schemas.records import ApiCall, Authorization, DataAccess, KeyEvent
from aupwatch.schemas.structs import decode_fast
from aupwatch.schemas.times import parse_ts

# near-valid timestamps: every part can be valid, off by one, or garbage
texts = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(
        ["2026-03-01", "2024-02-29", "2023-02-29", "0000-01-01", "9999-12-31", "2026-3-01"]
    ),
    st.sampled_from(["T", "t", " ", "x"]),
    st.sampled_from(["00", "23", "24", "9", "٣٣"]),
    st.sampled_from([":00", ":59", ":60", ":5", ";00"]),
    st.sampled_from([":00", ":59", ":60", ":²0", ""]),
    st.sampled_from(["", ".", ".1", ".123", ".1234567", ".12a"]),
    st.sampled_from(["Z", "z", "+02:00", "-23:59", "+24:00", "+02:60", "", "Z\n", "+0200"]),
)


def _outcome(text: str) -> Any:
    try:
        return parse_ts(text)
    except ValueError as exc:
        return str(exc)


def _cold(text: str) -> Any:
    times._hour_cache.clear()
    times._tail_cache.clear()
    times._day_cache.clear()
    return _outcome(text)


@settings(max_examples=1000, deadline=None)
@given(texts, texts)
def test_cached_parse_equals_the_uncached_parse(a: str, b: str) -> None:
    mixed = a[:13] + b[13:]  # a's hour with b's minute, second and tail
    want = {t: _cold(t) for t in (a, b, mixed)}
    _cold(a)
    _outcome(b)  # the caches now hold whatever parts of a and b are valid
    for t in (a, b, mixed, a, b, mixed):
        assert _outcome(t) == want[t]


def test_decoded_records_equal_the_constructed_ones() -> None:
    # msgspec's record gets its times stored after the fact: it must be the plain record
    made = {
        ApiCall("e", 1, "NA", "d", "a", "k", "s", "op", 200, "10.0.0.1", ("r",), None, 3.5): (
            b'{"event_id":"e","kind":"api_call","ts":"1970-01-01T00:00:00.000001Z",'
            b'"region":"NA","developer_id":"d","app_id":"a","key_id":"k","seller_id":"s",'
            b'"operation":"op","status":200,"source_ip":"10.0.0.1","resource_ids":["r"],'
            b'"latency_ms":3.5}'
        ),
        Authorization("e", 1, "a", "s", "grant", ("pii",), 7, None): (
            b'{"event_id":"e","kind":"authorization","ts":"1970-01-01T00:00:00.000001Z",'
            b'"app_id":"a","seller_id":"s","action":"grant","roles":["pii"],'
            b'"expires_at":"1970-01-01T00:00:00.000007Z"}'
        ),
        DataAccess("e", 1, "a", ("r",), "external", "v", None, "email"): (
            b'{"event_id":"e","kind":"data_access","ts":"1970-01-01T00:00:00.000001Z",'
            b'"app_id":"a","resource_ids":["r"],"viewer_type":"external","viewer_id":"v",'
            b'"channel":"email"}'
        ),
        KeyEvent("e", 1, "k", "d", "created", None): (
            b'{"event_id":"e","kind":"key_event","ts":"1970-01-01T00:00:00.000001Z",'
            b'"key_id":"k","developer_id":"d","action":"created","schema_version":1}'
        ),
    }
    for rec, line in made.items():
        decoded = decode_fast(line)
        assert decoded == rec
        assert repr(decoded) == repr(rec)
        assert hash(decoded) == hash(rec)
        assert msgspec.structs.astuple(decoded) == msgspec.structs.astuple(rec)
        assert decoded is not None and decoded.kind == rec.kind == type(rec).kind


def test_records_stay_frozen() -> None:
    rec = ApiCall("e", 1, "NA", "d", "a", "k", "s", "op", 200, "10.0.0.1")
    with pytest.raises(AttributeError):
        rec.ts = 2  # type: ignore[misc]
