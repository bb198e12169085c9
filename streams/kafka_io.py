"""kafka-python plumbing.

Client settings, topic creation, the replay producer, the alerts tail and an offset probe.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from aupwatch.errors import AupwatchError
from aupwatch.schemas.records import parse_ts
from aupwatch.streams import markers
from aupwatch.streams.broker_check import check_brokers
from aupwatch.streams.config import AppConfig, KafkaSettings
from aupwatch.streams.security import kafka_python_settings

# records between two marks of a replay producer (one mark message per input partition)
MARK_EVERY = 2000


def client_settings(k: KafkaSettings) -> dict[str, Any]:
    """kafka-python connection settings, security included (``security`` builds them)."""
    return kafka_python_settings(k)


def check_reachable(config: AppConfig, timeout: float = 10.0) -> None:
    """Fails fast, in one line, when no bootstrap server accepts a TCP connection.

    Kafka clients retry an unreachable broker with growing back-off and log every attempt;
    a command calls this first so that a wrong address or a stopped broker is one error
    within ``timeout`` seconds. It does not speak Kafka: TLS and SASL are checked by the
    clients that follow.

    Args:
        config: Application config (``kafka.bootstrap_servers``).
        timeout: Seconds for all connection attempts together.

    Raises:
        AupwatchError: No bootstrap server accepted a connection; the message says why
            for each (refused, timed out, unknown host).
    """
    servers = config.kafka.bootstrap_servers
    deadline = time.monotonic() + timeout
    causes = []
    for server in (s.strip() for s in servers.split(",") if s.strip()):
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise AupwatchError(
                "bootstrap server is not HOST:PORT", bootstrap_servers=servers, server=server
            )
        left = deadline - time.monotonic()
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=max(left, 0.1)).close()
            return
        except socket.gaierror:
            causes.append(f"{server} (unknown host)")
        except TimeoutError:
            causes.append(f"{server} (no answer within {timeout:g} s)")
        except OSError as exc:
            causes.append(f"{server} ({(exc.strerror or str(exc)).lower()})")
    raise AupwatchError(
        f"cannot reach Kafka at {', '.join(causes) or 'no bootstrap server'}; check "
        "kafka.bootstrap_servers (--bootstrap-servers) and that the broker is running"
    )


def first_offset_from(
    k: KafkaSettings,
    topic: str,
    partition: int,
    offset: int,
    timeout: float = 10.0,
    end: int | None = None,
) -> int | None:
    """The offset of the first record at or after ``offset`` in one partition.

    Tells offsets that hold no record (transaction markers, compaction, retention) from
    records a consumer skipped. Blocking: run it in a thread.

    Args:
        k: Kafka settings.
        topic: Topic name.
        partition: Partition number.
        offset: First offset to look at.
        timeout: Seconds to wait for a record.
        end: Stop once the read position reaches this offset, returning it.

    Returns:
        That offset; with ``end``, any value at or above ``end`` means no record is below
        it. None when nothing was learnt within ``timeout`` seconds.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **client_settings(k), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=1).values():
                return int(records[0].offset)
            if end is not None and consumer.position(tp) >= end:
                return end  # read past everything below end: control records only
        return None
    finally:
        consumer.close()


