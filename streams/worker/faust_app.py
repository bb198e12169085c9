"""Faust-facing parts of the worker: settings, topic names, the state table.

The only module that uses faust-streaming's or aiokafka's private API (pinned by
tests/streams/worker/test_faust_app.py against the pinned faust-streaming version):
``_to_key``/``_to_value`` of a table, ``table.data.data``, ``producer._ensure_producer``,
``consumer._commit``, ``consumer._read_offset``, the consumer thread's
``_ensure_consumer`` (to seek some partitions to their committed offsets, to pause and
resume fetching in aiokafka itself, and to set its fetcher's ``_fetch_max_wait_ms``),
mode's ``Worker._schedule_shutdown``, and ``app.rebalancing``/``app.in_recovery``.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import faust
import orjson
from faust.types import TP

from aupwatch.streams.config import AppConfig
from aupwatch.streams.security import faust_credentials


class StateTable(faust.Table):  # type: ignore[type-arg]
    """A table whose changelog holds raw bytes keys and orjson values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # before the changelog topic is built: it takes its codecs from these
        self.key_serializer = "raw"
        self.value_serializer = "raw"

    def _to_key(self, k: Any) -> Any:
        return k.decode() if isinstance(k, bytes) else k

    def _to_value(self, v: Any) -> Any:
        return orjson.loads(v) if isinstance(v, bytes | bytearray) else v


class PartitionWriter:
    """Appends records to record batches of one topic partition, sending each when full.

    Straight to aiokafka: a producer send per record costs ~30 us, an append ~3 us.

    Args:
        producer: Faust's producer (its aiokafka producer does the work).
        topic: Topic name.
        partition: Partition number.
    """

    def __init__(self, producer: Any, topic: str, partition: int) -> None:
        self.raw = producer._ensure_producer()
        self.topic = topic
        self.partition = partition
        self.batch = self.raw.create_batch()

    async def add(self, key: bytes, value: bytes | None) -> None:
        """Appends one record (a full batch is sent first)."""
        if self.batch.append(key=key, value=value, timestamp=None) is None:
            await self.raw.send_batch(self.batch, self.topic, partition=self.partition)
            self.batch = self.raw.create_batch()
            self.batch.append(key=key, value=value, timestamp=None)

    async def close(self) -> None:
        """Sends what is left (in order after every earlier batch)."""
        if self.batch.record_count():
            await self.raw.send_batch(self.batch, self.topic, partition=self.partition)
        self.batch = self.raw.create_batch()


def table_dict(table: Any) -> dict[str, Any]:
    """The in-memory dict behind a memory-store table (read and written in place)."""
    data: dict[str, Any] = table.data.data
    return data


def changelog_topic(table: Any) -> str:
    """The name of a table's changelog topic."""
    return str(table.changelog_topic.get_topic_name())


async def seek_to_committed(consumer: Any, tps: list[TP]) -> dict[TP, int | None]:
    """Seeks only these partitions to their committed offsets; returns those offsets.

    Faust's ``seek_to_committed`` seeks every assigned partition, the tables' changelogs
    too, which its recovery positions itself. Faust's read offsets follow the seek, so its
    drain takes the records read again.
    """
    from aiokafka.structs import TopicPartition

    thread = consumer._thread
    parts = [TopicPartition(tp.topic, tp.partition) for tp in tps]

    async def call() -> Any:
        committed = await thread._ensure_consumer().seek_to_committed(*parts)
        # as Faust's seek_wait does: its drain drops records below the last one it read
        read = consumer._read_offset
        for tp, offset in committed.items():
            key = TP(tp.topic, tp.partition)
            if offset and offset > 0:
                read[key] = offset
            else:
                read.pop(key, None)
        return committed

    committed = await thread.call_thread(call)
    return {TP(tp.topic, tp.partition): offset for tp, offset in committed.items()}


async def commit_offsets(consumer: Any, offsets: dict[tuple[str, int], int]) -> None:
    """Commits these offsets as given (Faust's public commit takes its own acked offsets)."""
    await consumer._commit({TP(t, p): o for (t, p), o in offsets.items()})


def settled(app: Any) -> bool:
    """Whether Faust is neither rebalancing nor recovering tables.

    Faust pauses every assigned partition for a rebalance and its table recovery, and
    resumes every stream partition when both are done (``app.on_rebalance_end``); pausing
    or resuming partitions in between would fight it.
    """
    return not (app.rebalancing or app.in_recovery)


