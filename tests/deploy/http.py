"""HTTP helpers of the deploy tests: free ports, GET/POST without proxies, waiting."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _opener(cafile: Path | str | None) -> urllib.request.OpenerDirector:
    if cafile is None:
        return _OPENER
    context = ssl.create_default_context(cafile=str(cafile))
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )


def basic_auth(username: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP basic auth."""
    return {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }


def http_get(
    url: str,
    timeout: float = 5.0,
    *,
    cafile: Path | str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """GET ``url`` without proxies; return (status, body), also for HTTP errors.

    ``cafile`` verifies an https server against that CA; ``headers`` go with the request.
    """
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _opener(cafile).open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_json(
    url: str,
    body: Any = None,
    timeout: float = 5.0,
    *,
    cafile: Path | str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """GET (or POST ``body`` as JSON to) ``url`` and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    with _opener(cafile).open(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


def wait_for(
    probe: Callable[[], T], timeout: float, interval: float = 0.2, what: str = "condition"
) -> T:
    """Call ``probe`` until it returns something truthy and return that.

    Exceptions from ``probe`` count as "not yet".

    Raises:
        TimeoutError: If ``timeout`` seconds pass first (with the last error, if any).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout}s (last error: {last_error!r})")
        time.sleep(interval)
