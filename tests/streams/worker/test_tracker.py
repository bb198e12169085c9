"""Partitions assigned but never read are sought again (no broker)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from aupwatch.streams.config import AppConfig
from aupwatch.streams.worker import tracker as tracker_module
from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.offsets import TAKE
from aupwatch.streams.worker.tracker import PartitionTracker

NAMES = {"input": "logs", "detect": "g-detect", "throttle": "g-throttle", "alerts-in": "g-al"}


class Consumer:
    """Faust's consumer: end offsets and seeks."""

    def __init__(self, ends: dict[TP, int]) -> None:
        self.ends = ends
        self.sought: list[dict[TP, int]] = []

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps if tp in self.ends}

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.sought.append(dict(partitions))


def tracker(ends: dict[TP, int], starts: dict[TP, int]) -> tuple[PartitionTracker, Consumer]:
    consumer = Consumer(ends)
    app = SimpleNamespace(rebalancing=False, in_recovery=False, consumer=consumer)
    got = PartitionTracker(app, AppConfig(), NAMES, InputPartitions(lateness=0))
    for tp, offset in starts.items():
        got.offsets.start((tp.topic, tp.partition), offset, 0.0)
    return got, consumer


def run(t: PartitionTracker, now: float) -> None:
    asyncio.run(t.reseek_unread(now))


@pytest.fixture
def first_record(monkeypatch: pytest.MonkeyPatch) -> dict[TP, int | None]:
    """The first record at or after an offset, per partition, as the broker probe says."""
    firsts: dict[TP, int | None] = {}

    def probe(_k: Any, topic: str, partition: int, offset: int, *_: Any) -> int | None:
        return firsts[TP(topic, partition)]

    monkeypatch.setattr(tracker_module, "first_offset_from", probe)
    return firsts


def test_a_started_partition_with_records_but_none_read_is_sought_again(
    first_record: dict[TP, int | None],
) -> None:
    tp = TP("logs", 0)
    first_record[tp] = 927
    t, consumer = tracker({tp: 6700}, {tp: 927})
    run(t, 4.0)
    assert consumer.sought == []  # not overdue yet
    run(t, 5.0)
    assert consumer.sought == [{tp: 927}]
    run(t, 6.0)
    assert consumer.sought == [{tp: 927}]  # its clock restarted
    assert t.offsets.admit(("logs", 0), 927, 7.0) == TAKE
    run(t, 100.0)
    assert consumer.sought == [{tp: 927}]  # read now: never again


def test_a_started_partition_at_its_end_is_read_and_never_sought(
    first_record: dict[TP, int | None],
) -> None:
    quiet, markers = TP("g-al", 1), TP("logs", 2)
    first_record[markers] = 12  # only a transaction marker at 11
    t, consumer = tracker({quiet: 40, markers: 12}, {quiet: 40, markers: 11})
    run(t, 5.0)
    run(t, 50.0)
    assert consumer.sought == []
    assert not t.offsets.unread


def test_offsets_without_records_at_the_start_are_skipped(
    first_record: dict[TP, int | None],
) -> None:
    tp = TP("logs", 3)
    first_record[tp] = 15
    t, consumer = tracker({tp: 30}, {tp: 10})
    run(t, 5.0)
    assert consumer.sought == [{tp: 15}]
    assert t.offsets.expect[("logs", 3)] == 15
    assert t.offsets.overdue(10.0) == {("logs", 3): 15}  # retried like any seek back


def test_no_answer_from_the_broker_seeks_nothing_and_asks_again(
    first_record: dict[TP, int | None],
) -> None:
    tp = TP("logs", 0)
    first_record[tp] = None
    t, consumer = tracker({tp: 30}, {tp: 10})
    run(t, 5.0)
    assert consumer.sought == []
    first_record[tp] = 10
    run(t, 10.0)
    assert consumer.sought == [{tp: 10}]


def test_nothing_is_sought_while_faust_rebalances_or_recovers_nor_right_after(
    first_record: dict[TP, int | None],
) -> None:
    tp = TP("logs", 0)
    first_record[tp] = 0
    t, consumer = tracker({tp: 30}, {tp: 0})
    t.app.in_recovery = True
    run(t, 20.0)
    t.app.in_recovery = False
    run(t, 24.0)
    assert consumer.sought == []
    run(t, 25.0)
    assert consumer.sought == [{tp: 0}]


def test_input_partitions_paused_for_backpressure_are_left_alone(
    first_record: dict[TP, int | None],
) -> None:
    tp = TP("logs", 1)
    first_record[tp] = 0
    t, consumer = tracker({tp: 30}, {tp: 0})
    t.flow.applied.add(1)
    run(t, 5.0)
    assert consumer.sought == []