async def pause_fetching(consumer: Any, tps: set[TP]) -> None:
    """Stops aiokafka returning and fetching records of these partitions.

    Paused in aiokafka, not in Faust's set of active partitions: Faust drops the records
    of a partition it finds inactive in a batch aiokafka already returned, after aiokafka
    moved its position past them, so those offsets would never be delivered again.
    aiokafka keeps a paused partition's position at the last record it returned and drops
    what it fetched beyond (fetched again on resume). Faust never pauses in aiokafka, and
    a rebalance gives every partition a fresh, unpaused state. Partitions not assigned
    (a rebalance under way) are left alone.
    """
    await _in_consumer_thread(consumer, "pause", tps)


async def resume_fetching(consumer: Any, tps: set[TP]) -> None:
    """Fetches these partitions again from their positions (see ``pause_fetching``)."""
    await _in_consumer_thread(consumer, "resume", tps)


async def set_fetch_wait(consumer: Any, seconds: float) -> None:
    """Lets the broker hold a fetch that finds no records for at most ``seconds``.

    Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting for
    it. aiokafka has one fetch in flight per broker, for every partition it reads there:
    while the broker holds a fetch of partitions with nothing new (input read to its end,
    a quiet internal topic), records arriving on the others wait too, up to 1.5 s at each
    internal hop. aiokafka's fetcher reads the value for each request it builds.
    """
    thread = consumer._thread
    ms = max(1, round(seconds * 1000))

    def call() -> None:
        raw = thread._ensure_consumer()
        raw._fetch_max_wait_ms = ms  # a consumer started again builds its fetcher from it
        fetcher = getattr(raw, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = ms

    await thread.call_thread(call)


async def _in_consumer_thread(consumer: Any, method: str, tps: set[TP]) -> None:
    # aiokafka's resume completes a future of the consumer thread's loop: call it there
    from aiokafka.structs import TopicPartition

    thread = consumer._thread
    parts = [TopicPartition(tp.topic, tp.partition) for tp in tps]

    def call() -> None:
        raw = thread._ensure_consumer()
        held = raw.assignment()
        mine = [p for p in parts if p in held]
        if mine:
            getattr(raw, method)(*mine)

    await thread.call_thread(call)


def topic_names(config: AppConfig) -> dict[str, str]:
    """Names of every topic the worker reads or writes, by role."""
    g = config.kafka.group_id
    return {
        "input": config.kafka.input_topic,
        "detect": f"{g}-detect",
        "throttle": f"{g}-throttle",
        "alerts-in": f"{g}-occurrences",
        "alerts": config.kafka.alerts_topic,
        "dead": config.kafka.dead_letter_topic,
    }


STAGES = ("detect", "throttle", "alerts")


def changelog_names(config: AppConfig) -> tuple[str, ...]:
    """Names of the stage tables' changelog topics (Faust's ``<app>-<table>-changelog``)."""
    return tuple(f"{config.kafka.group_id}-{stage}-state-changelog" for stage in STAGES)


class BoundedStopWorker(faust.Worker):
    """A Faust worker that exits at most ``stop_timeout`` seconds after SIGTERM or SIGINT.

    Faust can hang in its shutdown (seen in ``Worker.stop_and_shutdown``); input not
    committed is re-read by the next owner, so a forced exit loses nothing.
    """

    stop_timeout = 25.0

    def _schedule_shutdown(self, signal: Any) -> None:
        if not self._signal_stop_time:
            timer = threading.Timer(self.stop_timeout, _forced_exit, (self.stop_timeout,))
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(signal)


def _forced_exit(after: float) -> None:
    print(
        f"aupwatch: worker did not stop within {after:.0f} s of the signal; exiting",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)


def faust_settings(config: AppConfig) -> dict[str, Any]:
    """Faust app settings: the tuned values of the measurements in the README."""
    k = config.kafka
    settings: dict[str, Any] = {
        "broker": [f"kafka://{s.strip()}" for s in k.bootstrap_servers.split(",")],
        "store": "memory://",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "topic_partitions": k.partitions,
        "topic_replication_factor": k.replication_factor,
        "topic_disable_leader": True,
        "web_enabled": False,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,
        "broker_max_poll_records": 10000,
        "stream_buffer_maxsize": 131072,
        "stream_wait_empty": False,
        "consumer_max_fetch_size": 8 * 1024 * 1024,
        "producer_linger": config.worker.producer_linger,
        "producer_max_batch_size": 262144,
        "producer_max_request_size": 8 * 1024 * 1024,
        "table_standby_replicas": 0,
        "datadir": config.worker.data_dir,
        "broker_session_timeout": config.worker.session_timeout,
        "broker_heartbeat_interval": 3.0,
    }
    creds = _credentials(config)
    if creds is not None:
        settings["broker_credentials"] = creds
    return settings


def _credentials(config: AppConfig) -> Any:
    # the same TLS context and SASL settings as the kafka-python clients
    return faust_credentials(config.kafka)
