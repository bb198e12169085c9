"""The metrics endpoint over HTTPS, without one silent client stalling every scrape.

prometheus_client's ``start_http_server(certfile=...)`` wraps the listening socket, so the
TLS handshake runs inside ``accept()`` on the serving thread, with no timeout: a client
that connects and sends nothing (a half-open connection, a port scanner) blocks every
later scrape. Here the handshake runs in the request's own thread, bounded in time.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

__all__ = ["start_https_server"]

HANDSHAKE_TIMEOUT_S = 10.0


class _QuietHandler(WSGIRequestHandler):
    """Logs no line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPSServer(ThreadingWSGIServer):
    """A thread per request; each thread does its own TLS handshake."""

    context: ssl.SSLContext

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(HANDSHAKE_TIMEOUT_S)  # also bounds each read of the request
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):  # a plain-HTTP client, a probe that hung up, a timeout
            self.shutdown_request(request)
            return
        super().process_request_thread(tls, client_address)


def start_https_server(
    port: int, addr: str, registry: Collector, context: ssl.SSLContext
) -> WSGIServer:
    """Serves ``registry`` over HTTPS from a daemon thread.

    Args:
        port: TCP port; 0 picks a free one.
        addr: Address to bind (IPv4 or IPv6).
        registry: The metrics to expose.
        context: A server TLS context with its certificate loaded.

    Returns:
        The running server; stop it with ``shutdown()`` then ``server_close()``.

    Raises:
        OSError: The address cannot be bound.
    """
    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(_HTTPSServer):
        address_family = family

    server = make_server(addr, port, make_wsgi_app(registry), Server, handler_class=_QuietHandler)
    assert isinstance(server, _HTTPSServer)
    server.context = context
    threading.Thread(target=server.serve_forever, name="metrics-https", daemon=True).start()
    return server
