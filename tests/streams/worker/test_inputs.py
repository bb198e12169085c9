"""The input partitions' clocks, open replays and idleness (pure logic, no broker)."""

from __future__ import annotations

import pytest

from aupwatch.streams.markers import BEGIN, END, MARK, Marker
from aupwatch.streams.worker.inputs import InputPartitions

LATENESS = 30_000_000  # 30 s in microseconds
IDLE_AFTER = 10.0
END_AT = 42  # the end offset a caught-up partition was read to


def held(*partitions: int, at: float = 0.0) -> InputPartitions:
    inputs = InputPartitions(LATENESS, replay_timeout=60.0)
    inputs.assign(set(partitions), at)
    return inputs


def ends(*partitions: int) -> dict[int, int]:
    return dict.fromkeys(partitions, END_AT)


def test_a_read_partition_promises_max_time_minus_lateness() -> None:
    inputs = held(0)
    clock = inputs.read(0, now=1.0)
    assert clock.see(100_000_000) is False
    assert inputs.marker(0, False) == ["i0", 70_000_000, False, None]
    # idle: the same promise, flushable by lateness, with the offset it was read to
    assert inputs.marker(0, True, END_AT) == ["i0", 70_000_000, True, END_AT]


def test_an_unread_partition_promises_nothing() -> None:
    assert held(3).marker(3, False) == ["i3", None, False, None]


# (caught up, seconds since the last read or the assignment, idle?)
TICK_CASES = [
    pytest.param(ends(0), IDLE_AFTER, True, id="caught-up-and-quiet"),
    pytest.param(ends(0), IDLE_AFTER - 0.1, False, id="caught-up-but-read-lately"),
    pytest.param({}, 3600.0, False, id="quiet-but-backlog-left"),
]


@pytest.mark.parametrize(("caught_up", "quiet", "idle"), TICK_CASES)
def test_tick_judges_idleness(caught_up: dict[int, int], quiet: float, idle: bool) -> None:
    inputs = held(0)
    inputs.read(0, now=5.0).see(100_000_000)
    marks = inputs.tick(caught_up, now=5.0 + quiet, idle_after=IDLE_AFTER)
    assert marks == [inputs.marker(0, idle, END_AT)]
    assert inputs.idle == ({0} if idle else set())


def test_a_partition_never_read_waits_from_its_assignment() -> None:
    inputs = held(0, at=100.0)
    assert inputs.tick(ends(0), now=105.0, idle_after=IDLE_AFTER) == [["i0", None, False, None]]
    assert inputs.tick(ends(0), now=110.0, idle_after=IDLE_AFTER) == [["i0", None, True, END_AT]]


def test_reassignment_keeps_the_wait_of_partitions_still_held() -> None:
    inputs = held(0, at=0.0)
    inputs.assign({0, 1}, now=8.0)
    marks = inputs.tick(ends(0, 1), now=10.0, idle_after=IDLE_AFTER)
    assert sorted(marks) == [["i0", None, True, END_AT], ["i1", None, False, None]]


def test_idleness_ends_when_records_come_again() -> None:
    inputs = held(0)
    inputs.tick(ends(0), now=20.0, idle_after=IDLE_AFTER)
    assert inputs.idle == {0}
    inputs.read(0, now=21.0)
    assert inputs.tick(ends(0), now=22.0, idle_after=IDLE_AFTER) == [["i0", None, False, None]]
    assert inputs.idle == set()


def test_waking_ends_idleness_of_partitions_with_records_waiting() -> None:
    inputs = held(0, 1, 2)
    for q in (0, 1, 2):
        inputs.read(q, now=0.0).see(50_000_000 + q)
    inputs.tick(ends(0, 1, 2), now=20.0, idle_after=IDLE_AFTER)
    assert inputs.idle == {0, 1, 2}
    # records reached 0 (just read) and 1 (still at the broker); 2 stays quiet
    marks = inputs.woken({0}, caught_up=ends(0, 2))
    assert marks == [["i1", 50_000_001 - LATENESS, False, None]]
    assert inputs.idle == {2}


def test_revoke_forgets_everything_of_a_partition() -> None:
    inputs = held(0, 1)
    inputs.read(0, now=0.0).see(100_000_000)
    inputs.control(0, Marker(BEGIN, "p", None), now=0.0)
    inputs.tick(ends(0, 1), now=20.0, idle_after=IDLE_AFTER)
    inputs.revoke(0)
    assert inputs.idle == {1}
    assert inputs.marker(0, False) == ["i0", None, False, None]
    assert inputs.replays == {}
    assert inputs.tick(ends(0, 1), now=40.0, idle_after=IDLE_AFTER) == [["i1", None, True, END_AT]]


def test_an_open_replay_holds_its_partition_until_its_end_marker() -> None:
    inputs = held(0)
    inputs.control(0, Marker(BEGIN, "p", None), now=0.0)
    inputs.control(0, Marker(MARK, "p", 100_000_000), now=1.0)
    # silent for far longer than the idle timeout, but the replay promised more
    assert inputs.tick(ends(0), now=30.0, idle_after=IDLE_AFTER) == [
        ["i0", 70_000_000, False, None]
    ]
    inputs.control(0, Marker(END, "p", 120_000_000), now=31.0)
    # ended: idle at once, flushable to the largest time the replay sent
    assert inputs.tick(ends(0), now=31.5, idle_after=IDLE_AFTER) == [
        ["i0", 90_000_000, True, END_AT]
    ]


def test_a_mark_counts_as_a_promise_not_a_record() -> None:
    inputs = held(0)
    clock = inputs.read(0, now=0.0)
    clock.see(100_000_000)
    inputs.control(0, Marker(MARK, "p", 50_000_000), now=1.0)  # older than what was read
    assert inputs.marker(0, False)[1] == 70_000_000
    inputs.control(0, Marker(MARK, "p", 200_000_000), now=2.0)
    assert inputs.marker(0, False)[1] == 170_000_000


def test_a_mark_without_its_begin_opens_the_replay() -> None:
    # a new owner resumes past the begin marker: later marks still hold the partition
    inputs = held(0)
    inputs.control(0, Marker(MARK, "p", 1), now=0.0)
    assert inputs.holding(0, now=5.0) == ["p"]


def test_a_replay_silent_past_its_timeout_is_dropped() -> None:
    inputs = held(0, 1)
    inputs.control(0, Marker(BEGIN, "dead", None), now=0.0)
    inputs.control(1, Marker(BEGIN, "alive", None), now=0.0)
    inputs.control(1, Marker(MARK, "alive", 5), now=50.0)
    assert inputs.abandoned(now=70.0) == {0: ["dead"]}
    assert inputs.holding(0, now=70.0) == []
    assert inputs.holding(1, now=70.0) == ["alive"]
    assert inputs.abandoned(now=70.0) == {}
