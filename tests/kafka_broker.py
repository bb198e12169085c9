"""Helpers for tests that need the project's local Kafka broker (deploy/kafka/kafka.sh).

The broker is a single KRaft node on 127.0.0.1:${AUPWATCH_KAFKA_PORT:-19092}. ``ensure_broker``
starts it when it is not running (the first start on a machine fetches its jars with Maven) and
leaves it running afterwards; ``deploy/kafka/kafka.sh stop`` stops it.

Set AUPWATCH_KAFKA_BOOTSTRAP=host:port to use some other, already running broker instead.

``ensure_secure_broker`` starts the separate secured broker (``kafka.sh start --secure``:
SASL_SSL with SCRAM-SHA-512 on 127.0.0.1:${AUPWATCH_KAFKA_SECURE_PORT:-19094}) and returns
its client settings; ``stop_secure_broker`` stops it. The plain broker is not touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient
from kafka.errors import UnknownTopicOrPartitionError

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"

# The first start on a fresh machine downloads ~50 MB of jars; later starts take seconds.
START_TIMEOUT_S = 900


def bootstrap_address() -> str:
    """Return the bootstrap address of the project broker, without starting it."""
    external = os.environ.get("AUPWATCH_KAFKA_BOOTSTRAP")
    if external:
        return external
    return f"127.0.0.1:{os.environ.get('AUPWATCH_KAFKA_PORT', '19092')}"


def ensure_broker() -> str:
    """Start the local broker unless it is already up; return its "127.0.0.1:PORT" address.

    Raises RuntimeError with the script's output (which includes the broker log tail) when the
    broker does not come up.
    """
    if os.environ.get("AUPWATCH_KAFKA_BOOTSTRAP"):
        return bootstrap_address()
    try:
        proc = subprocess.run(
            ["bash", str(KAFKA_SH), "start"],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{KAFKA_SH} start timed out after {START_TIMEOUT_S}s") from exc
    if proc.returncode != 0:
        raise RuntimeError(
            f"{KAFKA_SH} start failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return bootstrap_address()


def _kafka_sh(*args: str) -> None:
    try:
        proc = subprocess.run(
            ["bash", str(KAFKA_SH), *args],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"{KAFKA_SH} {' '.join(args)} timed out after {START_TIMEOUT_S}s"
        ) from exc
    if proc.returncode != 0:
        raise RuntimeError(
            f"{KAFKA_SH} {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stdout}{proc.stderr}"
        )


@dataclass(frozen=True)
class SecureBroker:
    """The secured broker's address and the settings of its client user."""

    bootstrap: str
    cafile: Path
    username: str
    password: str

    def env(self) -> dict[str, str]:
        """The ``AUPWATCH_KAFKA__*`` variables of a client of this broker."""
        return {
            "AUPWATCH_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "AUPWATCH_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "AUPWATCH_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "AUPWATCH_KAFKA__SASL_USERNAME": self.username,
            "AUPWATCH_KAFKA__SASL_PASSWORD": self.password,
            "AUPWATCH_KAFKA__SSL_CAFILE": str(self.cafile),
        }


def secure_dir() -> Path:
    """The secured broker's state directory (as kafka.sh computes it)."""
    return Path(os.environ.get("AUPWATCH_KAFKA_SECURE_DIR") or REPO_ROOT / "var" / "kafka-secure")


def ensure_secure_broker() -> SecureBroker:
    """Start the secured broker unless it is up (a few seconds; its heap is 512 MB at most).

    Raises:
        RuntimeError: With the script's output when the broker does not come up.
    """
    _kafka_sh("start", "--secure")
    settings = {}
    for line in (secure_dir() / "client.env").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            settings[name] = value
    return SecureBroker(
        bootstrap=settings["AUPWATCH_KAFKA__BOOTSTRAP_SERVERS"],
        cafile=Path(settings["AUPWATCH_KAFKA__SSL_CAFILE"]),
        username=settings["AUPWATCH_KAFKA__SASL_USERNAME"],
        password=settings["AUPWATCH_KAFKA__SASL_PASSWORD"],
    )


def secure_broker_running() -> bool:
    """True when the secured broker is up and answering (``kafka.sh status --secure``)."""
    status = subprocess.run(
        ["bash", str(KAFKA_SH), "status", "--secure"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return status.returncode == 0


def stop_secure_broker() -> None:
    """Stop the secured broker (a no-op when it is not running)."""
    _kafka_sh("stop", "--secure")


def unique_name(prefix: str) -> str:
    """Return a topic/group/transactional id that no other test (or test run) uses."""
    safe = re.sub(r"[^a-zA-Z0-9._-]", "-", prefix) or "t"
    return f"{safe}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def transactional_producer(bootstrap: str, prefix: str) -> AIOKafkaProducer:
    """An idempotent aiokafka producer with a unique transactional id (not started)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=unique_name(prefix),
        enable_idempotence=True,
    )


@contextlib.contextmanager
def admin_client(bootstrap: str) -> Iterator[KafkaAdminClient]:
    """Yield a KafkaAdminClient for ``bootstrap`` and close it afterwards."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=unique_name("aupwatch-test-admin"),
        request_timeout_ms=30_000,
    )
    try:
        yield admin
    finally:
        admin.close()


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int,
    config: Mapping[str, str] | None = None,
) -> str:
    """Create topic ``name`` (replication factor 1) and wait until every partition has a leader."""
    configs = {k: str(v) for k, v in (config or {}).items()}
    with admin_client(bootstrap) as admin:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs}},
            timeout_ms=30_000,
        )
        admin.wait_for_topics([name], timeout_ms=30_000)
    return name


def delete_topics_from(bootstrap: str, prefix: str) -> list[str]:
    """Deletes every topic whose name starts with ``prefix``; returns their names.

    A deployment's topics (its group id is their prefix) would otherwise stay on the
    broker, which is left running: runs add up to gigabytes of disk.
    """
    with admin_client(bootstrap) as admin:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                admin.delete_topics(mine, timeout_ms=30_000)
    return mine


def delete_topic(bootstrap: str, name: str) -> None:
    """Delete topic ``name``; a topic that does not exist is not an error."""
    with admin_client(bootstrap) as admin, contextlib.suppress(UnknownTopicOrPartitionError):
        admin.delete_topics([name], timeout_ms=30_000)
