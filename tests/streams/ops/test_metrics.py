"""Unit tests of aupwatch.streams.ops.metrics, each on a fresh registry."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aupwatch.streams.ops.metrics import (
    DEAD_LETTER_REASONS,
    DETECTOR_REASONS,
    KINDS,
    LATENCY_BUCKETS,
    METRIC_NAMES,
    OUTCOMES,
    Metrics,
)
from tests.deploy import servers


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(1_772_000_000.0)


@pytest.fixture
def metrics(clock: Clock) -> Metrics:
    return Metrics(CollectorRegistry(), clock=clock, version="1.2.3")


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_records_by_kind_and_outcome(metrics: Metrics) -> None:
    metrics.record("api_call", "accepted")
    metrics.record("api_call", "accepted", 4)
    metrics.record("data_access", "late")
    metrics.record("no_such_kind", "dead_letter")  # untrusted kinds fold into "unknown"
    assert value(metrics, "aupwatch_records_total", kind="api_call", outcome="accepted") == 5
    assert value(metrics, "aupwatch_records_total", kind="data_access", outcome="late") == 1
    assert value(metrics, "aupwatch_records_total", kind="unknown", outcome="dead_letter") == 1
    assert (
        value(metrics, "aupwatch_records_total", kind="no_such_kind", outcome="dead_letter") is None
    )
    with pytest.raises(ValueError):
        metrics.record("api_call", "maybe")
    with pytest.raises(ValueError):
        metrics.record("api_call", "accepted", -1)


def test_known_series_start_at_zero(metrics: Metrics) -> None:
    for kind in KINDS:
        assert value(metrics, "aupwatch_late_records_total", kind=kind) == 0
        for outcome in OUTCOMES:
            assert value(metrics, "aupwatch_records_total", kind=kind, outcome=outcome) == 0
    for reason in DEAD_LETTER_REASONS:
        assert value(metrics, "aupwatch_dead_letters_total", reason=reason) == 0
    for detector, reasons in DETECTOR_REASONS.items():
        assert value(metrics, "aupwatch_alert_updates_total", detector=detector) == 0
        for reason, severity in reasons.items():
            labels = {"detector": detector, "reason": reason, "severity": severity}
            assert value(metrics, "aupwatch_alerts_total", **labels) == 0
            pair = {"detector": detector, "reason": reason}
            assert value(metrics, "aupwatch_alerts_suppressed_total", **pair) == 0
    for outcome in ("ok", "error"):
        assert value(metrics, "aupwatch_alertmanager_posts_total", outcome=outcome) == 0
    assert value(metrics, "aupwatch_build_info", version="1.2.3") == 1
    assert value(metrics, "aupwatch_worker_up") == 0


def test_suppressed_by_detector_and_reason(metrics: Metrics) -> None:
    metrics.suppressed("throttle_circumvention", "shared_quota")
    metrics.suppressed("throttle_circumvention", "shared_quota", 2)
    labels = {"detector": "throttle_circumvention", "reason": "shared_quota"}
    assert value(metrics, "aupwatch_alerts_suppressed_total", **labels) == 3
    with pytest.raises(ValueError):
        metrics.suppressed("dormant_key", "shared_quota")  # another detector's reason
    with pytest.raises(ValueError):
        metrics.suppressed("app-1", "no_grant")  # an id, not a detector


def test_dead_letters_and_late(metrics: Metrics) -> None:
    metrics.dead_letter("invalid_json")
    metrics.dead_letter("too_large", 2)
    metrics.late("authorization", 3)
    metrics.late("bogus")
    assert value(metrics, "aupwatch_dead_letters_total", reason="invalid_json") == 1
    assert value(metrics, "aupwatch_dead_letters_total", reason="too_large") == 2
    assert value(metrics, "aupwatch_late_records_total", kind="authorization") == 3
    assert value(metrics, "aupwatch_late_records_total", kind="unknown") == 1
    with pytest.raises(ValueError):
        metrics.dead_letter("seller S1 sent garbage")


def test_alerts_new_and_updates(metrics: Metrics) -> None:
    metrics.alert("cross_seller_disclosure", "other_seller", "critical", new=True)
    metrics.alert("cross_seller_disclosure", "other_seller", "critical", new=False)
    metrics.alert("cross_seller_disclosure", "other_seller", "critical", new=False)
    labels = {"detector": "cross_seller_disclosure", "reason": "other_seller"}
    assert value(metrics, "aupwatch_alerts_total", **labels, severity="critical") == 1
    assert value(metrics, "aupwatch_alert_updates_total", detector="cross_seller_disclosure") == 2
    with pytest.raises(ValueError):
        metrics.alert("dormant_key", "dormant", "urgent", new=True)
    with pytest.raises(ValueError):
        metrics.alert("app-1", "no_grant", "high", new=True)  # an id, not a detector
    with pytest.raises(ValueError):
        metrics.alert("dormant_key", "no_grant", "high", new=True)  # another detector's


def test_unowned_state_keys_latency(metrics: Metrics) -> None:
    metrics.unowned()
    metrics.unowned(2)
    assert value(metrics, "aupwatch_unowned_resource_accesses_total") == 3
    metrics.set_state_keys("dormant_key", 120)
    metrics.set_state_keys("dormant_key", 80)
    assert value(metrics, "aupwatch_detector_state_keys", detector="dormant_key") == 80
    for seconds in (0.05, 29.0, 30.5, 31.0, 400.0, -2.0):
        metrics.observe_latency(seconds)
    h = "aupwatch_processing_latency_seconds"
    assert value(metrics, f"{h}_count") == 6
    assert value(metrics, f"{h}_sum") == pytest.approx(0.05 + 29 + 30.5 + 31 + 400)
    assert value(metrics, f"{h}_bucket", le="0.1") == 2  # 0.05 and the clamped -2
    assert value(metrics, f"{h}_bucket", le="30.0") == 3
    assert value(metrics, f"{h}_bucket", le="31.0") == 5
    assert value(metrics, f"{h}_bucket", le="300.0") == 5
    assert value(metrics, f"{h}_bucket", le="+Inf") == 6


def test_checkpoint_seconds(metrics: Metrics) -> None:
    for seconds in (0.004, 0.3, -1.0):
        metrics.observe_checkpoint(seconds)
    h = "aupwatch_checkpoint_seconds"
    assert value(metrics, f"{h}_count") == 3
    assert value(metrics, f"{h}_sum") == pytest.approx(0.304)
    assert value(metrics, f"{h}_bucket", le="0.005") == 2  # 0.004 and the clamped -1


def test_latency_buckets_cover_the_range() -> None:
    assert LATENCY_BUCKETS[0] <= 0.1 and LATENCY_BUCKETS[-1] >= 300
    assert list(LATENCY_BUCKETS) == sorted(set(LATENCY_BUCKETS))
    assert sum(1 for b in LATENCY_BUCKETS if 25 <= b <= 40) >= 5  # dense around 30 s


def test_watermark_lag_follows_the_clock(metrics: Metrics, clock: Clock) -> None:
    metrics.set_watermark("detect", 0, clock.now - 30)
    metrics.set_watermark("detect", 3, clock.now - 90.5)
    labels = {"stage": "detect", "partition": "0"}
    assert value(metrics, "aupwatch_watermark_timestamp_seconds", **labels) == clock.now - 30
    assert value(metrics, "aupwatch_event_time_lag_seconds", **labels) == 30
    assert value(metrics, "aupwatch_event_time_lag_seconds", stage="detect", partition="3") == 90.5
    # The lag grows with the clock alone: computed at scrape time.
    clock.now += 100
    assert value(metrics, "aupwatch_event_time_lag_seconds", **labels) == 130
    metrics.set_watermark("detect", 0, clock.now - 1)
    assert value(metrics, "aupwatch_event_time_lag_seconds", **labels) == 1
    assert metrics.watermark("detect", 0) == clock.now - 1
    metrics.remove_watermark("detect", 0)
    assert value(metrics, "aupwatch_event_time_lag_seconds", **labels) is None
    assert metrics.watermark("detect", 0) is None
    with pytest.raises(ValueError):
        metrics.set_watermark("Seller S1", 0, 1.0)


def test_alertmanager_and_worker_health(metrics: Metrics) -> None:
    metrics.alertmanager_post(True)
    metrics.alertmanager_post(False)
    metrics.alertmanager_post(False)
    metrics.set_alertmanager_queue(7)
    metrics.alertmanager_dropped(3)
    assert value(metrics, "aupwatch_alertmanager_posts_total", outcome="ok") == 1
    assert value(metrics, "aupwatch_alertmanager_posts_total", outcome="error") == 2
    assert value(metrics, "aupwatch_alertmanager_queue_alerts") == 7
    assert value(metrics, "aupwatch_alertmanager_dropped_total") == 3
    metrics.worker_up(True)
    metrics.worker_assigned(3)
    metrics.worker_rebalance()
    metrics.worker_rebalance()
    metrics.consumer_lag("aupwatch-logs", 2, 1500)
    metrics.consumer_lag("aupwatch-logs", 3, 0)
    metrics.remove_consumer_lag("aupwatch-logs", 3)
    metrics.remove_consumer_lag("aupwatch-logs", 9)  # unknown: no error
    metrics.batch("detect")
    metrics.batch("alerts", 4)
    assert value(metrics, "aupwatch_worker_up") == 1
    assert value(metrics, "aupwatch_worker_assigned_partitions") == 3
    assert value(metrics, "aupwatch_worker_rebalances_total") == 2
    lag = "aupwatch_consumer_lag_records"
    assert value(metrics, lag, topic="aupwatch-logs", partition="2") == 1500
    assert value(metrics, lag, topic="aupwatch-logs", partition="3") is None
    assert value(metrics, "aupwatch_batches_total", stage="alerts") == 4
    metrics.worker_up(False)
    assert value(metrics, "aupwatch_worker_up") == 0
    with pytest.raises(ValueError):
        metrics.consumer_lag("bad topic!", 0, 1)


def test_no_identifier_ever_becomes_a_label(metrics: Metrics) -> None:
    ids = ["S1", "seller-42", "app-1", "dev-1", "k-1", "203.0.113.7"]
    for ident in ("e1", "k1", "s1"):  # id-like yet lower_snake_case: still rejected
        with pytest.raises(ValueError):
            metrics.alert(ident, "no_grant", "high", new=True)
        with pytest.raises(ValueError):
            metrics.alert("unauthorized_seller_access", ident, "high", new=True)
        with pytest.raises(ValueError):
            metrics.dead_letter(ident)
    for ident in ids:
        metrics.record(ident, "accepted")
        metrics.late(ident)
        for call in (
            lambda i=ident: metrics.alert(i, "no_grant", "high", new=True),
            lambda i=ident: metrics.alert("dormant_key", i, "low", new=True),
            lambda i=ident: metrics.set_state_keys(i, 1),
            lambda i=ident: metrics.set_watermark(i, 0, 1.0),
            lambda i=ident: metrics.batch(i),
            lambda i=ident: metrics.dead_letter(i),
        ):
            with pytest.raises(ValueError):
                call()
    text = generate_latest(metrics.registry).decode()
    allowed = {"kind", "outcome", "reason", "detector", "severity", "stage", "partition"}
    allowed |= {"topic", "version", "le"}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= allowed, sample
            for label, val in sample.labels.items():
                assert val not in ids, sample
                if label in ("detector", "reason", "stage", "severity", "kind", "outcome"):
                    assert re.fullmatch(r"[a-z][a-z0-9_]*", val), sample


def test_metric_names_match_the_exposition(metrics: Metrics) -> None:
    text = generate_latest(metrics.registry).decode()
    typed = set(re.findall(r"^# TYPE (aupwatch_\w+) ", text, re.M))
    assert {n for n in typed if not n.endswith("_created")} == set(METRIC_NAMES)
    assert len(METRIC_NAMES) == 25


def test_registries_are_independent_and_global_is_untouched() -> None:
    a, b = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    a.record("api_call", "accepted")
    assert value(a, "aupwatch_records_total", kind="api_call", outcome="accepted") == 1
    assert value(b, "aupwatch_records_total", kind="api_call", outcome="accepted") == 0
    assert REGISTRY.get_sample_value("aupwatch_worker_up") is None


def test_serve_exposes_the_registry_over_http(metrics: Metrics) -> None:
    metrics.record("key_event", "late", 2)
    status, text = servers.scrape_exporter(metrics)
    assert status == 200
    assert 'aupwatch_records_total{kind="key_event",outcome="late"} 2.0' in text
    assert 'aupwatch_build_info{version="1.2.3"} 1.0' in text


def test_duplicates_are_counted_per_stage(metrics: Metrics) -> None:
    metrics.duplicates("detect", 3)
    metrics.duplicates("alerts")
    assert value(metrics, "aupwatch_duplicate_items_total", stage="detect") == 3
    assert value(metrics, "aupwatch_duplicate_items_total", stage="alerts") == 1
    with pytest.raises(ValueError):
        metrics.duplicates("Detect Stage")


def test_link_gate_calls_by_outcome(metrics: Metrics) -> None:
    name = "aupwatch_link_gate_calls_total"
    assert value(metrics, name, outcome="dropped") == 0  # every outcome starts at zero
    metrics.link_gate({"dropped": 5, "linked": 2, "unsure": 0})
    metrics.link_gate({"checkpoint": 3})
    assert value(metrics, name, outcome="dropped") == 5
    assert value(metrics, name, outcome="linked") == 2
    assert value(metrics, name, outcome="unsure") == 0
    assert value(metrics, name, outcome="checkpoint") == 3
    with pytest.raises(ValueError):
        metrics.link_gate({"kept": 1})
