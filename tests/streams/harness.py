"""Runs real ``aupwatch worker`` processes against the local broker, and reads topics back."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from tests.kafka_broker import REPO_ROOT, delete_topics_from, transactional_producer, unique_name

AUPWATCH = [sys.executable, "-m", "aupwatch.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    """One consumer group's topics and settings, isolated by a unique prefix."""

    bootstrap: str
    tmp: Path
    partitions: int = 4
    input_partitions: int = 4
    group: str = field(default_factory=lambda: unique_name("aw"))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def input_topic(self) -> str:
        return f"{self.group}-logs"

    @property
    def alerts_topic(self) -> str:
        return f"{self.group}-alerts"

    @property
    def dead_topic(self) -> str:
        return f"{self.group}-dead"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AUPWATCH_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "AUPWATCH_KAFKA__GROUP_ID": self.group,
                "AUPWATCH_KAFKA__INPUT_TOPIC": self.input_topic,
                "AUPWATCH_KAFKA__ALERTS_TOPIC": self.alerts_topic,
                "AUPWATCH_KAFKA__DEAD_LETTER_TOPIC": self.dead_topic,
                "AUPWATCH_KAFKA__PARTITIONS": str(self.partitions),
                "AUPWATCH_WORKER__IDLE_TIMEOUT": "2.0",
                "AUPWATCH_WORKER__CHECKPOINT_INTERVAL": "1.0",
                # small chunks: restarts then rebuild keys from many chunks and epochs
                "AUPWATCH_WORKER__SEEN_CHUNK": "16",
                "PYTHONPATH": str(REPO_ROOT),
                "PYTHONUNBUFFERED": "1",  # a killed worker's last log lines still reach its log
            }
        )
        env.update(extra)
        return env

    def create_input(self) -> None:
        """Creates the input topic with ``input_partitions`` (a worker would use the default)."""
        subprocess.run(
            [
                *AUPWATCH,
                "replay",
                "--to-kafka",
                "--partitions",
                str(self.input_partitions),
                "--quiet",
                "/dev/null",
            ],
            env=self.env(),
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )

    def start_worker(
        self, name: str, metrics_port: int | None = None, log_level: str = "WARNING", **env: str
    ) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        cmd = [*AUPWATCH, "worker", "--log-level", log_level]
        if metrics_port:
            cmd += ["--metrics-port", str(metrics_port)]
        extra = {"AUPWATCH_WORKER__DATA_DIR": str(self.tmp / f"data-{name}"), **env}
        proc = subprocess.Popen(
            cmd,
            env=self.env(**extra),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def send(self, path: Path, batch: int = 100) -> str:
        out = subprocess.run(
            [*AUPWATCH, "replay", "--to-kafka", "--batch", str(batch), str(path)],
            env=self.env(),
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        return out.stderr.decode()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.tmp.glob("*.log"))
        )


def send_in_transactions(
    bootstrap: str, topic: str, path: Path, partitions: int, batch: int = 100, per_txn: int = 10
) -> None:
    """Sends a log file as ``batch``-line messages, round robin, ``per_txn`` per transaction.

    Every partition then ends in a transaction marker, an offset no consumer receives.
    """
    lines = [line for line in path.read_bytes().split(b"\n") if line]
    values = [b"\n".join(lines[i : i + batch]) for i in range(0, len(lines), batch)]

    async def run() -> None:
        producer = transactional_producer(bootstrap, "aw-txn")
        await producer.start()
        try:
            for start in range(0, len(values), per_txn):
                async with producer.transaction():
                    for i in range(start, min(start + per_txn, len(values))):
                        await producer.send(topic, value=values[i], partition=i % partitions)
        finally:
            await producer.stop()

    asyncio.run(run())


def read_topic(bootstrap: str, topic: str, idle_ms: int = 1500) -> list[Any]:
    """Every message of a topic from the beginning (stops after ``idle_ms`` of silence)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def topic_size(bootstrap: str, topic: str) -> int:
    """Messages in a topic (sum of end offsets; 0 when it does not exist yet)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()


