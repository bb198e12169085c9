"""The metrics endpoint over HTTPS: a certificate from [monitor], scraped for real."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client import CollectorRegistry

from aupwatch.errors import ConfigError
from aupwatch.streams.ops.metrics import Metrics
from tests import certs
from tests.deploy import servers


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> certs.Certificates:
    return certs.make_certificates(tmp_path_factory.mktemp("tls"), "metrics")


@pytest.fixture
def https_server(tls: certs.Certificates) -> Iterator[WSGIServer]:
    metrics = Metrics(CollectorRegistry())
    metrics.worker_up(True)
    server = metrics.serve(0, "127.0.0.1", str(tls.cert), str(tls.key))
    yield server
    server.shutdown()
    server.server_close()


def test_serves_https_to_a_client_that_trusts_the_ca(
    https_server: WSGIServer, tls: certs.Certificates, tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{https_server.server_port}/metrics"
    status, body = servers.http_get(url, cafile=tls.ca)
    assert status == 200 and b"aupwatch_worker_up 1.0" in body
    other = certs.make_certificates(tmp_path, "other")
    with pytest.raises(urllib.error.URLError) as err:
        servers.http_get(url, cafile=other.ca)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        servers.http_get(url.replace("https://", "http://"), timeout=2)


def test_a_silent_client_does_not_stall_the_scrapes(
    https_server: WSGIServer, tls: certs.Certificates
) -> None:
    port = https_server.server_port
    with socket.create_connection(("127.0.0.1", port)):  # connects, never says hello
        time.sleep(0.2)
        status, _ = servers.http_get(f"https://127.0.0.1:{port}/metrics", timeout=3, cafile=tls.ca)
        assert status == 200


def test_certificate_and_key_in_one_file(tls: certs.Certificates, tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_text(tls.cert.read_text() + tls.key.read_text())
    server = Metrics(CollectorRegistry()).serve(0, "127.0.0.1", str(both))
    try:
        url = f"https://127.0.0.1:{server.server_port}/metrics"
        assert servers.http_get(url, cafile=tls.ca)[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_bad_certificate_is_a_config_error(tls: certs.Certificates, tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    with pytest.raises(ConfigError) as err:
        metrics.serve(0, "127.0.0.1", str(tmp_path / "missing.pem"), str(tls.key))
    assert err.value.context["key"] == "monitor.metrics_certfile"
    with pytest.raises(ConfigError, match="cannot load certificate"):
        metrics.serve(0, "127.0.0.1", str(tls.cert), str(tls.ca))  # a key that is not one


@pytest.mark.integration
def test_prometheus_scrapes_the_https_endpoint(
    https_server: WSGIServer, tls: certs.Certificates, tmp_path: Path
) -> None:
    try:
        servers.ensure_monitoring()
    except servers.MonitoringUnavailable as exc:
        pytest.skip(str(exc))
    target = f"127.0.0.1:{https_server.server_port}"
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "aupwatch",
                "scheme": "https",
                "tls_config": {"ca_file": str(tls.ca)},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    with servers.start_prometheus(tmp_path / "prom", config_text=json.dumps(config)) as prom:
        up = servers.wait_for(
            lambda: [
                r
                for r in servers.query(prom, 'aupwatch_worker_up{job="aupwatch"}')
                if r["value"][1] == "1"
            ],
            30,
            what="a scrape over HTTPS",
        )
        assert up[0]["metric"]["instance"] == target
