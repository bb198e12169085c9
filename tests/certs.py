"""Test TLS material made with openssl: a CA, a server certificate, a web config.

Every call makes a fresh CA, so a certificate of one is "unknown" to a client that
trusts another.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    """PEM files of a test CA and of a server certificate it signed for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path


def make_certificates(workdir: Path, name: str = "server") -> Certificates:
    """Make a CA and a server certificate (SAN 127.0.0.1, localhost) with openssl."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca, ca_key = workdir / f"{name}-ca.pem", workdir / f"{name}-ca.key"
    cert, key, ext = workdir / f"{name}.pem", workdir / f"{name}.key", workdir / f"{name}.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         f"/CN=aupwatch test CA {name}", "-keyout", ca_key, "-out", ca,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", key, "-out", workdir / f"{name}.csr"],
        ["x509", "-req", "-in", workdir / f"{name}.csr", "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], cwd=workdir, check=True, capture_output=True)
    return Certificates(ca, cert, key)


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash, as the web config of Prometheus' servers wants (few rounds: tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # glibc/libxcrypt bcrypt; gone in Python 3.13

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))


@dataclass(frozen=True)
class SecuredWeb:
    """HTTPS from ``tls`` and one basic auth user: an exporter-toolkit web config."""

    tls: Certificates
    username: str = "aupwatch"
    password: str = "s3cret-for-tests"

    def web_config(self) -> str:
        """The ``--web.config.file`` content (JSON, which is valid YAML)."""
        return json.dumps(
            {
                "tls_server_config": {
                    "cert_file": str(self.tls.cert),
                    "key_file": str(self.tls.key),
                },
                "basic_auth_users": {self.username: bcrypt_hash(self.password)},
            },
            indent=2,
        )
