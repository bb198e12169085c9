"""States bounded by their horizons (docs/semantics.md, "State and its horizons")."""

from __future__ import annotations

from typing import Any

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.declare import SEP
from aupwatch.detectors.disrespect import Disrespect
from aupwatch.detectors.engine import Output
from aupwatch.detectors.pipeline import Pipeline
from tests.detectors.support import decode_all


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
            return shard.store[key][1]
    return None


SCOPE = SEP.join(("R", "app-1", "S1", "getOrders"))


def test_retry_scope_kept_until_two_windows_after_its_latest_call() -> None:
    # the watermark (latest ts - 30 s) reaches 10:10:00, 1 s before the drop
    records = [_call("q1", "10:00:00"), _call("q2", "10:00:01"), _call("o1", "10:10:30", "S2")]
    state = _state(_run(records, DetectorConfig()), SCOPE)
    assert state is not None and len(state["q"]) == 2


def test_retry_scope_dropped_two_windows_after_its_latest_call() -> None:
    records = [_call("q1", "10:00:00"), _call("q2", "10:00:01"), _call("o1", "10:10:31", "S2")]
    pipeline = _run(records, DetectorConfig())
    assert _state(pipeline, SCOPE) is None
    assert pipeline.state_sizes()["throttle_disrespect"] == 1  # until its event ids expire


def test_dropped_retry_scope_goes_with_its_expired_event_ids() -> None:
    # dedup_horizon 5 min: the scope's event ids have expired too, so the key goes at once
    config = DetectorConfig.from_mapping({"time": {"dedup_horizon": "5m"}})
    records = [_call("q1", "10:00:00"), _call("q2", "10:00:01"), _call("o1", "10:10:32", "S2")]
    assert _sizes(records, config)["throttle_disrespect"] == 0


def test_busy_retry_scope_is_kept_and_rearmed() -> None:
    config = DetectorConfig.from_mapping({"time": {"dedup_horizon": "5m"}})
    records = [_call(f"q{m}", f"10:{m:02d}:00") for m in range(0, 40, 4)]
    assert _sizes(records, config)["throttle_disrespect"] == 1


def test_retry_scope_stored_before_timers_is_armed_by_its_next_call() -> None:
    op = Disrespect(DetectorConfig())
    old = {"c": [1_000_000], "q": []}
    item = (2_000_000, 0, "e2", SCOPE, ("dev-1", 200), 0)
    state = op.apply(SCOPE, old, item, Output())
    assert state is not None
    assert state["_t"] == 2_000_000 + 2 * DetectorConfig().disrespect_window
