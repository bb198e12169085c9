"""The latest version of each alert already on the alerts topic.

A worker that restarts, or takes over a partition of the alerts stage, re-applies the
occurrences decided since the last checkpoint and would emit alert versions the topic
already holds, counts going down for a reader that follows it. It reads the compacted
alerts topic first and emits only versions with a larger count.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import orjson

from aupwatch.schemas.records import parse_ts
from aupwatch.streams.config import KafkaSettings
from aupwatch.streams.kafka_io import client_settings


class Emitted(NamedTuple):
    """The latest version of one alert on the alerts topic.

    Attributes:
        version: Its count (an alert's versions are numbered by their count).
        ts: Its event time (microseconds): once the alerts stage is past ``ts`` plus the
            dedup window, no occurrence can fold into it again.
    """

    version: int
    ts: int


def read_emitted(k: KafkaSettings, topic: str, timeout: float = 60.0) -> dict[str, Emitted]:
    """Reads the alerts topic to its current end. Blocking: run it in a thread.

    Args:
        k: Kafka settings.
        topic: The alerts topic.
        timeout: Seconds after which what was read so far is returned.

    Returns:
        The latest count and time of every alert id.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **client_settings(k), group_id=None, enable_auto_commit=False, consumer_timeout_ms=1000
    )
    out: dict[str, Emitted] = {}
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:
            return out
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                for msg in records:
                    if msg.value is None:
                        continue
                    alert = orjson.loads(msg.value)
                    old = out.get(alert["alert_id"])
                    if old is None or alert["count"] > old.version:
                        out[alert["alert_id"]] = Emitted(alert["count"], parse_ts(alert["ts"]))
    finally:
        consumer.close()
    return out
