"""Backpressure on a consumer: messages held back, partitions paused and resumed."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from aupwatch.streams.worker.flow import FlowMetrics, InputFlow, reread_records
from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.offsets import Offsets

IN, DETECT = "logs", "g-detect"


class Raw:
    """The aiokafka consumer in Faust's consumer thread: what is paused there."""

    def __init__(self) -> None:
        self.assigned = {TP(IN, 0), TP(IN, 1)}
        self.paused: set[TP] = set()
        self.calls = 0

    def assignment(self) -> set[TP]:
        return self.assigned

    def pause(self, *tps: TP) -> None:
        self.calls += 1
        self.paused |= {TP(*tp) for tp in tps}

    def resume(self, *tps: TP) -> None:
        self.calls += 1
        self.paused -= {TP(*tp) for tp in tps}


class Thread:
    """Faust's consumer thread: runs a call on its consumer."""

    def __init__(self) -> None:
        self.raw = Raw()

    def _ensure_consumer(self) -> Raw:
        return self.raw

    async def call_thread(self, fn: Any, *args: Any) -> Any:
        return fn(*args)


class Consumer:
    """Faust's consumer; what is paused is read from aiokafka's."""

    def __init__(self) -> None:
        self._thread = Thread()

    @property
    def paused(self) -> set[TP]:
        return self._thread.raw.paused


def event(q: int, offset: int, lines: int, topic: str = IN) -> Any:
    value = b"\n".join(b'{"x":%d}' % i for i in range(lines))
    msg = SimpleNamespace(topic=topic, partition=q, offset=offset, headers=None)
    return SimpleNamespace(message=msg, value=value)


def setup(limit: int = 100) -> tuple[InputFlow, Any, InputPartitions, Offsets]:
    app = SimpleNamespace(rebalancing=False, in_recovery=False, consumer=Consumer())
    inputs = InputPartitions(lateness=0)
    inputs.assign({0, 1}, 0.0)
    offsets = Offsets()
    for q in (0, 1):
        offsets.start((IN, q), 0)
    registry = CollectorRegistry()
    flow = InputFlow(app, IN, DETECT, inputs, limit, FlowMetrics(registry))
    return flow, app, inputs, offsets


def take(flow: InputFlow, inputs: InputPartitions, offsets: Offsets, events: list[Any]) -> list:
    """What the tracker and ingest do with a batch: gate, admit, note times and records."""
    kept = []
    gated = flow.gate(events)
    asyncio.run(flow.apply())
    for ev in gated:
        q, offset = ev.message.partition, ev.message.offset
        if offsets.admit((IN, q), offset) == "take":
            kept.append(ev)
            n = ev.value.count(b"\n") + 1
            inputs.read(q, 0.0).see(1000 * q + offset)  # partition 1 runs ahead in time
            flow.ingested(q, 1000 * q + offset, n, n)
    return kept


def review(flow: InputFlow, decided: int | None) -> None:
    asyncio.run(flow.review(decided))


def test_a_leading_partition_past_the_limit_is_paused_and_its_messages_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow, app, inputs, offsets = setup()
    caplog.set_level(logging.INFO)
    take(flow, inputs, offsets, [event(0, 0, 10), event(1, 0, 10)])
    batch = [event(1, i, 40) for i in range(1, 6)] + [event(0, 1, 40)]
    kept = take(flow, inputs, offsets, batch)
    # 10 + 40 + 40 = 90 taken, the next 40 would pass 100: partition 1 pauses there
    assert [(e.message.partition, e.message.offset) for e in kept] == [(1, 1), (1, 2), (0, 1)]
    assert app.consumer.paused == {TP(IN, 1)}
    assert offsets.expect[(IN, 1)] == 3
    assert [e.message.offset for e in flow.held[1]] == [3, 4, 5]
    assert [r.message for r in caplog.records].count(
        "input partition 1 paused: 130 records undecided (max_undecided 100)"
    ) == 1


def test_a_resumed_partition_gets_its_held_messages_back_in_order() -> None:
    flow, app, inputs, offsets = setup()
    take(flow, inputs, offsets, [event(0, 0, 10), event(1, 0, 10)])
    take(flow, inputs, offsets, [event(1, i, 40) for i in range(1, 6)])
    assert app.consumer.paused == {TP(IN, 1)}
    assert not flow.release()
    review(flow, decided=1002)  # partition 1 decided up to offset 2: 0 undecided
    assert not app.consumer.paused
    released = flow.release()
    assert [e.message.offset for e in released] == [3, 4, 5]
    assert not flow.release()
    # taken again through the gate and the offsets, before any later message; the third
    # would pass the limit again: held again
    assert [e.message.offset for e in take(flow, inputs, offsets, released)] == [3, 4]
    assert [e.message.offset for e in flow.held[1]] == [5]


