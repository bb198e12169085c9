"""The offset probe against the real broker: offsets without records are told apart."""

from __future__ import annotations

import asyncio

import pytest

from aupwatch.streams import kafka_io
from aupwatch.streams.config import KafkaSettings
from aupwatch.streams.kafka_io import first_offset_from
from tests.kafka_broker import transactional_producer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_first_offset_from_skips_transaction_markers(kafka_bootstrap, topic_factory):
    topic = topic_factory("probe", partitions=1)

    async def write() -> None:
        producer = transactional_producer(kafka_bootstrap, "probe-txn")
        await producer.start()
        try:
            for n in (3, 2):  # offsets 0-2, marker 3; offsets 4-5, marker 6
                async with producer.transaction():
                    for i in range(n):
                        await producer.send(topic, value=b"x%d" % i, partition=0)
        finally:
            await producer.stop()

    asyncio.run(write())
    k = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    assert [first_offset_from(k, topic, 0, o) for o in (0, 2, 3, 4)] == [0, 2, 4, 4]
    assert first_offset_from(k, topic, 0, 6, timeout=1.0) is None
    # up to an end offset: a marker alone holds no record (the answer is >= end)
    assert first_offset_from(k, topic, 0, 3, end=4) == 4
    assert first_offset_from(k, topic, 0, 3, end=5) == 4
    assert first_offset_from(k, topic, 0, 6, end=7) == 7


class _SlowMetadataAdmin:
    """Describes topics without partitions until the third call, as right after a create."""

    def __init__(self) -> None:
        self.calls = 0

    def describe_topics(self, topics: list[str]) -> list[dict[str, object]]:
        self.calls += 1
        parts = [0, 1] if self.calls >= 3 else []
        return [{"topic": t, "partitions": parts} for t in topics]


def test_partition_counts_wait_for_a_created_topic_to_show_its_partitions():
    admin = _SlowMetadataAdmin()
    assert kafka_io._partition_counts(admin, ["a", "b"]) == {"a": 2, "b": 2}
    assert admin.calls == 3


def test_partition_counts_give_up_after_the_wait():
    admin = _SlowMetadataAdmin()
    assert kafka_io._partition_counts(admin, ["a"], wait_s=-1.0) == {"a": 0}
    assert admin.calls == 1
