"""Backpressure on a consumer: messages held back, partitions paused and resumed."""

from __future__ import annotations

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


class Consumer:
    """Records what the flow asks of Faust's consumer."""

    def __init__(self) -> None:
        self.paused: set[TP] = set()

    def pause_partitions(self, tps: set[TP]) -> None:
        self.paused |= set(tps)

    def resume_partitions(self, tps: set[TP]) -> None:
        self.paused -= set(tps)


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
    for ev in flow.gate(events):
        q, offset = ev.message.partition, ev.message.offset
        if offsets.admit((IN, q), offset, 0.0) == "take":
            kept.append(ev)
            n = ev.value.count(b"\n") + 1
            inputs.read(q, 0.0).see(1000 * q + offset)  # partition 1 runs ahead in time
            flow.ingested(q, 1000 * q + offset, n, n)
    return kept


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
    flow.review(decided=1002)  # partition 1 decided up to offset 2: 0 undecided
    assert not app.consumer.paused
    released = flow.release()
    assert [e.message.offset for e in released] == [3, 4, 5]
    assert not flow.release()
    # taken again through the gate and the offsets, before any later message; the third
    # would pass the limit again: held again
    assert [e.message.offset for e in take(flow, inputs, offsets, released)] == [3, 4]
    assert [e.message.offset for e in flow.held[1]] == [5]


def test_nothing_is_paused_or_resumed_while_faust_rebalances_or_recovers() -> None:
    flow, app, inputs, offsets = setup()
    take(flow, inputs, offsets, [event(0, 0, 10), event(1, 0, 10)])
    take(flow, inputs, offsets, [event(1, i, 40) for i in range(1, 6)])
    app.rebalancing = True
    app.consumer.paused = {TP(IN, 0), TP(IN, 1)}  # as Faust pauses them for recovery
    flow.review(decided=10**6)
    assert app.consumer.paused == {TP(IN, 0), TP(IN, 1)}
    assert not flow.release()
    app.rebalancing = False
    app.consumer.paused = set()  # Faust resumed every stream partition
    flow.ledger.ingested(1, 2000, 500)  # still far ahead: the pause must hold again
    flow.review(decided=0)
    assert app.consumer.paused == {TP(IN, 1)}


def test_a_worker_that_knows_no_decision_never_holds_anything_back() -> None:
    """Without a detect or throttle shard it cannot tell what is decided."""
    flow, app, inputs, offsets = setup()
    take(flow, inputs, offsets, [event(0, 0, 10), event(1, 0, 10)])
    take(flow, inputs, offsets, [event(1, i, 40) for i in range(1, 6)])
    flow.review(decided=None)
    assert not app.consumer.paused and flow.ledger.undecided(1) == 0
    assert [e.message.offset for e in flow.release()] == [3, 4, 5]


def test_a_rebalance_forgets_held_messages_and_pauses() -> None:
    flow, _, inputs, offsets = setup()
    take(flow, inputs, offsets, [event(0, 0, 10), event(1, 0, 10)])
    take(flow, inputs, offsets, [event(1, i, 40) for i in range(1, 6)])
    flow.restart({0, 1})  # Faust delivers them again from the committed offsets
    assert not flow.held and not flow.policy.paused and flow.ledger.undecided(1) == 0
    flow.review(decided=None)
    assert not flow.release()


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