def ensure_topics(
    config: AppConfig,
    names: dict[str, str],
    input_partitions: int | None = None,
    changelogs: tuple[str, ...] = (),
) -> int:
    """Creates missing topics and returns the input topic's partition count.

    Args:
        config: Application config.
        names: Topic names by role (``aupwatch.streams.worker.topics.topic_names``).
        input_partitions: Partitions for the input topic when it must be created
            (default ``kafka.partitions``).
        changelogs: State changelog topics, created compacted before any worker
            subscribes (a worker that finds one missing waits on it).

    Returns:
        The input topic's partition count.

    Raises:
        AupwatchError: The cluster cannot be reached or refuses this client (TLS, SASL),
            or an internal topic exists with the wrong partition count.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    k = config.kafka
    check_brokers(k)  # a refused client ends here with the cause, before the clients retry
    try:
        admin = KafkaAdminClient(
            client_id="aupwatch-admin", request_timeout_ms=20000, **client_settings(k)
        )
    except KafkaError as exc:
        raise AupwatchError(
            f"cannot reach Kafka: {exc}", bootstrap_servers=k.bootstrap_servers
        ) from None
    try:
        existing = set(admin.list_topics())
        wanted = []
        for role, name in names.items():
            if name in existing:
                continue
            parts = (input_partitions or k.partitions) if role == "input" else k.partitions
            configs = {"cleanup.policy": "compact"} if role == "alerts" else {}
            wanted.append(NewTopic(name, parts, k.replication_factor, topic_configs=configs))
        for name in changelogs:
            if name not in existing:
                compact = {"cleanup.policy": "compact"}
                wanted.append(
                    NewTopic(name, k.partitions, k.replication_factor, topic_configs=compact)
                )
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
        meta = _partition_counts(admin, [*names.values(), *changelogs])
        internal = [names[r] for r in ("detect", "throttle", "alerts-in") if r in names]
        for name in [*internal, *changelogs]:
            if meta.get(name, k.partitions) != k.partitions:
                raise AupwatchError(
                    f"internal topic has {meta[name]} partitions, config says {k.partitions}",
                    topic=name,
                )
        return meta[names["input"]]
    finally:
        admin.close()


def _partition_counts(admin: Any, topics: list[str], wait_s: float = 30.0) -> dict[str, int]:
    """Partition count per topic, waiting while a just-created topic still reports none.

    A broker answers a describe right after the create before the new partitions reach its
    metadata, so 0 partitions means "not yet" and is asked again, up to ``wait_s``.
    """
    deadline = time.monotonic() + wait_s
    while True:
        meta = {
            t.get("topic", t.get("name")): len(t["partitions"])
            for t in admin.describe_topics(topics)
        }
        if all(meta.get(t, 0) > 0 for t in topics) or time.monotonic() > deadline:
            return meta
        time.sleep(0.2)


def record_key(line: bytes) -> tuple[bytes | None, int]:
    """The message key (seller, else app, else key id) and event time of a raw line.

    Lines that do not parse get no key and time 0; the worker dead-letters them.
    """
    try:
        obj = orjson.loads(line)
        key = obj.get("seller_id") or obj.get("app_id") or obj.get("key_id")
        ts = parse_ts(obj["ts"])
    except Exception:  # any malformed line is passed on untouched
        return None, 0
    return (key.encode() if isinstance(key, str) else None), ts


def send_records(
    config: AppConfig,
    topic: str,
    lines: Iterable[bytes],
    batch: int = 1,
    pace: float | None = None,
    since: int | None = None,
    until: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Sends log lines to the input topic with an idempotent producer.

    With ``batch`` 1 each record is a message keyed by its seller (else app, else key);
    with larger batches records are grouped per partition of that key, ``batch`` records
    per message (JSON Lines), so per-key order is kept either way.

    Args:
        config: Application config (Kafka connection).
        topic: Input topic.
        lines: Raw lines in file order.
        batch: Records per message.
        pace: Speed in multiples of real time by event time; None = as fast as possible.
        since: Skip records before this event time (microseconds).
        until: Skip records at or after this event time (microseconds).
        on_progress: Called with the number of records sent so far.

    Returns:
        (records sent and acknowledged, records skipped by the time filter).
    """
    from kafka import KafkaProducer
    from kafka.partitioner.default import murmur2

    producer = KafkaProducer(
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
        **client_settings(config.kafka),
    )
    parts = producer.partitions_for(topic)
    if not parts:
        producer.close()
        raise AupwatchError("input topic does not exist", topic=topic)
    n_parts = len(parts)
    buffers: dict[int, list[bytes]] = {}
    sent = skipped = 0
    start_wall = time.monotonic()
    start_ts: int | None = None
    producer_id = uuid.uuid4().hex
    max_ts: int | None = None
    marked_at = (0, time.monotonic())  # (records sent, when) at the last mark

    def flush(p: int) -> None:
        nonlocal sent
        buf = buffers.pop(p, [])
        if buf:
            producer.send(topic, value=b"\n".join(buf), partition=p)
            sent += len(buf)

    def mark(kind: str) -> None:
        nonlocal marked_at
        for p in list(buffers):
            flush(p)  # a mark follows every record sent before it
        value, headers = markers.encode(markers.Marker(kind, producer_id, max_ts))
        for p in sorted(parts):
            producer.send(topic, value=value, partition=p, headers=headers)
        marked_at = (sent, time.monotonic())

    def due() -> bool:
        return sent - marked_at[0] >= MARK_EVERY or time.monotonic() - marked_at[1] >= 1.0

    ended = False
    try:
        mark(markers.BEGIN)
        producer.flush()  # every begin marker is in its partition before any record
        for line in lines:
            key, ts = record_key(line)
            if ts and ((since is not None and ts < since) or (until is not None and ts >= until)):
                skipped += 1
                continue
            if pace and ts:
                start_ts = ts if start_ts is None else start_ts
                delay = (ts - start_ts) / 1e6 / pace - (time.monotonic() - start_wall)
                while delay > 0:
                    mark(markers.MARK)  # while pacing, partitions hear from us every second
                    time.sleep(min(delay, 1.0))
                    delay = (ts - start_ts) / 1e6 / pace - (time.monotonic() - start_wall)
            if batch == 1:
                producer.send(topic, key=key, value=line)
                sent += 1
            else:
                p = (murmur2(key) & 0x7FFFFFFF) % n_parts if key else sent % n_parts
                buffers.setdefault(p, []).append(line)
                if len(buffers[p]) >= batch:
                    flush(p)
            if ts and (max_ts is None or ts > max_ts):
                max_ts = ts
            if due():
                mark(markers.MARK)
            if on_progress is not None and sent and sent % 8192 == 0:
                on_progress(sent)
        mark(markers.END)
        producer.flush()
        ended = True
    finally:
        if not ended:
            # interrupted: end the replay anyway, so the group does not wait for it
            with contextlib.suppress(Exception):
                mark(markers.END)
                producer.flush(timeout=10)
        producer.close()
    return sent, skipped


