"""Tuning: switches, severity overrides and exceptions (spec, "Tuning")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aupwatch.cli import main
from aupwatch.detectors.config import DetectorConfig
from aupwatch.errors import ConfigError
from tests.detectors.support import decode_all, replay

T0 = "2026-03-01T10:00:00Z"


def _call(eid: str, ts: str, seller: str, dev: str = "dev-1", **kw: Any) -> dict[str, Any]:
    return {
        "event_id": eid,
        "kind": "api_call",
        "ts": ts,
        "region": "NA",
        "developer_id": dev,
        "app_id": "app-1",
        "key_id": f"k-{dev}",
        "seller_id": seller,
        "operation": "getOrders",
        "status": 200,
        "source_ip": f"203.0.113.{len(dev)}",
        **kw,
    }


# two no_grant subjects (S1 twice, S2) and one revoked subject (S3)
RECORDS = [
    {"event_id": "g3", "kind": "authorization", "ts": T0, "app_id": "app-1",
     "seller_id": "S3", "action": "revoke"},
    _call("c1", "2026-03-01T10:00:01Z", "S1"),
    _call("c2", "2026-03-01T10:00:10Z", "S2"),
    _call("c3", "2026-03-01T10:00:20Z", "S3"),
    _call("c4", "2026-03-01T10:00:30Z", "S1"),
]  # fmt: skip


def run(config: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    final, pipeline = replay(decode_all(RECORDS), DetectorConfig.from_mapping(config))
    return final, pipeline


def _reasons(final: dict[str, Any]) -> set[tuple[str, str]]:
    return {(a["reason"], a["subject"]["seller_id"]) for a in final.values()}


def test_disabled_detector_keeps_no_state_and_raises_nothing() -> None:
    final, pipeline = run({"detectors": {"unauthorized_seller_access": {"enabled": False}}})
    assert not [a for a in final.values() if a["detector"] == "unauthorized_seller_access"]
    assert pipeline.state_sizes()["unauthorized_seller_access"] == 0
    assert pipeline.state_sizes()["dormant_key"] > 0  # the others run as before


def test_severity_override_changes_only_severity() -> None:
    base, _ = run({})
    over, _ = run({"detectors": {"unauthorized_seller_access": {"severity": {"no_grant": "low"}}}})
    assert base.keys() == over.keys()
    for aid, alert in over.items():
        want = "low" if alert["reason"] == "no_grant" else base[aid]["severity"]
        assert alert["severity"] == want
        assert {k: v for k, v in alert.items() if k != "severity"} == {
            k: v for k, v in base[aid].items() if k != "severity"
        }


def test_exception_partial_subject_until_and_note() -> None:
    base, _ = run({})
    exceptions = [
        # S1's occurrences before 10:00:30 (c1); c4 at exactly `until` is not excepted
        {"detector": "unauthorized_seller_access", "subject": {"seller_id": "S1"},
         "until": "2026-03-01T10:00:30Z", "note": "TICKET-1"},
        # every reason, S3 (revoked); a later match does not win over an earlier one
        {"detector": "unauthorized_seller_access", "subject": {"app_id": "app-1",
         "seller_id": "S3"}, "note": "TICKET-2"},
        {"detector": "unauthorized_seller_access", "reason": "revoked", "note": "never used"},
    ]  # fmt: skip
    final, pipeline = run({"exceptions": exceptions})
    assert _reasons(final) == {("no_grant", "S1"), ("no_grant", "S2")}
    (s1,) = [a for a in final.values() if a["subject"]["seller_id"] == "S1"]
    assert s1["ts"] == "2026-03-01T10:00:30Z" and s1["count"] == 1
    assert pipeline.stats.suppressed == {
        ("unauthorized_seller_access", "no_grant"): 1,
        ("unauthorized_seller_access", "revoked"): 1,
    }
    suppressed = {a["alert_id"]: a for a in pipeline.suppressed}
    notes = {(a["subject"]["seller_id"], a["note"], a["exception"]) for a in suppressed.values()}
    assert notes == {("S1", "TICKET-1", "exceptions[0]"), ("S3", "TICKET-2", "exceptions[1]")}
    # a suppressed alert is the alert that would have been, plus its exception
    (s3,) = [a for a in suppressed.values() if a["subject"]["seller_id"] == "S3"]
    assert {k: v for k, v in s3.items() if k not in ("note", "exception")} == base[s3["alert_id"]]


def test_exception_list_field_matches_as_set() -> None:
    records = [
        _call(f"t{i}", f"2026-03-01T10:00:{i:02d}Z", "S9", dev=("dev-b", "dev-a")[i % 2],
              source_ip="198.51.100.1")
        for i in range(30)
    ]  # fmt: skip
    cfg = {"throttle": {"min_excess_calls": 1, "plans": {"getOrders": {"rate": 0.01, "burst": 2}}}}
    final, _ = replay(decode_all(records), DetectorConfig.from_mapping(cfg))
    assert any(a["detector"] == "throttle_circumvention" for a in final.values())
    exc = {"detector": "throttle_circumvention", "subject": {"developer_ids": ["dev-b", "dev-a"]},
           "note": "one vendor, two accounts"}  # fmt: skip
    final, pipeline = replay(
        decode_all(records), DetectorConfig.from_mapping({**cfg, "exceptions": [exc]})
    )
    assert not any(a["detector"] == "throttle_circumvention" for a in final.values())
    assert pipeline.stats.suppressed[("throttle_circumvention", "shared_quota")] > 0


GOOD = {"detector": "dormant_key", "note": "n"}


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"exceptions": [GOOD, {"detector": "nope", "note": "n"}]}, "exceptions[1].detector"),
        ({"exceptions": [{**GOOD, "reason": "no_grant"}]}, "exceptions[0].reason"),
        ({"exceptions": [{**GOOD, "subject": {"seller_id": "S1"}}]},
         "exceptions[0].subject.seller_id"),
        ({"exceptions": [{**GOOD, "subject": {"key_id": 5}}]}, "exceptions[0].subject.key_id"),
        ({"exceptions": [{"detector": "unauthorized_seller_access", "reason": "no_grant",
                          "subject": {"viewer_id": "x"}, "note": "n"}]},
         "exceptions[0].subject.viewer_id"),
        ({"exceptions": [GOOD, GOOD, {**GOOD, "until": "2026-03-01"}]}, "exceptions[2].until"),
        ({"exceptions": [{**GOOD, "until": "2026-03-01T10:00:00"}]}, "exceptions[0].until"),
        ({"exceptions": [{"detector": "dormant_key"}]}, "exceptions[0].note"),
        ({"exceptions": [{**GOOD, "note": " "}]}, "exceptions[0].note"),
        ({"exceptions": [{**GOOD, "owner": "me"}]}, "exceptions[0]"),
        ({"exceptions": {"detector": "dormant_key"}}, "exceptions"),
        ({"detectors": {"nope": {"enabled": False}}}, "detectors.nope"),
        ({"detectors": {"dormant_key": {"enabled": "no"}}}, "detectors.dormant_key.enabled"),
        ({"detectors": {"dormant_key": {"severity": {"dormant": "urgent"}}}},
         "detectors.dormant_key.severity.dormant"),
        ({"detectors": {"dormant_key": {"severity": {"no_grant": "low"}}}},
         "detectors.dormant_key.severity.no_grant"),
        ({"detectors": {"dormant_key": {"colour": 1}}}, "detectors.dormant_key"),
    ],
)  # fmt: skip
def test_bad_tuning_names_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        DetectorConfig.from_mapping(config)
    assert err.value.context["key"] == key


def test_until_accepts_toml_datetime_with_offset(tmp_path: Path) -> None:
    import tomllib

    doc = tomllib.loads(
        '[[exceptions]]\ndetector = "dormant_key"\nuntil = 2026-03-01T12:00:00+02:00\nnote = "x"\n'
    )
    (rule,) = DetectorConfig.from_mapping(doc).exceptions
    assert rule.until == 1772359200 * 1_000_000


def test_cli_bad_exception_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[exceptions]]\ndetector = "dormant_key"\nuntil = "soon"\nnote = "x"\n')
    logs = tmp_path / "l.jsonl"
    logs.write_text("")
    assert main(["replay", str(logs), "--config", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exceptions[0].until" in err[0]


def test_cli_writes_suppressed_alerts_with_note(tmp_path: Path) -> None:
    import orjson

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[exceptions]]\ndetector = "unauthorized_seller_access"\n'
        'subject = { seller_id = "S2" }\nnote = "TICKET-9"\n'
    )
    logs = tmp_path / "l.jsonl"
    logs.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in RECORDS))
    alerts, suppressed = tmp_path / "a.jsonl", tmp_path / "s.jsonl"
    args = ["replay", str(logs), "--config", str(cfg), "--quiet", "--alerts", str(alerts)]
    assert main([*args, "--suppressed", str(suppressed)]) == 0
    rows = [orjson.loads(line) for line in suppressed.read_bytes().splitlines()]
    assert [(r["subject"]["seller_id"], r["note"]) for r in rows] == [("S2", "TICKET-9")]
    assert b'"S2"' not in alerts.read_bytes()
