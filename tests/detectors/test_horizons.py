"""States bounded by their horizons (docs/semantics.md, "State and its horizons")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aupwatch.cli import main
from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.declare import SEP
from aupwatch.detectors.disrespect import Disrespect
from aupwatch.detectors.engine import Output
from aupwatch.detectors.pipeline import Pipeline
from aupwatch.detectors.record_shard import RecordShard
from aupwatch.schemas.times import US_PER_DAY as DAY
from tests.detectors.support import decode_all, replay
from tests.detectors.test_properties import baseline, decoded


def _call(eid: str, ts: str, seller: str = "S1", status: int = 429, **kw: Any) -> dict[str, Any]:
    return {
        "event_id": eid,
        "kind": "api_call",
        "ts": f"2026-03-01T{ts}Z",
        "region": "NA",
        "developer_id": "dev-1",
        "app_id": "app-1",
        "key_id": "k-1",
        "seller_id": seller,
        "operation": "getOrders",
        "status": status,
        "source_ip": "203.0.113.7",
        **kw,
    }


def _run(records: list[dict[str, Any]], config: DetectorConfig) -> Pipeline:
    """The pipeline after stepping every record (no final flush)."""
    pipeline = Pipeline(config)
    for rec in decode_all(records):
        pipeline.feed(rec)
        pipeline.step()
    return pipeline


def _sizes(records: list[dict[str, Any]], config: DetectorConfig) -> dict[str, int]:
    """State keys per detector after stepping every record."""
    return _run(records, config).state_sizes()


def _state(pipeline: Pipeline, key: str) -> Any:
    """The operator state of a key (``None`` without one), wherever its shard is."""
    for shard in pipeline.shards.values():
        if key in shard.store:
            # the detect shard keeps states, the later stages entries
            return shard.store[key] if isinstance(shard, RecordShard) else shard.store[key][1]
    return None


SCOPE = SEP.join(("R", "app-1", "S1", "getOrders"))


def test_retry_scope_kept_until_two_windows_after_its_latest_call() -> None:
    # the watermark (latest ts - 30 s) reaches 10:10:00, 1 s before the drop
    records = [_call("q1", "10:00:00"), _call("q2", "10:00:01"), _call("o1", "10:10:30", "S2")]
    state = _state(_run(records, DetectorConfig()), SCOPE)
    assert state is not None and len(state["q"]) == 2


def test_retry_scope_dropped_two_windows_after_its_latest_call() -> None:
    # the watermark reaches 10:10:02, past the drop at 10:10:01.000001; the scope's ids
    # (remembered 10 min) have expired by then, so the key goes with its state
    records = [_call("q1", "10:00:00"), _call("q2", "10:00:01"), _call("o1", "10:10:32", "S2")]
    pipeline = _run(records, DetectorConfig())
    assert _state(pipeline, SCOPE) is None
    assert pipeline.state_sizes()["throttle_disrespect"] == 0


def test_dropped_retry_scope_leaves_its_records_remembered() -> None:
    # ids are remembered per record by the detect shard, not per key: the key goes at once
    config = DetectorConfig.from_mapping({"time": {"dedup_horizon": "20m"}})
    records = [_call("q1", "10:00:00"), _call("q2", "10:00:01"), _call("o1", "10:10:32", "S2")]
    pipeline = _run(records, config)
    assert _state(pipeline, SCOPE) is None
    assert pipeline.state_sizes()["throttle_disrespect"] == 0
    detect = pipeline.shards["detect"]
    assert isinstance(detect, RecordShard) and {"q1", "q2"} <= set(detect.ids)
    assert SCOPE not in detect.store


def test_busy_retry_scope_is_kept_and_rearmed() -> None:
    config = DetectorConfig.from_mapping({"time": {"dedup_horizon": "5m"}})
    records = [_call(f"q{m}", f"10:{m:02d}:00") for m in range(0, 40, 4)]
    assert _sizes(records, config)["throttle_disrespect"] == 1


def test_retry_scope_stored_before_timers_is_armed_by_its_next_call() -> None:
    op = Disrespect(DetectorConfig())
    old = {"c": [1_000_000], "q": []}
    call = ("c", "dev-1", "app-1", "getOrders", 200, "10.0.0.1", "S1", "NA")
    item = (2_000_000, 0, "e2", [SCOPE], call, 0)
    state = op.apply(SCOPE, old, item, Output())
    assert state is not None
    assert state["_t"] == 2_000_000 + 2 * DetectorConfig().disrespect_window + 1


def test_retentions_default_to_forever_and_parse() -> None:
    assert (DetectorConfig().authorization_retention, DetectorConfig().key_retention) == (0, 0)
    cfg = DetectorConfig.from_mapping(
        {
            "unauthorized_seller_access": {"authorization_retention": "400d"},
            "dormant": {"key_retention": "365d"},
        }
    )
    assert (cfg.authorization_retention, cfg.key_retention) == (400 * DAY, 365 * DAY)


def test_bad_retention_is_a_config_error_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[dormant]\nkey_retention = "30d"\n')
    logs = tmp_path / "l.jsonl"
    logs.write_text("")
    assert main(["replay", str(logs), "--config", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dormant.key_retention" in err[0]


def test_forgotten_entries_leave_no_state() -> None:
    config = DetectorConfig.from_mapping(
        {
            "time": {"dedup_horizon": "5m"},
            "unauthorized_seller_access": {"authorization_retention": "30d"},
            "dormant": {"key_retention": "120d"},
        }
    )
    records: list[dict[str, Any]] = [
        {"event_id": "g1", "kind": "authorization", "ts": "2026-03-01T10:00:00Z",
         "app_id": "app-1", "seller_id": "S1", "action": "revoke"},
        {"event_id": "k1", "kind": "key_event", "ts": "2026-03-01T10:00:00Z", "key_id": "k-1",
         "developer_id": "dev-1", "app_id": "app-1", "action": "revoked"},
    ]  # fmt: skip
    # the watermark is 30 s behind the clock record: at 30 d (120 d) exactly, then 1 s past
    kept = _sizes([*records, _clock("2026-03-31T10:00:30Z")], config)
    gone = _sizes([*records, _clock("2026-03-31T10:00:31Z")], config)
    assert (kept["unauthorized_seller_access"], gone["unauthorized_seller_access"]) == (1, 0)
    kept = _sizes([*records, _clock("2026-06-29T10:00:30Z")], config)
    gone = _sizes([*records, _clock("2026-06-29T10:00:31Z")], config)
    assert (kept["dormant_key"], kept["credential_sharing"]) == (1, 1)
    assert (gone["dormant_key"], gone["credential_sharing"]) == (0, 0)


def test_retention_off_keeps_forever() -> None:
    records: list[dict[str, Any]] = [
        {"event_id": "g1", "kind": "authorization", "ts": "2026-03-01T10:00:00Z",
         "app_id": "app-1", "seller_id": "S1", "action": "revoke"},
        {"event_id": "k1", "kind": "key_event", "ts": "2026-03-01T10:00:00Z", "key_id": "k-1",
         "developer_id": "dev-1", "app_id": "app-1", "action": "revoked"},
    ]  # fmt: skip
    sizes = _sizes([*records, _clock("2029-03-01T10:00:00Z")], DetectorConfig())
    assert sizes["unauthorized_seller_access"] == 1
    assert (sizes["dormant_key"], sizes["credential_sharing"]) == (1, 1)


def _clock(ts: str) -> dict[str, Any]:
    """A record of another app and key that only moves the watermark."""
    return {
        "event_id": f"clock-{ts}",
        "kind": "key_event",
        "ts": ts,
        "key_id": "k-clock",
        "developer_id": "dev-9",
        "action": "created",
    }


def test_long_retentions_change_no_alert_of_the_property_scenario() -> None:
    # the scenario spans less than these retentions: the timed operators must agree
    long = DetectorConfig.from_mapping(
        {
            "throttle_disrespect": {"min_throttled": 3},
            "internal_overreach": {"max_sellers": 3},
            "unauthorized_seller_access": {"authorization_retention": "400d"},
            "dormant": {"key_retention": "400d"},
        }
    )
    final, _ = replay(decoded(), long)
    assert dict(sorted(final.items())) == baseline()
