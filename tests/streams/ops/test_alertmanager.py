"""Tests of aupwatch.streams.ops.alertmanager.

A stub HTTP server for the edge cases, a real Alertmanager (integration) for the wire format.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from aupwatch.errors import ConfigError
from aupwatch.streams.config import MonitorSettings, build_config
from aupwatch.streams.ops.alertmanager import ALERTNAME, AlertmanagerSink, to_alertmanager
from aupwatch.streams.ops.metrics import Metrics
from tests import certs
from tests.deploy import servers

NOW = 1_800_000_000.0  # injected wall clock (2027-01-15)


def make_alert(n: int = 1, count: int = 1, **extra: Any) -> dict[str, Any]:
    alert = {
        "alert_id": f"{n:024x}",
        "detector": "cross_seller_disclosure",
        "reason": "other_seller",
        "severity": "critical",
        "clause": "Do not disclose information ... to other Application users",
        "ts": "2026-03-01T10:01:00Z",
        "first_seen": "2026-03-01T10:01:00Z",
        "last_seen": "2026-03-01T10:01:00Z",
        "count": count,
        "subject": {
            "app_id": "app-1",
            "owner_seller_id": "S1",
            "viewer_type": "seller_user",
            "viewer_seller_id": "S2",
        },
        "summary": "app-1 showed 1 resource of seller S1 to a user of seller S2",
        "evidence": {"resources": 1, "event_ids": ["e3"]},
    }
    alert.update(extra)
    return alert


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Stub:
    """A fake Alertmanager: records POSTed batches, answers with scripted status codes."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.auth: list[str | None] = []  # Authorization header of each request
        self.statuses: list[int] = []  # consumed one per request; 200 when empty
        self.gate = threading.Event()
        self.gate.set()
        self.received = threading.Condition()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.auth.append(self.headers.get("Authorization"))
                stub.gate.wait(10)
                status = stub.statuses.pop(0) if stub.statuses else 200
                with stub.received:
                    if status == 200:
                        stub.batches.append(body)
                    stub.received.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def alerts(self) -> list[dict[str, Any]]:
        return [alert for batch in self.batches for alert in batch]

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def sink_for(url: str, metrics: Metrics, **kwargs: Any) -> AlertmanagerSink:
    options: dict[str, Any] = {"backoff": 0.01, "clock": lambda: NOW, "resend_interval": None}
    options.update(kwargs)
    return AlertmanagerSink(url, metrics, **options)


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


def test_basic_auth_and_bearer_token_from_settings(stub: Stub, metrics: Metrics) -> None:
    basic = MonitorSettings(alertmanager_username="am", alertmanager_password="pw")
    token = MonitorSettings(alertmanager_bearer_token="t0k3n")
    for monitor in (basic, token):
        sink = AlertmanagerSink.from_settings(stub.url, metrics, monitor)
        sink.submit(make_alert())
        assert sink.close(5)
    assert stub.auth == ["Basic YW06cHc=", "Bearer t0k3n"]  # base64 of am:pw


def test_unauthorized_is_not_retried_and_names_the_settings(
    stub: Stub, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    stub.statuses = [401]
    sink = sink_for(stub.url, metrics, max_retries=3, username="am", password="wrong")
    sink.submit(make_alert())
    sink.close(5)
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="error") == 1
    assert counter(metrics, "aupwatch_alertmanager_dropped_total") == 1
    assert "monitor.alertmanager_username" in caplog.text


@pytest.mark.parametrize(
    ("monitor", "key"),
    [
        ({"alertmanager_password": "pw"}, "monitor.alertmanager_username"),
        (
            {"alertmanager_username": "am", "alertmanager_bearer_token": "t"},
            "monitor.alertmanager_bearer_token",
        ),
        ({"metrics_keyfile": "k.pem"}, "monitor.metrics_keyfile"),
    ],
)
def test_inconsistent_monitor_security_is_a_config_error(monitor: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config({"monitor": monitor})
    assert err.value.context["key"] == key


def test_unreadable_ca_file_is_a_config_error(metrics: Metrics, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        AlertmanagerSink("https://127.0.0.1:9", metrics, cafile=str(tmp_path / "missing.pem"))
    assert err.value.context["key"] == "monitor.alertmanager_cafile"


@pytest.fixture(scope="module")
def secured_alertmanager(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[servers.Server, certs.SecuredWeb]]:
    try:
        servers.ensure_monitoring()
    except servers.MonitoringUnavailable as exc:
        pytest.skip(str(exc))
    workdir = tmp_path_factory.mktemp("secured-alertmanager")
    web = certs.SecuredWeb(certs.make_certificates(workdir / "tls", "alertmanager"))
    with servers.start_alertmanager(workdir, secured=web) as am:
        yield am, web


@pytest.mark.integration
def test_secured_alertmanager_takes_alerts_over_tls_with_basic_auth(
    secured_alertmanager: tuple[servers.Server, certs.SecuredWeb], metrics: Metrics
) -> None:
    am, web = secured_alertmanager
    assert am.url.startswith("https://")
    monitor = MonitorSettings(
        alertmanager_cafile=str(web.tls.ca),
        alertmanager_username=web.username,
        alertmanager_password=web.password,
    )
    sink = AlertmanagerSink.from_settings(am.url, metrics, monitor)
    sink.submit(make_alert(301))
    assert sink.close(10)
    assert servers.alertmanager_alerts(am, alert_id=f"{301:024x}")
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="ok") == 1
    # without credentials the server itself turns a reader away
    status, _ = servers.http_get(f"{am.url}/api/v2/alerts", cafile=web.tls.ca)
    assert status == 401


@pytest.mark.integration
@pytest.mark.parametrize("mistake", ["wrong password", "unknown CA", "plain http"])
def test_secured_alertmanager_refuses_a_misconfigured_sink(
    secured_alertmanager: tuple[servers.Server, certs.SecuredWeb],
    metrics: Metrics,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mistake: str,
) -> None:
    am, web = secured_alertmanager
    url, cafile, password = am.url, str(web.tls.ca), web.password
    if mistake == "wrong password":
        password = "not-" + password
    elif mistake == "unknown CA":
        cafile = str(certs.make_certificates(tmp_path, "other").ca)
    else:
        url = url.replace("https://", "http://")
    sink = AlertmanagerSink(
        url,
        metrics,
        cafile=cafile,
        username=web.username,
        password=password,
        max_retries=0,
        resend_interval=None,
    )
    sink.submit(make_alert(302))
    sink.close(5)
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="ok") == 0
    assert counter(metrics, "aupwatch_alertmanager_posts_total", outcome="error") == 1
    assert counter(metrics, "aupwatch_alertmanager_dropped_total") == 1
    expected = {
        "wrong password": "HTTP 401",
        "unknown CA": "CERTIFICATE_VERIFY_FAILED",
        "plain http": "HTTP 400",
    }[mistake]
    assert expected in caplog.text
