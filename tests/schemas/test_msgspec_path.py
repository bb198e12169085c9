"""The msgspec path and the precise path give the same verdict, record and dead letter.

``decode_line`` tries msgspec first (``schemas.structs.decode_fast``) and falls back to
``decode_line_precise``; the two must be indistinguishable: the same record (same type,
same field values and types, in field order) or the same ``BadRecord`` (reason
and message). The fast path alone must never vouch for a line the precise path rejects.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aupwatch.schemas.decode import decode_line, decode_line_precise
from aupwatch.schemas.errors import BadRecord
from aupwatch.schemas.structs import decode_fast
from aupwatch.streams.generator.command import GeneratorConfig, generate
from tests.schemas.test_agreement import CASES, VALID
from tests.schemas.test_agreement_properties import API_CALL, ip_like, near_valid, timestamp_like
from tests.schemas.test_fuzz import SEEDS, _dump, json_objects, json_value, mutated_seed


def outcome(decode: Any, raw: bytes) -> tuple[Any, ...]:
    """What a decoder makes of a line, down to value types and field order."""
    try:
        rec = decode(raw)
    except BadRecord as exc:
        return ("dead letter", exc.reason, str(exc))
    fields = [(k, type(v).__name__, repr(v)) for k, v in msgspec.structs.asdict(rec).items()]
    return ("record", type(rec).__name__, fields, repr(rec))


def assert_same(raw: bytes) -> tuple[Any, ...]:
    want = outcome(decode_line_precise, raw)
    assert outcome(decode_line, raw) == want, raw[:300]
    fast = decode_fast(raw)
    if fast is not None:
        assert want[0] == "record", raw[:300]
        assert outcome(lambda _: fast, raw) == want, raw[:300]
    return want


@pytest.mark.parametrize("case", CASES, ids=[f"{c['file']}:{c['name']}" for c in CASES])
@pytest.mark.parametrize("end", [b"", b"\n", b"\r\n"], ids=["bare", "lf", "crlf"])
def test_case_files_agree(case: dict[str, Any], end: bytes) -> None:
    assert_same(case["bytes"] + end)


# Valid lines the msgspec path leaves to the precise one, by design (see schemas.structs).
PRECISE_ONLY = {
    "api_call_unknown_extra_fields": "a field beyond the contract",
    "authorization_unknown_extra_fields": "a field beyond the contract",
    "data_access_unknown_extra_fields": "a field beyond the contract",
    "key_event_unknown_extra_fields": "a field beyond the contract",
    "api_call_status_integral_float": "an integer written as a float",
    "api_call_status_exponent": "an integer written as a float",
    "api_call_schema_version_integral_float": "an integer written as a float",
    "api_call_latency_big_integer": "an integer beyond 64 bits",
    "raw_duplicate_key_last_wins": "msgspec checks the type of every duplicate",
    "api_call_id_with_the_text_backslash_u001f": "an escape of U+0010-U+001F, or its text",
    "api_call_id_with_another_control_character": "an escape of U+0010-U+001F, or its text",
}


@pytest.mark.parametrize("case", VALID, ids=[c["name"] for c in VALID])
def test_valid_cases_take_the_msgspec_path(case: dict[str, Any]) -> None:
    fast = decode_fast(case["bytes"])
    if case["name"] in PRECISE_ONLY:
        assert fast is None
    else:
        assert fast == decode_line_precise(case["bytes"])


E2 = SEEDS[0]
EDGES = [
    # integers orjson reads as floats, and numbers beyond a double
    E2.replace(b'"status":200', b'"status":200.0'),
    E2.replace(b'"status":200', b'"status":2e2'),
    E2.replace(b'"status":200', b'"status":18446744073709551616'),
    E2[:-1] + b',"latency_ms":9223372036854775807}',
    E2[:-1] + b',"latency_ms":9223372036854775808}',
    E2[:-1] + b',"latency_ms":18446744073709551616}',
    E2[:-1] + b',"latency_ms":1' + b"0" * 400 + b"}",
    E2[:-1] + b',"latency_ms":1.7976931348623157e308}',
    E2[:-1] + b',"latency_ms":1.7976931348623159e308}',
    E2[:-1] + b',"latency_ms":1e400}',
    E2[:-1] + b',"latency_ms":4.9e-400}',
    E2[:-1] + b',"latency_ms":-0.0}',
    E2[:-1] + b',"latency_ms":-0}',
    E2[:-1] + b',"latency_ms":5}',
    E2[:-1] + b',"latency_ms":5.0}',
    E2[:-1] + b',"latency_ms":null}',
    E2[:-1] + b',"user_agent":null}',
    E2[:-1] + b',"user_agent":""}',
    E2[:-1] + b',"schema_version":1.0}',
    E2[:-1] + b',"schema_version":true}',
    E2[:-1] + b',"schema_version":null}',
    E2[:-1] + b',"schema_version":2}',
    # what msgspec would skip unchecked in a field beyond the contract
    E2[:-1] + b',"extra":1e400}',
    E2[:-1] + b',"extra":-1' + b"0" * 400 + b"}",
    E2[:-1] + b',"extra":"\xff"}',
    E2[:-1] + b',"extra":"\xed\xa0\x80"}',
    E2[:-1] + b',"\xc0\x80":1}',
    E2[:-1] + b',"extra":' + b"[" * 2000 + b"]" * 2000 + b"}",
    # duplicate keys: the last one counts
    E2[:-1] + b',"kind":"key_event"}',
    E2[:-1] + b',"kind":"api_call"}',
    E2[:-1] + b',"kind":1}',
    E2[:-1] + b',"status":404}',
    E2[:-1] + b',"status":"404"}',
    E2[:-1] + b',"source_ip":"fe80::1%eth0"}',
    E2[:-1] + b',"ts":"2026-02-30T00:00:00Z"}',
    # lengths count code points, as Python's len
    E2.replace(b'"event_id":"e2"', b'"event_id":"' + "\U0001f600".encode() * 128 + b'"'),
    E2.replace(b'"event_id":"e2"', b'"event_id":"' + "\U0001f600".encode() * 129 + b'"'),
    E2.replace(b'"event_id":"e2"', b'"event_id":"' + b"e\\u0301" * 64 + b'"'),
    E2.replace(b'"event_id":"e2"', b'"event_id":"' + b"e\\u0301" * 65 + b'"'),
    E2.replace(b'"event_id":"e2"', b'"event_id":"\\ud800"'),
    E2.replace(b'"event_id":"e2"', b'"event_id":"\\ud83d\\ude00"'),
    b"\xef\xbb\xbf" + E2,
    b" \t" + E2 + b" \r\n",
    E2 + b"\x0c",
    b"",
    b"\n",
    b"[]",
    b"null",
]


@pytest.mark.parametrize("raw", EDGES)
def test_edges_agree(raw: bytes) -> None:
    assert_same(raw)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid())
def test_near_valid_records_agree(obj: dict[str, Any]) -> None:
    assert_same(orjson.dumps(obj))


@settings(max_examples=300, deadline=None)
@given(timestamp_like, st.sampled_from(["ts", "expires_at"]))
@example("2026-03-01T10:00:00Z\n", "ts")
def test_timestamps_agree(text: str, name: str) -> None:
    seed = SEEDS[0] if name == "ts" else SEEDS[1]
    assert_same(orjson.dumps({**orjson.loads(seed), name: text}))


@settings(max_examples=300, deadline=None)
@given(ip_like)
def test_source_ips_agree(text: str) -> None:
    assert_same(orjson.dumps({**API_CALL, "source_ip": text}))


number_text = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,30}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,30}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"[eE][-+]?[0-9]{1,3}", fullmatch=True)),
)


@settings(max_examples=500, deadline=None)
@given(number_text, st.sampled_from(["latency_ms", "status", "schema_version"]))
@example("0.1000000000000000055511151231257827", "latency_ms")
@example("2.2250738585072011e-308", "latency_ms")
def test_number_texts_agree(text: str, name: str) -> None:
    assert_same(E2[:-1] + f',"{name}":{text}}}'.encode())


@settings(max_examples=500, deadline=None)
@given(st.one_of(json_value, json_objects))
def test_arbitrary_json_agrees(value: Any) -> None:
    assert_same(_dump(value))


@settings(max_examples=500, deadline=None)
@given(mutated_seed())
def test_mutated_records_agree(raw: bytes) -> None:
    assert_same(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_agree(raw: bytes) -> None:
    assert_same(raw)


def test_generated_lines_agree_and_valid_ones_take_the_msgspec_path() -> None:
    lines = generate(GeneratorConfig(seed=3, records=20_000)).lines
    fast = 0
    for raw in lines:
        if assert_same(raw)[0] == "record":
            assert decode_fast(raw) is not None, raw
            fast += 1
    assert fast > 19_000