def test_the_slowest_partition_pauses_on_ready_records_until_they_are_decided() -> None:
    flow, app, inputs, offsets = setup()
    take(flow, inputs, offsets, [event(1, 0, 10), event(0, 0, 10)])
    kept = take(flow, inputs, offsets, [event(0, i, 40) for i in range(1, 6)])
    # partition 0 is the slowest, but what it takes is at or below the horizon: ready
    assert [e.message.offset for e in kept] == [1, 2]
    assert app.consumer.paused == {TP(IN, 0)}
    assert flow.states()[0].ready == 90
    review(flow, decided=0)  # 80 ready still: more than half the limit
    assert app.consumer.paused == {TP(IN, 0)}
    review(flow, decided=2)
    assert not app.consumer.paused
    assert [e.message.offset for e in flow.release()] == [3, 4, 5]


def test_nothing_is_paused_or_resumed_while_faust_rebalances_or_recovers() -> None:
    flow, app, inputs, offsets = setup()
    take(flow, inputs, offsets, [event(0, 0, 10), event(1, 0, 10)])
    calls = app.consumer._thread.raw.calls
    app.rebalancing = True
    take(flow, inputs, offsets, [event(1, i, 40) for i in range(1, 6)])
    review(flow, decided=0)
    assert flow.policy.paused == {1} and [e.message.offset for e in flow.held[1]] == [3, 4, 5]
    assert app.consumer._thread.raw.calls == calls  # the consumer left alone
    assert not app.consumer.paused and not flow.release()
    app.rebalancing = False
    review(flow, decided=0)
    assert app.consumer.paused == {TP(IN, 1)}  # paused in the rebalance, applied after it
    assert not flow.release()
    review(flow, decided=10**6)
    assert not app.consumer.paused
    assert [e.message.offset for e in flow.release()] == [3, 4, 5]


def test_a_worker_that_knows_no_decision_never_holds_anything_back() -> None:
    """Without a detect or throttle shard it cannot tell what is decided."""
    flow, app, inputs, offsets = setup()
    take(flow, inputs, offsets, [event(0, 0, 10), event(1, 0, 10)])
    take(flow, inputs, offsets, [event(1, i, 40) for i in range(1, 6)])
    review(flow, decided=None)
    assert not app.consumer.paused and flow.ledger.undecided(1) == 0
    assert [e.message.offset for e in flow.release()] == [3, 4, 5]


def test_a_rebalance_forgets_held_messages_and_pauses() -> None:
    flow, app, inputs, offsets = setup()
    take(flow, inputs, offsets, [event(0, 0, 10), event(1, 0, 10)])
    take(flow, inputs, offsets, [event(1, i, 40) for i in range(1, 6)])
    app.consumer._thread.raw.paused = set()  # the new assignment's states are unpaused
    flow.restart({0, 1})  # Faust delivers them again from the committed offsets
    assert not flow.held and not flow.policy.paused and flow.ledger.undecided(1) == 0
    assert not flow.applied
    review(flow, decided=None)
    assert not flow.release() and not app.consumer.paused


def test_partitions_not_assigned_to_the_consumer_are_never_paused_there() -> None:
    flow, app, inputs, offsets = setup()
    take(flow, inputs, offsets, [event(0, 0, 10), event(1, 0, 10)])
    app.consumer._thread.raw.assigned = {TP(IN, 0)}  # partition 1 went in a rebalance
    take(flow, inputs, offsets, [event(1, i, 40) for i in range(1, 6)])
    assert flow.policy.paused == {1} and not app.consumer.paused


def test_records_read_again_count_each_record_once_per_input_partition() -> None:
    items = [
        [1, 2, "e1", "U|a|s", [], 0, "i0", [7, 1, 0]],
        [1, 2, "e1", "K|k", [], 0, "i0", [7, 1, 1]],  # the same record, another item
        [1, 2, "e2", "K|k", [], 0, "i1", [3, 2, 0]],
    ]
    detect = event(0, 0, 0, topic=DETECT)
    detect.value = orjson.dumps({"m": [], "x": items})
    pending = {
        (IN, 0): [(7, event(0, 7, 2))],  # lines 1 and 2 of offset 7: line 1 is also above
        (DETECT, 0): [(0, detect)],
    }
    assert reread_records(pending, IN, DETECT) == {0: 2, 1: 1}


def test_lines_read_are_counted_per_input_partition() -> None:
    registry = CollectorRegistry()
    metrics = FlowMetrics(registry)
    for q, lines in ((0, 3), (1, 5), (0, 4), (1, 0)):
        metrics.lines_read(q, lines)
    name = "aupwatch_input_records_read_total"
    assert registry.get_sample_value(name, {"partition": "0"}) == 7
    assert registry.get_sample_value(name, {"partition": "1"}) == 5