def tail_alerts(
    config: AppConfig, follow: bool, idle_exit: float = 5.0
) -> Iterator[dict[str, Any]]:
    """Reads the alerts topic from the start and yields the latest version of each alert.

    Args:
        config: Application config.
        follow: Keep reading and yield every new version as it arrives.
        idle_exit: Without ``follow``, stop after this many seconds without a message,
            then yield the latest versions.

    Yields:
        Alerts (last version per alert_id when not following).

    Raises:
        AupwatchError: The client failed (no broker, authentication, timeout).
    """
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    k = config.kafka
    check_brokers(k)
    try:
        consumer = KafkaConsumer(
            k.alerts_topic,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=int(idle_exit * 1000) if not follow else 1000,
            bootstrap_timeout_ms=20000,
            **client_settings(k),
        )
    except KafkaError as exc:
        raise AupwatchError(
            f"cannot read alerts: {exc}", bootstrap_servers=k.bootstrap_servers
        ) from None
    latest: dict[str, dict[str, Any]] = {}
    try:
        while True:
            for msg in consumer:
                if msg.value is None:
                    continue
                alert = orjson.loads(msg.value)
                if follow:
                    yield alert
                else:
                    latest[alert["alert_id"]] = alert
            if not follow:
                break
    except KafkaError as exc:
        raise AupwatchError(f"cannot read alerts: {exc}", topic=k.alerts_topic) from None
    finally:
        consumer.close()
    yield from sorted(latest.values(), key=lambda a: (a["ts"], a["alert_id"]))
