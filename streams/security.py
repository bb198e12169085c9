"""Security settings, built in one place: Kafka clients, the Alertmanager sink, metrics.

The ``[kafka]`` table says how to reach and authenticate to the cluster. This module checks
those settings and turns them into the keyword arguments of kafka-python (topic admin,
replay producer, alerts tail) and the Faust credentials of the worker's aiokafka clients.
Both clients get the same :class:`ssl.SSLContext`, so a CA file or client certificate that
one accepts the other accepts too. The ``[monitor]`` table's TLS and credentials become the
Alertmanager sink's HTTPS context and Authorization header and the metrics server's context.
"""

from __future__ import annotations

import base64
import os
import ssl
from typing import Any

from aupwatch.errors import ConfigError
from aupwatch.streams.config import KafkaSettings

__all__ = [
    "MECHANISMS",
    "PROTOCOLS",
    "bootstrap_list",
    "faust_credentials",
    "http_auth_header",
    "https_client_context",
    "https_server_context",
    "kafka_python_settings",
    "protocol",
    "sasl_mechanism",
    "ssl_context",
    "uses_sasl",
    "uses_tls",
]

PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
"""Values of ``kafka.security_protocol`` (case does not matter)."""

MECHANISMS: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""Values of ``kafka.sasl_mechanism`` both clients support with a username and password."""


def bootstrap_list(k: KafkaSettings) -> list[str]:
    """The ``host:port`` entries of ``kafka.bootstrap_servers``.

    Raises:
        ConfigError: The list is empty.
    """
    servers = [s.strip() for s in k.bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise ConfigError("kafka.bootstrap_servers is empty", key="kafka.bootstrap_servers")
    return servers


def protocol(k: KafkaSettings) -> str:
    """``kafka.security_protocol`` in upper case.

    Raises:
        ConfigError: It is not one of :data:`PROTOCOLS`.
    """
    proto = k.security_protocol.strip().upper()
    if proto not in PROTOCOLS:
        raise ConfigError(
            f"kafka.security_protocol must be one of {', '.join(PROTOCOLS)}, "
            f"got {k.security_protocol!r}",
            key="kafka.security_protocol",
        )
    return proto


def uses_tls(k: KafkaSettings) -> bool:
    """True when the connection is encrypted (SSL or SASL_SSL)."""
    return protocol(k) in ("SSL", "SASL_SSL")


def uses_sasl(k: KafkaSettings) -> bool:
    """True when the client authenticates with SASL (SASL_PLAINTEXT or SASL_SSL)."""
    return protocol(k).startswith("SASL")


def sasl_mechanism(k: KafkaSettings) -> str:
    """The SASL mechanism (PLAIN when unset), checked with the username it needs.

    Raises:
        ConfigError: An unsupported mechanism, or no username.
    """
    mechanism = (k.sasl_mechanism.strip() or "PLAIN").upper()
    if mechanism not in MECHANISMS:
        raise ConfigError(
            f"kafka.sasl_mechanism must be one of {', '.join(MECHANISMS)}, "
            f"got {k.sasl_mechanism!r}",
            key="kafka.sasl_mechanism",
        )
    if not k.sasl_username:
        raise ConfigError(
            f"kafka.sasl_username is required with security_protocol={protocol(k)}",
            key="kafka.sasl_username",
        )
    return mechanism


def _readable(k: KafkaSettings, name: str) -> str | None:
    path: str = getattr(k, name)
    if not path:
        return None
    if not os.access(path, os.R_OK) or not os.path.isfile(path):
        raise ConfigError(f"kafka.{name} is not a readable file: {path}", key=f"kafka.{name}")
    return path


def ssl_context(k: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of both clients, or None without TLS.

    It verifies the broker's certificate and host name against ``ssl_cafile`` (the system
    CAs when empty), requires TLS 1.2 or later and presents ``ssl_certfile`` (with
    ``ssl_keyfile``) when set, for clusters that authenticate clients by certificate.

    Raises:
        ConfigError: A file is missing, unreadable or not a certificate or key.
    """
    if not uses_tls(k):
        return None
    cafile = _readable(k, "ssl_cafile")
    certfile = _readable(k, "ssl_certfile")
    keyfile = _readable(k, "ssl_keyfile")
    if keyfile and not certfile:
        raise ConfigError(
            "kafka.ssl_keyfile is set without kafka.ssl_certfile", key="kafka.ssl_keyfile"
        )
    try:
        context = ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"kafka.ssl_cafile holds no usable CA certificate: {exc.reason or exc}",
            key="kafka.ssl_cafile",
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"kafka.ssl_certfile/ssl_keyfile are not a matching certificate and key: "
                f"{exc.reason or exc}",
                key="kafka.ssl_certfile",
            ) from None
    return context


def kafka_python_settings(k: KafkaSettings) -> dict[str, Any]:
    """kafka-python connection settings (bootstrap servers and security).

    Raises:
        ConfigError: Invalid security settings.
    """
    out: dict[str, Any] = {"bootstrap_servers": bootstrap_list(k)}
    proto = protocol(k)
    if proto == "PLAINTEXT":
        return out
    out["security_protocol"] = proto
    context = ssl_context(k)
    if context is not None:
        out["ssl_context"] = context
    if uses_sasl(k):
        out["sasl_mechanism"] = sasl_mechanism(k)
        out["sasl_plain_username"] = k.sasl_username
        out["sasl_plain_password"] = k.sasl_password
    return out


def faust_credentials(k: KafkaSettings) -> Any:
    """Faust ``broker_credentials`` (None for PLAINTEXT).

    Raises:
        ConfigError: Invalid security settings.
    """
    import faust

    proto = protocol(k)
    if proto == "PLAINTEXT":
        return None
    context = ssl_context(k)
    if uses_sasl(k):
        # Faust derives SASL_SSL or SASL_PLAINTEXT from the presence of the context
        return faust.SASLCredentials(
            username=k.sasl_username,
            password=k.sasl_password,
            mechanism=sasl_mechanism(k),
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


def http_auth_header(
    username: str | None, password: str | None, token: str | None
) -> dict[str, str]:
    """The HTTP Authorization header for basic auth or a bearer token (none without either).

    Raises:
        ConfigError: Both a username and a token.
    """
    if username and token:
        raise ConfigError(
            "basic auth and a bearer token are exclusive",
            key="monitor.alertmanager_bearer_token",
        )
    if token:
        return {"Authorization": f"Bearer {token}"}
    if username:
        pair = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {}


def https_client_context(cafile: str | None, key: str) -> ssl.SSLContext:
    """An HTTPS client context verifying the server against ``cafile`` (or the system CAs).

    Args:
        cafile: PEM file of trusted CAs; None or empty for the system CAs.
        key: The config key of ``cafile``, for errors.

    Raises:
        ConfigError: The CA file cannot be read or holds no certificate.
    """
    try:
        context = ssl.create_default_context(cafile=cafile or None)
    except (OSError, ssl.SSLError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise ConfigError(f"cannot load CA file {cafile}: {why}", key=key) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def https_server_context(certfile: str, keyfile: str, key: str) -> ssl.SSLContext:
    """An HTTPS server context with a PEM certificate (chain) and its key.

    Args:
        certfile: Certificate chain; it may hold the key too.
        keyfile: Private key; empty when ``certfile`` holds it.
        key: The config key of ``certfile``, for errors.

    Raises:
        ConfigError: The files cannot be read or do not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile or None)
    except (OSError, ssl.SSLError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise ConfigError(
            f"cannot load certificate {certfile} and key {keyfile or certfile}: {why}", key=key
        ) from None
    return context
