"""Property tests: the schema files and the runtime decoder agree on generated input."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from aupwatch.schemas.decode import decode_line, validate_object
from aupwatch.schemas.jsonschema import (
    alert_validator,
    registry,
)
from aupwatch.schemas.records import (
    KINDS,
    format_ts,
    parse_ts,
)
from tests.schemas.test_agreement import BASE_URI, VALID, assert_agree

# ----------------------------------------------------------------- timestamps


def _sub_validator(ref: str) -> Any:
    return Draft202012Validator(
        {"$ref": BASE_URI + ref}, registry=registry(), format_checker=FormatChecker()
    )


TS_SCHEMA = _sub_validator("record.schema.json#/$defs/timestamp")
IP_SCHEMA = _sub_validator("api_call.schema.json#/properties/source_ip")
API_CALL = orjson.loads(
    next(c for c in VALID if c["name"] == "contract_example_e2_api_call")["raw"]
)


def _two(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda n: f"{n:02d}")


timestamp_like = st.one_of(
    st.builds(
        lambda y, mo, d, sep, h, mi, s, frac, off: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{off}",
        st.one_of(st.integers(0, 9999).map(lambda n: f"{n:04d}"), st.sampled_from(["99", "12026"])),
        _two(0, 13),
        _two(0, 32),
        st.sampled_from(["T", "t", " ", "_", "TT"]),
        st.one_of(_two(0, 25), st.just("1")),
        _two(0, 61),
        _two(0, 61),
        st.one_of(st.just(""), st.text("0123456789", max_size=12).map(lambda t: "." + t)),
        st.one_of(
            st.sampled_from(["Z", "z", "", "+0200", "+02", "UTC", "Z\n", " ", "ZZ"]),
            st.builds(
                lambda sign, h, m: f"{sign}{h}:{m}", st.sampled_from("+-"), _two(0, 25), _two(0, 61)
            ),
        ),
    ),
    st.text(max_size=30),
    st.text("0123456789-:TZ.+ ", max_size=30),
)


@settings(max_examples=400, deadline=None)
@given(timestamp_like)
@example("2026-03-01T10:00:00Z\n")
@example("\uff12\uff10\uff12\uff16-03-01T10:00:00Z")  # fullwidth digits
@example("0000-01-01T00:00:00Z")
@example("2026-02-29T00:00:00Z")
@example("2024-02-29T00:00:00.000000000001z")
def test_timestamps_agree(text: str) -> None:
    try:
        parse_ts(text)
        parsed = True
    except ValueError:
        parsed = False
    assert TS_SCHEMA.is_valid(text) == parsed, text
    ok, reason = assert_agree(orjson.dumps({**API_CALL, "ts": text}))
    assert ok == parsed
    assert reason in (None, "bad_timestamp")


ip_like = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded),
    st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"),
    st.ip_addresses(v=4).map(lambda a: str(a).replace(".", ".0", 1)),
    st.text("0123456789abcdefABCDEF:.%/ ", max_size=45),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(ip_like)
@example("fe80::1%eth0")
@example("::ffff:1.2.3.4")
@example("1.2.3.4\n")
def test_source_ips_agree(text: str) -> None:
    ok, reason = assert_agree(orjson.dumps({**API_CALL, "source_ip": text}))
    assert IP_SCHEMA.is_valid(text) == ok
    assert reason in (None, "bad_value")


# ------------------------------------------------------- near-valid records

FIELDS = sorted(
    {"event_id", "kind", "ts", "schema_version", "extra"}
    | {k for c in VALID for k in orjson.loads(c["bytes"])}
)

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
near_miss = st.one_of(
    st.sampled_from(
        [
            "",
            "x" * 128,
            "x" * 129,
            "NA",
            "na",
            "grant",
            "revoke",
            "created",
            "seller_user",
            "external",
            "internal_user",
            "S2",
            *KINDS,
            "2026-03-01T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-03-01T10:00:00",
            "203.0.113.7",
            "::1",
            "fe80::1%eth0",
            99,
            100,
            200,
            599,
            600,
            200.0,
            200.5,
            1.0,
            2,
            0,
            -0.0,
            -1,
            True,
            [],
            [""],
            ["r-1"],
            [1],
            [None],
        ]
    ),
    timestamp_like,
    ip_like,
)
valid_objects = st.sampled_from([orjson.loads(c["bytes"]) for c in VALID])


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A valid record with one to three fields removed, retyped or set to a near miss."""
    obj = dict(draw(valid_objects))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(set(FIELDS) | set(obj))))
        action = draw(st.sampled_from(["remove", "near_miss", "retype"]))
        if action == "remove":
            obj.pop(name, None)
        elif action == "near_miss":
            obj[name] = draw(near_miss)
        else:
            obj[name] = draw(json_value)
    return obj


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid())
def test_near_valid_records_agree(obj: dict[str, Any]) -> None:
    raw = orjson.dumps(obj)
    ok, _ = assert_agree(raw)
    if ok:
        assert validate_object(obj) == decode_line(raw)


