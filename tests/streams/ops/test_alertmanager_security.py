"""Tests of the Alertmanager sink's security: basic auth, bearer token, TLS, config errors.

A stub HTTP server for the headers, a real Alertmanager started with a web config that
requires TLS and basic auth (integration) for the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aupwatch.errors import ConfigError
from aupwatch.streams.config import MonitorSettings, build_config
from aupwatch.streams.ops.alertmanager import AlertmanagerSink
from aupwatch.streams.ops.metrics import Metrics
from tests import certs
from tests.deploy import servers
from tests.streams.ops.amstub import Stub, counter, make_alert, sink_for


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
