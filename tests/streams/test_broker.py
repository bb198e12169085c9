"""The local broker supports what Faust's exactly-once mode and the replay producer rely on.

(1) kafka-python's idempotent producer writes to a partitioned topic and an aiokafka consumer
group reads every record back; (2) aiokafka transactions: committed records (and offsets sent
to the transaction) are visible to read_committed consumers, aborted ones are not.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from kafka import KafkaProducer

from tests.kafka_broker import admin_client, transactional_producer, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

N_MESSAGES = 1_000
N_KEYS = 50
PARTITIONS = 4


async def _drain(consumer: AIOKafkaConsumer, want: int, deadline_s: float) -> list:
    """Fetch until ``want`` records arrived (or the deadline passed), then a little more."""
    records: list = []
    deadline = time.monotonic() + deadline_s
    while len(records) < want and time.monotonic() < deadline:
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(batch)
    # One more short fetch so that duplicates past the expected count would be caught.
    for batch in (await consumer.getmany(timeout_ms=300)).values():
        records.extend(batch)
    return records


async def _read_to_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> list:
    """Read the assigned partitions up to their end offsets (LSO under read_committed)."""
    await consumer.seek_to_beginning(*partitions)
    end = await consumer.end_offsets(partitions)
    records: list = []
    deadline = time.monotonic() + 30
    while any(await _positions_behind(consumer, end)):
        assert time.monotonic() < deadline, f"did not reach end offsets {end}"
        for batch in (await consumer.getmany(*partitions, timeout_ms=500)).values():
            records.extend(batch)
    return records


async def _positions_behind(consumer: AIOKafkaConsumer, end: dict) -> list[bool]:
    return [await consumer.position(tp) < off for tp, off in end.items()]


def test_idempotent_producer_and_consumer_group(kafka_bootstrap, topic_factory):
    topic = topic_factory("idempotent", partitions=PARTITIONS)
    expected = [(f"key-{i % N_KEYS}".encode(), f"value-{i}".encode()) for i in range(N_MESSAGES)]

    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        client_id=unique_name("idempotent-producer"),
    )
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in expected]
        producer.flush(timeout=60)
        metadata = [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)

    written = Counter(m.partition for m in metadata)
    assert sum(written.values()) == N_MESSAGES
    assert set(written) == set(range(PARTITIONS)), f"keys did not spread over partitions: {written}"

    # The broker tracked one idempotent producer id per partition, with sequence numbers that
    # count exactly the records written there (no gaps, no retried duplicates).
    with admin_client(kafka_bootstrap) as admin:
        states = admin.describe_producers([TopicPartition(topic, p) for p in range(PARTITIONS)])
    producer_ids = set()
    for tp, state in states.items():
        assert len(state.active_producers) == 1, (tp, state)
        active = state.active_producers[0]
        assert active.producer_id >= 0
        assert active.last_sequence == written[tp.partition] - 1, (tp, active)
        producer_ids.add(active.producer_id)
    assert len(producer_ids) == 1

    group = unique_name("idempotent-group")

    async def consume() -> tuple[list, set, dict]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            records = await _drain(consumer, N_MESSAGES, deadline_s=60)
            assignment = set(consumer.assignment())
            await consumer.commit()
            committed = {tp: await consumer.committed(tp) for tp in assignment}
        finally:
            await consumer.stop()
        return records, assignment, committed

    records, assignment, committed = asyncio.run(consume())

    assert assignment == {TopicPartition(topic, p) for p in range(PARTITIONS)}
    got = [(r.key, r.value) for r in records]
    assert len(got) == N_MESSAGES, f"read {len(got)} records, expected {N_MESSAGES}"
    assert sorted(got) == sorted(expected)
    # Per-key order is preserved and each key stays in one partition.
    by_key = defaultdict(list)
    partitions_of_key = defaultdict(set)
    for r in records:
        by_key[r.key].append(int(r.value.split(b"-")[1]))
        partitions_of_key[r.key].add(r.partition)
    assert all(v == sorted(v) for v in by_key.values())
    assert all(len(p) == 1 for p in partitions_of_key.values())
    # The group's committed offsets (stored by the group coordinator) cover every record.
    assert {tp.partition: off for tp, off in committed.items()} == dict(written)


def test_transactions_read_committed(kafka_bootstrap, topic_factory):
    source = topic_factory("txn-source", partitions=2)
    sink = topic_factory("txn-sink", partitions=2)
    group = unique_name("txn-group")

    async def scenario() -> tuple[list, list, dict]:
        producer = transactional_producer(kafka_bootstrap, "txn-producer")
        await producer.start()
        try:
            # Input for the consume-transform-produce step.
            async with producer.transaction():
                for i in range(10):
                    await producer.send(source, key=f"k{i}".encode(), value=f"in-{i}".encode())

            # Aborted: written to the log, then rolled back.
            await producer.begin_transaction()
            for i in range(20):
                await producer.send(sink, key=f"k{i}".encode(), value=f"aborted-{i}".encode())
            await producer.abort_transaction()

            # Committed together with the source offsets, as Faust's exactly-once mode does.
            source_tps = [TopicPartition(source, p) for p in range(2)]
            async with producer.transaction():
                for i in range(20):
                    await producer.send(sink, key=f"k{i}".encode(), value=f"committed-{i}".encode())
                await producer.flush()
                # While this transaction is open its records sit above the last stable offset.
                sink_tps = [TopicPartition(sink, p) for p in range(2)]
                open_hw = await _end_offsets(kafka_bootstrap, sink_tps)
                open_lso = await _end_offsets(kafka_bootstrap, sink_tps, "read_committed")
                assert sum(open_hw.values()) - sum(open_lso.values()) >= 20, (open_hw, open_lso)
                source_end = await _settled_end_offsets(kafka_bootstrap, source_tps)
                await producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(off, "") for tp, off in source_end.items()}, group
                )
        finally:
            await producer.stop()

        await _settled_end_offsets(kafka_bootstrap, sink_tps)
        results = []
        for isolation in ("read_committed", "read_uncommitted"):
            consumer = AIOKafkaConsumer(
                bootstrap_servers=kafka_bootstrap,
                isolation_level=isolation,
                enable_auto_commit=False,
            )
            await consumer.start()
            try:
                consumer.assign(sink_tps)
                results.append(await _read_to_end(consumer, sink_tps))
            finally:
                await consumer.stop()

        group_consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
        )
        await group_consumer.start()
        try:
            committed = {tp: await group_consumer.committed(tp) for tp in source_tps}
        finally:
            await group_consumer.stop()
        assert committed == source_end
        return results[0], results[1], source_end

    committed_view, uncommitted_view, source_end = asyncio.run(scenario())

    # 10 records plus one commit marker per partition that received records.
    assert 11 <= sum(source_end.values()) <= 12
    committed_values = sorted(r.value for r in committed_view)
    assert committed_values == sorted(f"committed-{i}".encode() for i in range(20))
    # The aborted records really reached the log: only the isolation level hides them.
    uncommitted_values = Counter(r.value.split(b"-")[0] for r in uncommitted_view)
    assert uncommitted_values == {b"aborted": 20, b"committed": 20}


async def _end_offsets(
    bootstrap: str, tps: list[TopicPartition], isolation: str = "read_uncommitted"
) -> dict:
    """High watermarks (read_uncommitted) or last stable offsets (read_committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
    await consumer.start()
    try:
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def _settled_end_offsets(bootstrap: str, tps: list[TopicPartition]) -> dict:
    """End offsets once no transaction is open on ``tps`` (last stable offset == high watermark).

    A commit returns before the coordinator has written the commit markers, so the last stable
    offset can lag for a moment after ``commit_transaction``.
    """
    deadline = time.monotonic() + 30
    while True:
        hw = await _end_offsets(bootstrap, tps)
        lso = await _end_offsets(bootstrap, tps, "read_committed")
        if lso == hw:
            return hw
        assert time.monotonic() < deadline, f"transaction markers not written: {lso=} {hw=}"
        await asyncio.sleep(0.2)
