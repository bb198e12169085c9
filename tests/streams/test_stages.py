"""Pure bookkeeping of the worker's stages (no broker)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streams.stages import OrderedAcks


def events(topic: str, partition: int, offsets: range) -> list[Any]:
    return [
        SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition, offset=o))
        for o in offsets
    ]


def offsets(evs: list[Any]) -> list[tuple[int, int]]:
    return [(e.message.partition, e.message.offset) for e in evs]


def test_acks_wait_for_every_older_message_of_their_partition() -> None:
    acks = OrderedAcks()
    p0, p1 = events("t", 0, range(5)), events("t", 1, range(3))
    acks.taken(p0)
    acks.taken(p1)
    acks.decide([p0[3], p0[4], p1[0]])
    assert offsets(acks.release()) == [(1, 0)]  # p0's 0..2 undecided hold back 3 and 4
    acks.decide([p0[1], p0[0]])
    assert offsets(acks.release()) == [(0, 0), (0, 1)]
    acks.decide([p0[2]])
    assert offsets(acks.release()) == [(0, 2), (0, 3), (0, 4)]
    assert acks.release() == []


def test_forgotten_partitions_release_nothing() -> None:
    acks = OrderedAcks()
    p0, p1 = events("t", 0, range(2)), events("u", 0, range(2))
    acks.taken(p0 + p1)
    acks.decide(p0 + p1)
    acks.forget({("t", 0)})
    assert [(e.message.topic, e.message.offset) for e in acks.release()] == [("u", 0), ("u", 1)]
    assert not acks.decided