def group_progress(bootstrap: str, group: str, topic: str) -> int:
    """Sum of a group's committed offsets on a topic (0 while its coordinator is not ready)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except KafkaError as exc:
        if not exc.retriable:  # a fresh broker has no group coordinator for a few seconds
            raise
        return 0
    finally:
        admin.close()
    return sum(om.offset for tp, om in offsets.items() if tp.topic == topic and om.offset > 0)


def wait_for_progress(dep: Deployment, timeout: float = 120) -> None:
    """Waits until the group has committed some input (its logs on failure)."""
    deadline = time.monotonic() + timeout
    while not group_progress(dep.bootstrap, dep.group, dep.input_topic):
        assert time.monotonic() < deadline, dep.logs()
        time.sleep(0.2)


def kill_mid_stream(
    dep: Deployment, worker: subprocess.Popen[bytes], delay: float
) -> dict[str, Any]:
    """SIGKILLs a worker ``delay`` s after the group first commits input, or sooner.

    Sooner: once half the input is committed, so that a fast worker still dies mid-stream.

    Returns:
        Committed and total messages of the input and detect topics at its death.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not group_progress(
        dep.bootstrap, dep.group, dep.input_topic
    ):
        time.sleep(0.1)
    half = topic_size(dep.bootstrap, dep.input_topic) / 2
    until = time.monotonic() + delay
    while time.monotonic() < until:
        if group_progress(dep.bootstrap, dep.group, dep.input_topic) >= half:
            break
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    return {
        t: (group_progress(dep.bootstrap, dep.group, t), topic_size(dep.bootstrap, t))
        for t in (dep.input_topic, f"{dep.group}-detect")
    }


def latest_alerts(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for msg in read_topic(bootstrap, topic):
        alert = orjson.loads(msg.value)
        assert msg.key.decode() == alert["alert_id"]
        latest[alert["alert_id"]] = alert
    return latest


def wait_for_alerts(
    dep: Deployment, expected: dict[str, dict[str, Any]], timeout: float = 180.0
) -> dict[str, dict[str, Any]]:
    """Polls the alerts topic until its final versions equal ``expected`` or time runs out."""
    deadline = time.monotonic() + timeout
    got: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        got = latest_alerts(dep.bootstrap, dep.alerts_topic)
        if got == expected:
            return got
        dead = [p for p in dep.procs if p.poll() not in (None, 0, -9)]
        assert not dead, f"a worker exited with {dead[0].returncode}:\n{dep.logs()}"
        time.sleep(2)
    return got


def describe_difference(expected: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]]) -> str:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    changed = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    lines = [f"expected {len(expected)} alerts, got {len(got)}"]
    lines += [
        f"missing {k}: {expected[k]['detector']}/{expected[k]['reason']} {expected[k]['subject']}"
        for k in missing[:10]
    ]
    lines += [
        f"extra {k}: {got[k]['detector']}/{got[k]['reason']} {got[k]['subject']}"
        for k in extra[:10]
    ]
    lines += [
        f"differs {k}: count {expected[k]['count']} vs {got[k]['count']}" for k in changed[:10]
    ]
    return "\n".join(lines)


def replay_alerts(path: Path, dead_letters: Path | None = None) -> dict[str, dict[str, Any]]:
    """Final alerts of ``aupwatch replay`` on a file, by alert id."""
    cmd = [*AUPWATCH, "replay", "--quiet", str(path)]
    if dead_letters is not None:
        cmd += ["--dead-letters", str(dead_letters)]
    out = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    alerts = [orjson.loads(line) for line in out.stdout.splitlines()]
    return {a["alert_id"]: a for a in alerts}


def reasons(alerts: dict[str, dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((a["detector"], a["reason"]) for a in alerts.values())


@contextmanager
def deployment(
    bootstrap: str, tmp: Path, delete_topics: bool = True, **kw: Any
) -> Iterator[Deployment]:
    """A deployment whose workers are stopped, and topics deleted, when the block ends.

    Args:
        bootstrap: A broker that takes plain clients (``delete_topics``), or any broker.
        tmp: Folder for the workers' logs and data.
        delete_topics: Whether to delete the group's topics at the end.
        **kw: Other fields of ``Deployment``.
    """
    dep = Deployment(bootstrap, tmp, **kw)
    try:
        yield dep
    finally:
        dep.stop_all()
        if delete_topics:
            delete_topics_from(bootstrap, f"{dep.group}-")
