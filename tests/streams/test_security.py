"""Security settings of both Kafka clients (streams/security.py), and the HTTP side."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from aupwatch.errors import ConfigError
from aupwatch.streams.config import KafkaSettings
from aupwatch.streams.security import (
    faust_credentials,
    http_auth_header,
    https_client_context,
    https_server_context,
    kafka_python_settings,
)
from tests import certs


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> certs.Certificates:
    return certs.make_certificates(tmp_path_factory.mktemp("tls"), "kafka")


def sasl_ssl(tls: certs.Certificates, **changes: str) -> KafkaSettings:
    settings = {
        "bootstrap_servers": "b1:9093, b2:9093",
        "security_protocol": "sasl_ssl",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "aupwatch",
        "sasl_password": "pw",
        "ssl_cafile": str(tls.ca),
    }
    settings.update(changes)
    return KafkaSettings(**settings)


def test_plaintext_needs_nothing() -> None:
    k = KafkaSettings(bootstrap_servers="a:1,b:2")
    assert kafka_python_settings(k) == {"bootstrap_servers": ["a:1", "b:2"]}
    assert faust_credentials(k) is None


def test_both_clients_get_the_same_tls_and_sasl(tls: certs.Certificates) -> None:
    k = sasl_ssl(tls)
    kp = kafka_python_settings(k)
    assert kp["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert kp["security_protocol"] == "SASL_SSL"
    assert (kp["sasl_mechanism"], kp["sasl_plain_username"]) == ("SCRAM-SHA-512", "aupwatch")
    creds = faust_credentials(k)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    for context in (kp["ssl_context"], creds.ssl_context):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert len(context.get_ca_certs()) == 1  # only the configured CA


def test_ssl_with_a_client_certificate(tls: certs.Certificates) -> None:
    k = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=str(tls.ca),
        ssl_certfile=str(tls.cert),
        ssl_keyfile=str(tls.key),
    )
    assert "sasl_mechanism" not in kafka_python_settings(k)
    assert isinstance(faust_credentials(k), faust.SSLCredentials)


def test_sasl_plaintext_has_no_tls() -> None:
    k = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    assert "ssl_context" not in kafka_python_settings(k)
    assert kafka_python_settings(k)["sasl_mechanism"] == "PLAIN"  # the default mechanism
    assert faust_credentials(k).protocol.value == "SASL_PLAINTEXT"


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"security_protocol": "TLS"}, "kafka.security_protocol"),
        ({"sasl_mechanism": "GSSAPI"}, "kafka.sasl_mechanism"),
        ({"sasl_username": ""}, "kafka.sasl_username"),
        ({"ssl_cafile": "/nonexistent/ca.pem"}, "kafka.ssl_cafile"),
        ({"ssl_keyfile": "KEY"}, "kafka.ssl_keyfile"),
        ({"bootstrap_servers": " , "}, "kafka.bootstrap_servers"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(
    tls: certs.Certificates, changes: dict[str, str], key: str
) -> None:
    if changes.get("ssl_keyfile") == "KEY":
        changes = {"ssl_keyfile": str(tls.key)}
    with pytest.raises(ConfigError) as err:
        kafka_python_settings(sasl_ssl(tls, **changes))
    assert err.value.context["key"] == key
    if key != "kafka.bootstrap_servers":  # Faust takes the servers from faust_settings
        with pytest.raises(ConfigError):
            faust_credentials(sasl_ssl(tls, **changes))


def test_a_ca_file_that_is_not_a_certificate(tmp_path: Path, tls: certs.Certificates) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="no usable CA certificate"):
        kafka_python_settings(sasl_ssl(tls, ssl_cafile=str(junk)))


def test_http_side(tls: certs.Certificates, tmp_path: Path) -> None:
    assert http_auth_header(None, None, None) == {}
    assert http_auth_header("u", "p", None) == {"Authorization": "Basic dTpw"}
    assert http_auth_header(None, None, "t") == {"Authorization": "Bearer t"}
    with pytest.raises(ConfigError):
        http_auth_header("u", "p", "t")
    assert https_client_context(str(tls.ca), "k").check_hostname
    with pytest.raises(ConfigError) as err:
        https_client_context(str(tmp_path / "none.pem"), "monitor.alertmanager_cafile")
    assert err.value.context["key"] == "monitor.alertmanager_cafile"
    assert https_server_context(str(tls.cert), str(tls.key), "k") is not None
    with pytest.raises(ConfigError, match="cannot load certificate"):
        https_server_context(str(tls.cert), str(tls.ca), "monitor.metrics_certfile")
