"""Which consumed offsets the worker takes and commits (no broker)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from aupwatch.streams.worker.offsets import DROP, SEEK, TAKE, Offsets


def events(topic: str, partition: int, offsets: range) -> list[Any]:
    return [
        SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition, offset=o))
        for o in offsets
    ]


def started(*tps: tuple[str, int]) -> Offsets:
    offsets = Offsets()
    for tp in tps:
        offsets.start(tp, 0)
    return offsets


def test_commits_wait_for_every_older_message_of_their_partition() -> None:
    offsets = started(("t", 0), ("t", 1))
    p0, p1 = events("t", 0, range(5)), events("t", 1, range(3))
    offsets.taken(p0)
    offsets.taken(p1)
    offsets.decide([p0[3], p0[4], p1[0]])
    assert offsets.release() == {("t", 1): 1}  # p0's 0..2 undecided hold back 3 and 4
    offsets.decide([p0[1], p0[0]])
    assert offsets.release() == {("t", 0): 2}
    offsets.decide([p0[2]])
    assert offsets.release() == {("t", 0): 5}
    assert offsets.release() == {}


def test_forgotten_partitions_release_nothing() -> None:
    offsets = started(("t", 0), ("u", 0))
    p0, p1 = events("t", 0, range(2)), events("u", 0, range(2))
    offsets.taken(p0 + p1)
    offsets.decide(p0 + p1)
    offsets.forget({("t", 0)})
    assert offsets.release() == {("u", 0): 2}
    assert not offsets.decided
    assert offsets.admit(("t", 0), 0) == DROP  # not started again yet


# (start offset, offsets read in order, verdicts)
ADMIT_CASES = {
    "in order": (3, [3, 4, 5], [TAKE, TAKE, TAKE]),
    "re-delivered": (0, [0, 1, 0, 1, 2], [TAKE, TAKE, DROP, DROP, TAKE]),
    # resumed at a stale position: sought back once, the rest of that run dropped
    "stale position": (117, [1107, 1108, 1109, 117, 118], [SEEK, DROP, DROP, TAKE, TAKE]),
    "jump mid-stream": (0, [0, 1, 50, 51, 2, 3], [TAKE, TAKE, SEEK, DROP, TAKE, TAKE]),
    "second jump seeks again": (0, [4, 0, 1, 7, 2], [SEEK, TAKE, TAKE, SEEK, TAKE]),
    # never taken past a hole without skip_to, even when reads restart below their last
    "restart past the seek": (5, [8, 9, 8, 9], [SEEK, DROP, DROP, DROP]),
}


@pytest.mark.parametrize("case", list(ADMIT_CASES))
def test_admit_takes_each_partition_in_offset_order(case: str) -> None:
    start, read, verdicts = ADMIT_CASES[case]
    offsets = Offsets()
    offsets.start(("t", 0), start)
    got = [offsets.admit(("t", 0), o) for o in read]
    assert got == verdicts
    taken = [o for o, v in zip(read, got, strict=True) if v == TAKE]
    assert taken == sorted(set(taken)), "taken out of order or twice"


def test_seek_target_is_the_next_expected_offset() -> None:
    offsets = Offsets()
    offsets.start(("t", 0), 117)
    assert offsets.admit(("t", 0), 1107) == SEEK
    assert offsets.expect[("t", 0)] == 117


def test_a_partition_whose_next_offset_stays_put_is_stalled() -> None:
    offsets = Offsets(retry_after=5.0)
    offsets.start(("t", 0), 10)
    offsets.start(("t", 1), 0)
    assert offsets.stalled(0.0) == {}  # clocks start
    assert offsets.admit(("t", 0), 20) == SEEK
    assert [offsets.admit(("t", 0), o) for o in (21, 22)] == [DROP, DROP]
    assert offsets.admit(("t", 1), 0) == TAKE
    assert offsets.stalled(4.0) == {}  # ("t", 1) moved: its clock restarts now
    assert offsets.stalled(5.0) == {("t", 0): 10}  # even when nothing more was read
    assert offsets.stalled(6.0) == {}  # its clock restarted
    assert offsets.stalled(9.0) == {("t", 1): 1}
    assert offsets.admit(("t", 0), 10) == TAKE
    assert offsets.stalled(10.0) == {}
    offsets.hold()
    assert offsets.stalled(14.0) == {}
    assert offsets.stalled(19.0) == {("t", 0): 11, ("t", 1): 1}
    offsets.forget({("t", 0)})
    assert offsets.stalled(100.0) == {("t", 1): 1}


def test_skip_to_resumes_after_offsets_without_records() -> None:
    offsets = Offsets()
    offsets.start(("t", 0), 5)
    assert offsets.admit(("t", 0), 8) == SEEK
    offsets.skip_to(("t", 0), 8)  # the probe found no record at 5..7
    assert [offsets.admit(("t", 0), o) for o in (9, 8, 9)] == [DROP, TAKE, TAKE]
