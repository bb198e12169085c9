"""A bounded, quiet first contact with the cluster that names what is wrong.

Kafka clients retry a bootstrap server that refuses them until a timeout and then report
only that they could not bootstrap: a wrong password, an untrusted CA, a plaintext client
on a TLS port and a host where nothing listens all look alike, after 30 s of log noise.
:func:`check_brokers` connects to each bootstrap server once, with the configured security
settings, speaking just enough of the Kafka protocol (ApiVersions, the SASL handshake and
authentication, an empty Metadata request) to tell these apart, and raises
:class:`~aupwatch.errors.AupwatchError` with the cause in one line.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import socket
import ssl
import struct
import time
from collections.abc import Callable

from aupwatch.errors import AupwatchError
from aupwatch.streams import security
from aupwatch.streams.config import KafkaSettings

__all__ = ["check_brokers"]

log = logging.getLogger(__name__)

_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE, _METADATA = 18, 17, 36, 3
_MAX_RESPONSE = 16 * 1024 * 1024


class _Refused(Exception):
    """A bootstrap server turned this client away; the message says why."""


class _Closed(Exception):
    """The server closed the connection (or sent something that is not a Kafka answer)."""


class _Connection:
    """One blocking Kafka connection speaking request header v1 (non-flexible versions)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.correlation = 0

    def request(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation += 1
        client = b"aupwatch-check"
        header = struct.pack(">hhih", api_key, version, self.correlation, len(client)) + client
        payload = header + body
        try:
            self.sock.sendall(struct.pack(">i", len(payload)) + payload)
            size = struct.unpack(">i", self._read(4))[0]
            if not 4 <= size <= _MAX_RESPONSE:
                raise _Closed(f"not a Kafka answer (length {size})")
            answer = self._read(size)
        except (ConnectionError, ssl.SSLError) as exc:
            raise _Closed(str(exc)) from None
        except TimeoutError:
            raise _Closed("no answer in time") from None
        if struct.unpack(">i", answer[:4])[0] != self.correlation:
            raise _Closed("not a Kafka answer (wrong correlation id)")
        return answer[4:]

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise _Closed("connection closed")
            out += chunk
        return out


def check_brokers(k: KafkaSettings, timeout: float = 10.0) -> None:
    """Connects once to each bootstrap server until one accepts this client.

    Args:
        k: Kafka settings (bootstrap servers and security).
        timeout: Seconds for each connect and each answer; 2x this bounds the whole check.

    Raises:
        ConfigError: Invalid security settings.
        AupwatchError: No bootstrap server accepts the client; the message names why
            (for the first server that failed).
    """
    servers = security.bootstrap_list(k)
    context = security.ssl_context(k)
    first: str | None = None
    deadline = time.monotonic() + 2 * timeout
    for address in servers:
        try:
            _check_one(k, address, context, timeout)
            return
        except _Refused as exc:
            log.debug("broker check: %s: %s", address, exc)
            first = first or str(exc)
        if time.monotonic() >= deadline:
            break
    raise AupwatchError(
        first or "no bootstrap server answered", bootstrap_servers=k.bootstrap_servers
    )


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise _Refused(f"bootstrap server {address!r} is not host:port")
    return host.strip("[]"), int(port)


def _connect(address: str, timeout: float) -> socket.socket:
    host, port = _split(address)
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise _Refused(f"cannot resolve Kafka host {host!r}: {exc.strerror}") from None
    except ConnectionRefusedError:
        raise _Refused(f"no Kafka broker listens at {address} (connection refused)") from None
    except TimeoutError:
        raise _Refused(
            f"no answer from {address} within {timeout:.0f} s (connect timed out)"
        ) from None
    except OSError as exc:
        raise _Refused(f"cannot connect to {address}: {exc.strerror or exc}") from None


def _check_one(
    k: KafkaSettings, address: str, context: ssl.SSLContext | None, timeout: float
) -> None:
    proto = security.protocol(k)
    sock = _connect(address, timeout)
    try:
        if context is not None:
            sock = _tls(sock, context, address, k, timeout)
        conn = _Connection(sock)
        try:
            versions = conn.request(_API_VERSIONS, 0, b"")
        except _Closed:
            if context is None and _speaks_tls(address, timeout):
                raise _Refused(
                    f"{address} expects TLS but kafka.security_protocol is {proto} "
                    "(use SSL or SASL_SSL, with kafka.ssl_cafile)"
                ) from None
            raise _Refused(
                f"{address} closed the connection without answering: "
                f"not a Kafka listener for kafka.security_protocol={proto}?"
            ) from None
        if _METADATA not in _api_keys(versions):
            raise _Refused(
                f"{address} is a KRaft controller listener, not a broker (kafka.bootstrap_servers)"
            )
        if security.uses_sasl(k):
            _authenticate(conn, k, address)
        try:
            conn.request(_METADATA, 1, struct.pack(">i", 0))  # no topics: brokers only
        except _Closed:
            raise _Refused(
                f"{address} requires SASL authentication but kafka.security_protocol is "
                f"{proto} (use SASL_SSL or SASL_PLAINTEXT)"
            ) from None
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _tls(
    sock: socket.socket,
    context: ssl.SSLContext,
    address: str,
    k: KafkaSettings,
    timeout: float,
) -> socket.socket:
    host, _ = _split(address)
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
        tls.settimeout(timeout)
        return tls
    except ssl.SSLCertVerificationError as exc:
        cafile = k.ssl_cafile or "the system CAs"
        raise _Refused(
            f"TLS: {address} presented a certificate that is not trusted "
            f"({exc.verify_message}; kafka.ssl_cafile={cafile})"
        ) from None
    except (ssl.SSLError, ConnectionError) as exc:
        raise _Refused(
            f"TLS handshake with {address} failed ({getattr(exc, 'reason', None) or exc}): "
            f"is it a TLS listener? (kafka.security_protocol={security.protocol(k)})"
        ) from None
    except TimeoutError:
        raise _Refused(f"TLS handshake with {address} timed out after {timeout:.0f} s") from None


def _speaks_tls(address: str, timeout: float) -> bool:
    """True when the server completes a TLS handshake (its certificate left unchecked)."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE  # only asks whether TLS is spoken, sends nothing
    try:
        with probe.wrap_socket(_connect(address, timeout)):
            return True
    except (_Refused, OSError):
        return False


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def _authenticate(conn: _Connection, k: KafkaSettings, address: str) -> None:
    mechanism = security.sasl_mechanism(k)
    try:
        answer = conn.request(_SASL_HANDSHAKE, 1, _string(mechanism))
    except _Closed:
        raise _Refused(
            f"{address} closed the connection at the SASL handshake: not a SASL listener? "
            f"(kafka.security_protocol={security.protocol(k)})"
        ) from None
    error, offered = _handshake_answer(answer)
    if error:
        raise _Refused(
            f"{address} does not accept SASL mechanism {mechanism} "
            f"(it offers {', '.join(offered) or 'none'}; kafka.sasl_mechanism)"
        )
    failed = f"SASL authentication of user {k.sasl_username!r} ({mechanism}) failed at {address}"
    hint = "check kafka.sasl_username and kafka.sasl_password"

    def step(token: bytes) -> bytes:
        try:
            answer = conn.request(_SASL_AUTHENTICATE, 0, struct.pack(">i", len(token)) + token)
        except _Closed:
            raise _Refused(f"{failed}: the broker closed the connection ({hint})") from None
        code, message, data = _authenticate_answer(answer)
        if code:
            raise _Refused(f"{failed}: {message or f'error {code}'} ({hint})")
        return data

    if mechanism == "PLAIN":
        step(b"\0" + k.sasl_username.encode() + b"\0" + k.sasl_password.encode())
    else:
        _scram(step, mechanism, k.sasl_username, k.sasl_password)


def _scram(step: Callable[[bytes], bytes], mechanism: str, username: str, password: str) -> None:
    """The client side of SCRAM (RFC 5802) with SHA-256 or SHA-512."""
    digest = "sha512" if mechanism.endswith("512") else "sha256"
    nonce = secrets.token_urlsafe(24)
    user = username.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={user},r={nonce}"
    server_first = step(f"n,,{first_bare}".encode()).decode()
    attrs = dict(part.split("=", 1) for part in server_first.split(",") if "=" in part)
    if not attrs.get("r", "").startswith(nonce) or "s" not in attrs or "i" not in attrs:
        raise _Refused(f"unexpected SCRAM answer from the broker: {server_first[:80]!r}")
    salted = hashlib.pbkdf2_hmac(
        digest, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored_key = hashlib.new(digest, client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, digest).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    step(f"{without_proof},p={proof.decode()}".encode())


def _api_keys(answer: bytes) -> set[int]:
    """The API keys of an ApiVersions v0 answer."""
    (count,) = struct.unpack(">i", answer[2:6])
    return {struct.unpack(">h", answer[6 + 6 * i : 8 + 6 * i])[0] for i in range(max(0, count))}


def _handshake_answer(answer: bytes) -> tuple[int, list[str]]:
    error, count = struct.unpack(">hi", answer[:6])
    offered, pos = [], 6
    for _ in range(max(0, count)):
        (n,) = struct.unpack(">h", answer[pos : pos + 2])
        offered.append(answer[pos + 2 : pos + 2 + n].decode(errors="replace"))
        pos += 2 + n
    return int(error), offered


def _authenticate_answer(answer: bytes) -> tuple[int, str, bytes]:
    (error,) = struct.unpack(">h", answer[:2])
    (n,) = struct.unpack(">h", answer[2:4])
    message = answer[4 : 4 + n].decode(errors="replace") if n > 0 else ""
    pos = 4 + max(n, 0)
    (size,) = struct.unpack(">i", answer[pos : pos + 4])
    return int(error), message, answer[pos + 4 : pos + 4 + max(size, 0)]
