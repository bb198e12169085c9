"""Serving a metrics registry over HTTP or HTTPS, for Prometheus to scrape."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from aupwatch.errors import ConfigError
from aupwatch.streams.ops.tls_server import start_https_server
from aupwatch.streams.security import https_server_context


def serve(
    registry: CollectorRegistry,
    port: int,
    addr: str = "0.0.0.0",
    certfile: str = "",
    keyfile: str = "",
) -> WSGIServer:
    """Serves a registry over HTTP, or HTTPS with a certificate, from a daemon thread.

    Every path answers with the metrics (``/metrics`` by convention), so the port also
    serves as a liveness probe.

    Args:
        registry: The metrics to serve.
        port: TCP port; 0 picks a free one (see ``server.server_port``).
        addr: Address to bind.
        certfile: PEM certificate (chain) to serve HTTPS with (TLS 1.2 or later); empty
            serves plain HTTP.
        keyfile: Its private key; empty when ``certfile`` holds it.

    Returns:
        The running server; stop it with ``shutdown()`` then ``server_close()``.

    Raises:
        ConfigError: The address cannot be bound (port in use, not a local address), or
            the certificate and key cannot be loaded.
    """
    # a bad certificate fails with its config key before a port is bound
    context = (
        https_server_context(certfile, keyfile, "monitor.metrics_certfile") if certfile else None
    )
    try:
        if context is not None:
            return start_https_server(port, addr, registry, context)
        server, _thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()
        raise ConfigError(
            f"cannot serve metrics on {addr}:{port}: {why}; "
            "choose another port (--metrics-port or monitor.metrics_port)"
        ) from None
    return server