# ------------------------------------------------------------------- alerts

SAMPLE_ALERT: dict[str, Any] = {
    "alert_id": "3f1c2a9b8d7e6f5a4b3c2d1e",
    "detector": "cross_seller_disclosure",
    "reason": "other_seller",
    "severity": "critical",
    "clause": "Do not disclose information, individually labeled or aggregated, obtained "
    "through Marketplace APIs on behalf of a Seller to other Application users or any "
    "outside parties.",
    "ts": "2026-03-01T10:01:00Z",
    "first_seen": "2026-03-01T10:01:00Z",
    "last_seen": "2026-03-01T10:05:00.500000Z",
    "count": 2,
    "subject": {
        "app_id": "app-1",
        "owner_seller_id": "S1",
        "viewer_type": "seller_user",
        "viewer_seller_id": "S2",
    },
    "summary": "App app-1 showed data of seller S1 to a user of seller S2",
    "evidence": {"resources": 1, "resource_ids": ["111-222-333"], "event_ids": ["e3", "e5"]},
}
OTHER_ALERTS: list[dict[str, Any]] = [
    {
        **SAMPLE_ALERT,
        "detector": "unauthorized_seller_access",
        "reason": "no_grant",
        "severity": "high",
        "subject": {"app_id": "app-1", "seller_id": "S9", "developer_id": "dev-1"},
        "evidence": {"calls": 3, "succeeded": 0, "event_ids": ["e7"]},
    },
    {
        **SAMPLE_ALERT,
        "detector": "throttle_circumvention",
        "reason": "shared_quota",
        "severity": "medium",
        "subject": {
            "region": "NA",
            "seller_id": "S1",
            "operation": "getOrders",
            "developer_ids": ["dev-1", "dev-2"],
        },
        "evidence": {"excess_calls": 5, "event_ids": []},
    },
    {
        **SAMPLE_ALERT,
        "detector": "dormant_key",
        "reason": "dormant",
        "severity": "low",
        "subject": {"key_id": "k-1", "developer_id": "dev-1"},
        "evidence": {"last_success": None, "idle_days": 90, "event_ids": ["e4"]},
    },
    {
        **SAMPLE_ALERT,
        "reason": "external_party",
        "subject": {
            "app_id": "app-1",
            "owner_seller_id": "S1",
            "viewer_type": "external",
            "viewer_id": "partner-7",
        },
    },
]


@pytest.mark.parametrize("alert", [SAMPLE_ALERT, *OTHER_ALERTS], ids=lambda a: a["reason"])
def test_sample_alerts_are_valid(alert: dict[str, Any]) -> None:
    alert_validator().validate(alert)


def _without(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != name}


BAD_ALERTS: list[tuple[str, dict[str, Any]]] = [
    *[(f"missing_{name}", _without(SAMPLE_ALERT, name)) for name in SAMPLE_ALERT],
    ("unknown_detector", {**SAMPLE_ALERT, "detector": "rate_limit"}),
    ("reason_of_other_detector", {**SAMPLE_ALERT, "reason": "no_grant"}),
    ("severity_unknown", {**SAMPLE_ALERT, "severity": "urgent"}),
    ("count_zero", {**SAMPLE_ALERT, "count": 0}),
    ("count_float", {**SAMPLE_ALERT, "count": 1.5}),
    ("count_bool", {**SAMPLE_ALERT, "count": True}),
    ("ts_no_offset", {**SAMPLE_ALERT, "ts": "2026-03-01T10:01:00"}),
    ("ts_year_without_padding", {**SAMPLE_ALERT, "first_seen": "999-03-01T10:01:00Z"}),
    ("last_seen_feb_30", {**SAMPLE_ALERT, "last_seen": "2026-02-30T10:01:00Z"}),
    ("subject_not_object", {**SAMPLE_ALERT, "subject": ["app-1"]}),
    (
        "subject_missing_viewer_seller",
        {
            **SAMPLE_ALERT,
            "subject": {"app_id": "a", "owner_seller_id": "S1", "viewer_type": "seller_user"},
        },
    ),
    ("evidence_without_event_ids", {**SAMPLE_ALERT, "evidence": {"resources": 1}}),
    ("summary_empty", {**SAMPLE_ALERT, "summary": ""}),
    ("alert_id_null", {**SAMPLE_ALERT, "alert_id": None}),
    (
        "throttle_single_account",
        {
            **OTHER_ALERTS[1],
            "subject": {**OTHER_ALERTS[1]["subject"], "developer_ids": ["dev-1"]},
        },
    ),
]


