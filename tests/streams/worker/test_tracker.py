"""Partitions whose next offset is not read for a while are sought again (no broker)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

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

    def assignment(self) -> set[TP]:
        return set(self.ends)


@dataclass
class Probe:
    """The broker probe: the first record at or after an offset, per partition."""

    first: dict[TP, int | None] = field(default_factory=dict)  # None: no answer
    calls: list[TP] = field(default_factory=list)
    during: Any = None  # called while the probe runs

    def __call__(self, _k: Any, topic: str, partition: int, offset: int, *_: Any) -> int | None:
        self.calls.append(TP(topic, partition))
        if self.during is not None:
            self.during()
        first = self.first[TP(topic, partition)]
        return None if first is None else max(first, offset)


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Probe:
    got = Probe()
    monkeypatch.setattr(tracker_module, "first_offset_from", got)
    return got


def tracker(ends: dict[TP, int], starts: dict[TP, int]) -> tuple[PartitionTracker, Consumer]:
    consumer = Consumer(ends)
    app = SimpleNamespace(rebalancing=False, in_recovery=False, consumer=consumer)
    metrics = SimpleNamespace(registry=CollectorRegistry())
    got = PartitionTracker(app, AppConfig(), NAMES, InputPartitions(lateness=0), metrics)
    for tp, offset in starts.items():
        got.offsets.start((tp.topic, tp.partition), offset)
    run(got, 0.0)  # the clocks start
    return got, consumer


def run(t: PartitionTracker, now: float) -> None:
    asyncio.run(t.reseek(now))


def seeks(t: PartitionTracker, reason: str) -> float | None:
    registry = t.metrics.registry
    return registry.get_sample_value("aupwatch_partition_seeks_total", {"reason": reason})


def test_a_partition_not_read_at_its_next_offset_with_records_there_is_sought_again(
    probe: Probe,
) -> None:
    tp = TP("logs", 0)
    probe.first[tp] = 927
    t, consumer = tracker({tp: 6700}, {tp: 927})
    run(t, 4.0)
    assert consumer.sought == []  # not stalled yet
    run(t, 5.0)
    assert consumer.sought == [{tp: 927}]
    run(t, 6.0)
    assert consumer.sought == [{tp: 927}]  # its clock restarted
    assert t.offsets.admit(("logs", 0), 927) == TAKE
    run(t, 7.0)
    run(t, 11.0)
    assert consumer.sought == [{tp: 927}]  # read at 7.0: stalled from 12.0 at the earliest
    run(t, 12.0)
    assert consumer.sought == [{tp: 927}, {tp: 928}]
    assert (seeks(t, "stalled"), seeks(t, "gap")) == (2, 0)


def test_partitions_read_to_their_end_are_never_sought(probe: Probe) -> None:
    quiet, markers = TP("g-al", 1), TP("logs", 2)
    probe.first[markers] = 12  # only a transaction marker at 11
    t, consumer = tracker({quiet: 40, markers: 12}, {quiet: 40, markers: 11})
    for now in (5.0, 10.0, 15.0):
        run(t, now)
    assert consumer.sought == []
    assert probe.calls == [markers]  # probed once while its offsets stay the same
    assert seeks(t, "stalled") == 0


def test_offsets_without_records_at_the_next_offset_are_skipped(probe: Probe) -> None:
    tp = TP("logs", 3)
    probe.first[tp] = 15
    t, consumer = tracker({tp: 30}, {tp: 10})
    run(t, 5.0)
    assert consumer.sought == [{tp: 15}]
    assert t.offsets.expect[("logs", 3)] == 15
    assert t.offsets.admit(("logs", 3), 15) == TAKE


def test_a_partition_read_while_the_broker_is_asked_is_left_alone(probe: Probe) -> None:
    tp = TP("logs", 0)
    probe.first[tp] = 10
    t, consumer = tracker({tp: 30}, {tp: 10})
    probe.during = lambda: t.offsets.admit(("logs", 0), 10)
    run(t, 5.0)
    assert consumer.sought == []
    assert t.offsets.expect[("logs", 0)] == 11


def test_no_answer_from_the_broker_seeks_nothing_and_asks_again(probe: Probe) -> None:
    tp = TP("logs", 0)
    probe.first[tp] = None
    t, consumer = tracker({tp: 30}, {tp: 10})
    run(t, 5.0)
    assert consumer.sought == []
    probe.first[tp] = 10
    run(t, 10.0)
    assert consumer.sought == [{tp: 10}]


def test_nothing_is_sought_while_faust_rebalances_or_recovers_nor_right_after(
    probe: Probe,
) -> None:
    tp = TP("logs", 0)
    probe.first[tp] = 0
    t, consumer = tracker({tp: 30}, {tp: 0})
    t.app.in_recovery = True
    run(t, 20.0)
    t.app.in_recovery = False
    run(t, 21.0)
    run(t, 25.0)
    assert consumer.sought == []
    run(t, 26.0)
    assert consumer.sought == [{tp: 0}]


def test_input_partitions_paused_or_held_for_backpressure_are_left_alone(
    probe: Probe,
) -> None:
    paused, held = TP("logs", 1), TP("logs", 2)
    probe.first.update({paused: 0, held: 0})
    t, consumer = tracker({paused: 30, held: 30}, {paused: 0, held: 0})
    t.flow.applied.add(1)
    t.flow.held[2] = []
    run(t, 5.0)
    assert consumer.sought == []


def test_a_partition_read_past_its_next_offset_is_sought_back_once(probe: Probe) -> None:
    tp = TP("g-detect", 2)
    probe.first[tp] = 27
    t, consumer = tracker({tp: 40}, {tp: 27})
    events = [
        SimpleNamespace(message=SimpleNamespace(tp=tp, topic=tp.topic, partition=2, offset=o))
        for o in (28, 29)
    ]
    assert asyncio.run(t.admit(events)) == []
    assert consumer.sought == [{tp: 27}]
    assert (seeks(t, "gap"), seeks(t, "stalled")) == (1, 0)
