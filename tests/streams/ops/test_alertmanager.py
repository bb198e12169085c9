"""Tests of aupwatch.streams.ops.alertmanager.

A stub HTTP server for the edge cases, a real Alertmanager (integration) for the wire format.
The secured ends (TLS, basic auth, bearer token) are tested in test_alertmanager_security.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aupwatch.streams.ops.alertmanager import ALERTNAME, AlertmanagerSink, to_alertmanager
from aupwatch.streams.ops.metrics import Metrics
from tests.deploy import servers
from tests.streams.ops.amstub import NOW, Stub, counter, make_alert, parse_time, sink_for


def test_mapping_of_an_alert() -> None:
    payload = to_alertmanager(make_alert(count=3))
    assert payload["labels"] == {
        "alertname": ALERTNAME,
        "detector": "cross_seller_disclosure",
        "reason": "other_seller",
        "severity": "critical",
        "alert_id": f"{1:024x}",
    }
    notes = payload["annotations"]
    assert notes["subject"] == (
        '{"app_id":"app-1","owner_seller_id":"S1","viewer_seller_id":"S2","viewer_type":"seller_user"}'
    )
    assert notes["alert_id"] == f"{1:024x}" and notes["count"] == "3"
    assert notes["clause"].startswith("Do not disclose")
    assert notes["summary"].startswith("app-1 showed")
    assert parse_time(payload["startsAt"]) == parse_time("2026-03-01T10:01:00Z")


def test_posts_with_ends_at_after_submission(stub: Stub, metrics: Metrics) -> None:
    sink = sink_for(stub.url, metrics, resolve_after=600)
    sink.submit(make_alert())
    assert sink.close(5)
    (alert,) = stub.alerts()
    assert alert["labels"]["alertname"] == ALERTNAME
    assert parse_time(alert["startsAt"]) == parse_time("2026-03-01T10:01:00Z")
    assert parse_time(alert["endsAt"]) == NOW + 600
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="ok") == 1
    assert counter(metrics, "aupwatch_alertmanager_queue_alerts") == 0


def test_no_ends_at_when_resolve_after_is_none(stub: Stub, metrics: Metrics) -> None:
    sink = sink_for(stub.url, metrics, resolve_after=None)
    sink.submit(make_alert())
    assert sink.close(5)
    assert "endsAt" not in stub.alerts()[0]


def test_retries_with_backoff_until_accepted(stub: Stub, metrics: Metrics) -> None:
    stub.statuses = [503, 500]
    sink = sink_for(stub.url, metrics, max_retries=3)
    sink.submit(make_alert())
    assert sink.close(5)
    assert len(stub.alerts()) == 1
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="error") == 2
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="ok") == 1
    assert counter(metrics, "aupwatch_alertmanager_dropped_total") == 0


def test_rejected_batch_is_not_retried(stub: Stub, metrics: Metrics) -> None:
    stub.statuses = [400]
    sink = sink_for(stub.url, metrics, max_retries=3, resend_interval=0.05)
    sink.submit(make_alert())
    time.sleep(0.3)  # several resend intervals: a rejected alert is not resent
    sink.close(5)
    assert stub.alerts() == []
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="error") == 1
    assert counter(metrics, "aupwatch_alertmanager_dropped_total") == 1


def test_full_queue_drops_oldest_and_updates_coalesce(stub: Stub, metrics: Metrics) -> None:
    stub.gate.clear()  # the first POST hangs: everything else waits in the queue
    sink = sink_for(stub.url, metrics, queue_max=3, batch_max=10)
    sink.submit(make_alert(0))
    servers.wait_for(lambda: sink.pending() == 0, 5, what="first alert in flight")
    for n in range(1, 6):
        sink.submit(make_alert(n))
    sink.submit(make_alert(5, count=9))  # update of a queued alert: replaces it in place
    assert sink.pending() == 3
    assert counter(metrics, "aupwatch_alertmanager_queue_alerts") == 3
    assert counter(metrics, "aupwatch_alertmanager_dropped_total") == 2  # alerts 1 and 2
    stub.gate.set()
    assert sink.close(5)
    ids = [int(a["labels"]["alert_id"], 16) for a in stub.alerts()]
    assert ids == [0, 3, 4, 5]
    assert stub.alerts()[-1]["annotations"]["count"] == "9"


def test_active_alerts_are_resent(stub: Stub, metrics: Metrics) -> None:
    sink = sink_for(stub.url, metrics, resend_interval=0.1)
    sink.submit(make_alert())
    servers.wait_for(lambda: len(stub.alerts()) >= 3, 5, what="resends")
    sink.close(5)
    assert {a["labels"]["alert_id"] for a in stub.alerts()} == {f"{1:024x}"}


def test_submit_never_raises(metrics: Metrics) -> None:
    sink = sink_for("http://127.0.0.1:9", metrics)
    sink.submit({"detector": "x"})  # no alert_id, no ts
    sink.submit(make_alert(ts="yesterday"))
    assert counter(metrics, "aupwatch_alertmanager_dropped_total") == 2
    sink.close(0)
    sink.submit(make_alert())  # after close: dropped, no error
    assert counter(metrics, "aupwatch_alertmanager_dropped_total") == 3


def test_unreachable_alertmanager_never_blocks(metrics: Metrics) -> None:
    port = servers.free_port()  # nothing listens there
    sink = AlertmanagerSink(
        f"http://127.0.0.1:{port}", metrics, timeout=0.5, backoff=0.02, max_retries=50
    )
    started = time.perf_counter()
    for n in range(200):
        sink.submit(make_alert(n))
    assert time.perf_counter() - started < 0.5  # 200 submits, no network wait
    errors = lambda: counter(metrics, "aupwatch_alertmanager_posts_total", outcome="error")  # noqa: E731
    servers.wait_for(lambda: errors() >= 3, 10, what="failed posts")
    started = time.perf_counter()
    assert sink.close(0.5) is False  # could not deliver
    assert time.perf_counter() - started < 3
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="ok") == 0
    assert counter(metrics, "aupwatch_alertmanager_dropped_total") == 200


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    try:
        servers.ensure_monitoring()
    except servers.MonitoringUnavailable as exc:
        pytest.skip(str(exc))
    with servers.start_alertmanager(tmp_path_factory.mktemp("alertmanager")) as am:
        yield am


@pytest.mark.integration
def test_real_alertmanager_receives_alerts_and_updates(
    alertmanager: servers.Server, metrics: Metrics
) -> None:
    sink = AlertmanagerSink(alertmanager.url, metrics, backoff=0.05)
    first = make_alert(101)
    other = make_alert(
        102,
        detector="dormant_key",
        reason="revoked_key_used",
        severity="high",
        subject={"key_id": "k-1", "developer_id": "dev-1"},
        ts="2026-03-02T08:00:00.250000Z",
    )
    sink.submit(first)
    sink.submit(other)
    sink.submit(make_alert(101, count=4, last_seen="2026-03-01T10:20:00Z"))  # upsert
    assert sink.close(10)

    held = {a["labels"]["alert_id"]: a for a in servers.alertmanager_alerts(alertmanager)}
    a, b = held[first["alert_id"]], held[other["alert_id"]]
    assert a["labels"] == {
        "alertname": "AupwatchBreach",
        "detector": "cross_seller_disclosure",
        "reason": "other_seller",
        "severity": "critical",
        "alert_id": first["alert_id"],
    }
    assert a["annotations"]["count"] == "4"
    assert a["annotations"]["last_seen"] == "2026-03-01T10:20:00Z"
    assert json.loads(a["annotations"]["subject"]) == first["subject"]
    assert a["annotations"]["clause"] == first["clause"]
    assert a["annotations"]["summary"] == first["summary"]
    assert a["annotations"]["alert_id"] == first["alert_id"]
    assert a["status"]["state"] == "active"
    assert parse_time(a["startsAt"]) == parse_time(first["ts"])
    assert parse_time(a["endsAt"]) > time.time() + 3000  # resolve_after: 1 h from now
    assert b["labels"]["detector"] == "dormant_key" and b["labels"]["severity"] == "high"
    assert parse_time(b["startsAt"]) == parse_time("2026-03-02T08:00:00.25Z")
    assert json.loads(b["annotations"]["subject"]) == {"developer_id": "dev-1", "key_id": "k-1"}
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="ok") >= 1
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="error") == 0


@pytest.mark.integration
def test_real_alertmanager_down_then_up(tmp_path: Path, metrics: Metrics) -> None:
    try:
        servers.ensure_monitoring()
    except servers.MonitoringUnavailable as exc:
        pytest.skip(str(exc))
    port = servers.free_port()
    sink = AlertmanagerSink(
        f"http://127.0.0.1:{port}", metrics, timeout=0.5, backoff=0.2, max_backoff=0.5
    )
    started = time.perf_counter()
    sink.submit(make_alert(201))
    assert time.perf_counter() - started < 0.05
    errors = lambda: counter(metrics, "aupwatch_alertmanager_posts_total", outcome="error")  # noqa: E731
    servers.wait_for(lambda: errors() >= 1, 10, what="failed post")
    # Alertmanager comes up on that port while the sink is still retrying.
    with servers.start_alertmanager(tmp_path / "am", port=port) as am:
        servers.wait_for(
            lambda: servers.alertmanager_alerts(am, alert_id=f"{201:024x}"), 20, what="delivery"
        )
        assert sink.close(5)
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="ok") == 1
