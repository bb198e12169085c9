"""The offset probe against the real broker: offsets without records are told apart."""

from __future__ import annotations

import asyncio

import pytest

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
