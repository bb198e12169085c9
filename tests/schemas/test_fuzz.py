"""decode_line never fails in an unplanned way, and timestamps round-trip exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aupwatch.schemas.decode import DEFAULT_MAX_RECORD_BYTES, decode_line
from aupwatch.schemas.errors import DEAD_LETTER_REASONS, BadRecord
from aupwatch.schemas.jsonschema import registry
from aupwatch.schemas.records import (
    ApiCall,
    Authorization,
    DataAccess,
    KeyEvent,
    format_ts,
    parse_ts,
)

RECORD_TYPES = (ApiCall, Authorization, DataAccess, KeyEvent)
E2 = (
    b'{"event_id":"e2","kind":"api_call","ts":"2026-03-01T10:00:05.250Z","region":"NA",'
    b'"developer_id":"dev-1","app_id":"app-1","key_id":"k-1","seller_id":"S1",'
    b'"operation":"getOrders","status":200,"source_ip":"203.0.113.7",'
    b'"resource_ids":["111-222-333"]}'
)
SEEDS = [
    E2,
    b'{"event_id":"e1","kind":"authorization","ts":"2026-03-01T10:00:00Z","app_id":"app-1",'
    b'"seller_id":"S1","action":"grant","roles":["orders"],"expires_at":"2027-03-01T10:00:00Z"}',
    b'{"event_id":"e3","kind":"data_access","ts":"2026-03-01T10:01:00Z","app_id":"app-1",'
    b'"resource_ids":["111-222-333"],"viewer_type":"seller_user","viewer_id":"u-9",'
    b'"viewer_seller_id":"S2","channel":"ui"}',
    b'{"event_id":"e4","kind":"key_event","ts":"2026-03-01T09:00:00Z","key_id":"k-1",'
    b'"developer_id":"dev-1","app_id":"app-1","action":"created"}',
]


def check(raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Any:
    """Decodes; only a record or a BadRecord with a known reason may come out."""
    try:
        record = decode_line(raw, max_bytes)
    except BadRecord as exc:
        assert exc.reason in DEAD_LETTER_REASONS
        assert str(exc)
        return exc.reason
    assert isinstance(record, RECORD_TYPES)
    assert type(record.ts) is int
    assert 1 <= len(record.event_id) <= 128
    return record


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
@example(b"")
@example(b"\xff")
@example(b"[" * 2000)
@example(b'{"event_id":"' + b"\xed\xa0\x80" + b'"}')
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["api_call", "authorization", "data_access", "key_event"]),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    sorted({f.name for cls in RECORD_TYPES for f in msgspec.structs.fields(cls)} | {"kind"})
)
json_objects = st.dictionaries(st.one_of(FIELD_NAMES, st.text(max_size=8)), json_value)


def _dump(value: Any) -> bytes:
    # orjson cannot write integers beyond 64 bits or NaN: the standard library can.
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


@settings(max_examples=500, deadline=None)
@given(st.one_of(json_value, json_objects))
def test_arbitrary_json(value: Any) -> None:
    check(_dump(value))


@st.composite
def mutated_seed(draw: st.DrawFn) -> bytes:
    """A valid seed line with a few bytes inserted, deleted or replaced."""
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(
            st.binary(min_size=1, max_size=4)
            | st.sampled_from([b'"', b"{", b"}", b",", b":", b"\\", b"1"])
        )
        if op == "insert":
            raw[at:at] = chunk
        elif op == "delete":
            del raw[at : at + len(chunk)]
        else:
            raw[at : at + len(chunk)] = chunk
    return bytes(raw)


@settings(max_examples=500, deadline=None)
@given(mutated_seed())
def test_mutated_records(raw: bytes) -> None:
    check(raw)


def test_seeds_are_valid() -> None:
    for raw in SEEDS:
        assert isinstance(check(raw), RECORD_TYPES)


def test_ten_megabyte_line_is_too_large() -> None:
    raw = E2[:-1] + b',"pad":"' + b"x" * (10 * 1024 * 1024) + b'"}'
    assert check(raw) == "too_large"
    with pytest.raises(BadRecord) as info:
        decode_line(b"\xff" * (10 * 1024 * 1024))
    assert info.value.reason == "too_large"


def test_size_limit_is_inclusive_and_configurable() -> None:
    assert isinstance(check(E2, max_bytes=len(E2)), ApiCall)
    assert check(E2, max_bytes=len(E2) - 1) == "too_large"
    padded = E2[:-1] + b',"pad":"' + b"x" * (DEFAULT_MAX_RECORD_BYTES - len(E2) - 9) + b'"}'
    assert len(padded) == DEFAULT_MAX_RECORD_BYTES
    assert isinstance(check(padded), ApiCall)
    assert check(padded + b" ") == "too_large"


# --------------------------------------------------------------- timestamps

MIN_US = parse_ts("0001-01-01T00:00:00Z")
MAX_US = parse_ts("9999-12-31T23:59:59.999999Z")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))


def _ts_validator() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    return Draft202012Validator(
        {"$ref": "https://aupwatch.example/schemas/v1/record.schema.json#/$defs/timestamp"},
        registry=registry(),
        format_checker=FormatChecker(),
    )


TS_SCHEMA = _ts_validator()


@settings(max_examples=500, deadline=None)
@given(st.integers(MIN_US, MAX_US))
@example(MIN_US)
@example(MAX_US)
@example(0)
@example(-1)
@example(parse_ts("0999-12-31T23:59:59Z"))
def test_format_then_parse_is_identity(us: int) -> None:
    text = format_ts(us)
    assert parse_ts(text) == us
    assert TS_SCHEMA.is_valid(text), text
    assert text.endswith("Z") and len(text) in (20, 27)


@settings(max_examples=500, deadline=None)
@given(st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30)), offsets)
def test_parse_matches_datetime(naive: datetime, tz: timezone) -> None:
    dt = naive.replace(tzinfo=tz)
    text = dt.isoformat()
    expected = (dt - EPOCH) // timedelta(microseconds=1)
    assert parse_ts(text) == expected
    assert parse_ts(text.replace("T", "t")) == expected
    utc = format_ts(expected)
    assert parse_ts(utc) == expected
    assert datetime.fromisoformat(utc) == dt


@settings(max_examples=200, deadline=None)
@given(st.integers(MIN_US, MAX_US), st.text("0123456789", min_size=1, max_size=9))
def test_fraction_digits_beyond_microseconds_are_cut(us: int, extra: str) -> None:
    text = format_ts(us - us % 1_000_000 + 123_456)
    assert parse_ts(text[:-1] + extra + "Z") == parse_ts(text)


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000001Z", 1),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("2026-03-01T10:00:05.250Z", 1_772_359_205_250_000),
        ("2026-03-01T12:00:05.25+02:00", 1_772_359_205_250_000),
        ("2026-03-01T04:30:05.250-05:30", 1_772_359_205_250_000),
        ("2026-03-01t10:00:05.250z", 1_772_359_205_250_000),
    ],
)
def test_parse_known_values(text: str, us: int) -> None:
    assert parse_ts(text) == us


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_772_359_205_250_000, "2026-03-01T10:00:05.250000Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
        (MIN_US, "0001-01-01T00:00:00Z"),
        (parse_ts("0999-06-01T00:00:00Z"), "0999-06-01T00:00:00Z"),
    ],
)
def test_format_known_values(us: int, text: str) -> None:
    assert format_ts(us) == text


@pytest.mark.parametrize("us", [MIN_US - 1, MAX_US + 1])
def test_format_out_of_range(us: int) -> None:
    with pytest.raises(OverflowError):
        format_ts(us)
