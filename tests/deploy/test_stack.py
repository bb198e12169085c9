"""Real Prometheus scrapes the exporter, evaluates the project's rules and alerts Alertmanager."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from aupwatch.streams.ops.metrics import Metrics
from tests.deploy import servers
from tests.deploy.promql import dashboard_queries

pytestmark = pytest.mark.integration


def test_install_script_is_idempotent(monitoring: None) -> None:
    for args in ([], ["--check"]):
        proc = subprocess.run(
            ["bash", str(servers.INSTALL_SCRIPT), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "apt-get" not in proc.stdout


def test_breach_rule_fires_and_reaches_alertmanager(monitoring: None, tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.worker_up(True)
    exporter = metrics.serve(0, "127.0.0.1")
    target = f"127.0.0.1:{exporter.server_port}"
    try:
        with (
            servers.start_alertmanager(tmp_path / "am") as am,
            servers.start_prometheus(tmp_path / "prom", targets=[target], alertmanager=am) as prom,
        ):
            # Wait until the zero-valued series has been scraped, then raise one alert.
            servers.wait_for(
                lambda: servers.query(prom, 'aupwatch_alerts_total{detector="dormant_key"}'),
                30,
                what="first scrape",
            )
            assert servers.query(prom, 'up{job="aupwatch"}')[0]["value"][1] == "1"
            metrics.alert("unauthorized_seller_access", "no_grant", "high", new=True)

            firing = servers.wait_for(
                lambda: servers.firing_alerts(prom, "AupwatchUnauthorizedSellerAccess"),
                30,
                what="rule firing",
            )
            labels = firing[0]["labels"]
            assert labels["reason"] == "no_grant" and labels["severity"] == "high"
            assert labels["category"] == "breach"
            assert not servers.firing_alerts(prom, "AupwatchDormantKey")
            assert not servers.firing_alerts(prom, "AupwatchTargetDown")

            received = servers.wait_for(
                lambda: servers.alertmanager_alerts(
                    am, alertname="AupwatchUnauthorizedSellerAccess"
                ),
                30,
                what="alert in Alertmanager",
            )
            assert received[0]["labels"]["detector"] == "unauthorized_seller_access"
            assert "aupwatch-alerts" in received[0]["annotations"]["alerts_topic"]
    finally:
        exporter.shutdown()
        exporter.server_close()


def test_every_dashboard_query_runs_on_prometheus(monitoring: None, tmp_path: Path) -> None:
    # Grafana's variables as it would fill them; label_values() is Grafana's, not PromQL
    fill = {
        "$job": ".*",
        "$instance": ".*",
        "$detector": ".*",
        "$__rate_interval": "1m",
        "$__interval": "1m",
        "$__range": "6h",
    }
    queries = [
        q for q in dashboard_queries(servers.DASHBOARD_FILE) if not q.startswith("label_values(")
    ]
    assert len(queries) > 30
    with servers.start_prometheus(tmp_path / "prom") as prom:
        for query in queries:
            for name, value in fill.items():
                query = query.replace(name, value)
            answer = prom.get_json("/api/v1/query", query=query)  # a bad query raises (400)
            assert answer["status"] == "success", query
