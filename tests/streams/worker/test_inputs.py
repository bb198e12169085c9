"""The input partitions' clocks and idleness (pure logic, no broker)."""

from __future__ import annotations

import pytest

from aupwatch.streams.worker.inputs import InputPartitions

LATENESS = 30_000_000  # 30 s in microseconds
IDLE_AFTER = 10.0


def held(*partitions: int, at: float = 0.0) -> InputPartitions:
    inputs = InputPartitions(LATENESS)
    inputs.assign(set(partitions), at)
    return inputs


def test_a_read_partition_promises_max_time_minus_lateness() -> None:
    inputs = held(0)
    clock = inputs.read(0, now=1.0)
    assert clock.see(100_000_000) is False
    assert inputs.marker(0, False) == ["i0", 70_000_000, False]
    assert inputs.marker(0, True) == ["i0", 100_000_000, True]


def test_an_unread_partition_promises_nothing() -> None:
    assert held(3).marker(3, False) == ["i3", None, False]


# (caught up, seconds since the last read or the assignment, idle?)
TICK_CASES = [
    pytest.param({0}, IDLE_AFTER, True, id="caught-up-and-quiet"),
    pytest.param({0}, IDLE_AFTER - 0.1, False, id="caught-up-but-read-lately"),
    pytest.param(set(), 3600.0, False, id="quiet-but-backlog-left"),
]


@pytest.mark.parametrize(("caught_up", "quiet", "idle"), TICK_CASES)
def test_tick_judges_idleness(caught_up: set[int], quiet: float, idle: bool) -> None:
    inputs = held(0)
    inputs.read(0, now=5.0).see(100_000_000)
    marks = inputs.tick(caught_up, now=5.0 + quiet, idle_after=IDLE_AFTER)
    assert marks == [inputs.marker(0, idle)]
    assert inputs.idle == ({0} if idle else set())


def test_a_partition_never_read_waits_from_its_assignment() -> None:
    inputs = held(0, at=100.0)
    assert inputs.tick({0}, now=105.0, idle_after=IDLE_AFTER) == [["i0", None, False]]
    assert inputs.tick({0}, now=110.0, idle_after=IDLE_AFTER) == [["i0", None, True]]


def test_reassignment_keeps_the_wait_of_partitions_still_held() -> None:
    inputs = held(0, at=0.0)
    inputs.assign({0, 1}, now=8.0)
    marks = inputs.tick({0, 1}, now=10.0, idle_after=IDLE_AFTER)
    assert sorted(marks) == [["i0", None, True], ["i1", None, False]]


def test_idleness_ends_when_records_come_again() -> None:
    inputs = held(0)
    inputs.tick({0}, now=20.0, idle_after=IDLE_AFTER)
    assert inputs.idle == {0}
    inputs.read(0, now=21.0)
    assert inputs.tick({0}, now=22.0, idle_after=IDLE_AFTER) == [["i0", None, False]]
    assert inputs.idle == set()


def test_waking_ends_idleness_of_partitions_with_records_waiting() -> None:
    inputs = held(0, 1, 2)
    for q in (0, 1, 2):
        inputs.read(q, now=0.0).see(50_000_000 + q)
    inputs.tick({0, 1, 2}, now=20.0, idle_after=IDLE_AFTER)
    assert inputs.idle == {0, 1, 2}
    # records reached 0 (just read) and 1 (still at the broker); 2 stays quiet
    marks = inputs.woken({0}, caught_up={0, 2})
    assert marks == [["i1", 50_000_001 - LATENESS, False]]
    assert inputs.idle == {2}


def test_revoke_forgets_everything_of_a_partition() -> None:
    inputs = held(0, 1)
    inputs.read(0, now=0.0).see(100_000_000)
    inputs.tick({0, 1}, now=20.0, idle_after=IDLE_AFTER)
    inputs.revoke(0)
    assert inputs.idle == {1}
    assert inputs.marker(0, False) == ["i0", None, False]
    assert inputs.tick({0, 1}, now=40.0, idle_after=IDLE_AFTER) == [["i1", None, True]]