@pytest.mark.parametrize(("name", "alert"), BAD_ALERTS, ids=[n for n, _ in BAD_ALERTS])
def test_bad_alerts_are_rejected(name: str, alert: dict[str, Any]) -> None:
    assert not alert_validator().is_valid(alert), name


# ------------------------------------------- alerts the detectors really emit


def _scenario() -> list[dict[str, Any]]:
    """Records that make every detector fire (times in seconds after 2026-03-01T00:00Z)."""
    day = 86_400

    def at(seconds: float) -> str:
        return format_ts(parse_ts("2026-03-01T00:00:00Z") + round(seconds * 1_000_000))

    def call(n: int, t: float, **fields: Any) -> dict[str, Any]:
        rec = {**API_CALL, "event_id": f"c{n}", "ts": at(t)}
        rec.update(fields)
        return rec

    recs: list[dict[str, Any]] = [
        {
            "event_id": "k0",
            "kind": "key_event",
            "ts": at(0),
            "key_id": "k-old",
            "developer_id": "dev-1",
            "action": "created",
        },
        {
            "event_id": "k1",
            "kind": "key_event",
            "ts": at(1),
            "key_id": "k-gone",
            "developer_id": "dev-1",
            "action": "revoked",
        },
        {
            "event_id": "g1",
            "kind": "authorization",
            "ts": at(2),
            "app_id": "app-1",
            "seller_id": "S1",
            "action": "grant",
            "roles": ["orders"],
        },
        call(1, 10, key_id="k-gone"),  # revoked_key_used
        call(2, 11, seller_id="S9"),  # no_grant
        call(3, 12, operation="getOrderAddress"),  # missing_role
        {
            "event_id": "d1",
            "kind": "data_access",
            "ts": at(20),
            "app_id": "app-1",
            "resource_ids": ["111-222-333"],
            "viewer_type": "seller_user",
            "viewer_id": "u-9",
            "viewer_seller_id": "S2",
        },
        {
            "event_id": "d2",
            "kind": "data_access",
            "ts": at(21),
            "app_id": "app-1",
            "resource_ids": ["111-222-333"],
            "viewer_type": "external",
            "viewer_id": "partner-7",
        },
    ]
    # Two linked developer accounts (same address) sharing one seller's getOrders quota.
    for n in range(40):
        recs.append(call(100 + n, 30 + n, developer_id=f"dev-{1 + n % 2}", key_id="k-1"))
    recs.append(call(999, 100 * day, key_id="k-1"))  # k-old idles past 90 days
    return recs


def test_alerts_emitted_by_the_pipeline_follow_the_alert_contract() -> None:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.pipeline import Pipeline

    pipeline = Pipeline(DetectorConfig())
    versions: list[dict[str, Any]] = []
    for rec in _scenario():
        pipeline.feed(decode_line(orjson.dumps(rec)))
        versions.extend(pipeline.step())
    versions.extend(pipeline.step(final=True))
    for alert in versions:
        errors = [e.message for e in alert_validator().iter_errors(alert)]
        assert not errors, (alert, errors)
    seen = {(a["detector"], a["reason"]) for a in versions}
    assert {d for d, _ in seen} == {
        "unauthorized_seller_access",
        "throttle_circumvention",
        "cross_seller_disclosure",
        "dormant_key",
        "credential_sharing",  # dev-2 calls with k-1, first seen in a call of dev-1
    }, seen
    assert len(seen) >= 7, seen
