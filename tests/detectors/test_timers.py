"""The timer queue (two heaps and a lane) fires in the order of one heap."""

from __future__ import annotations

import heapq
import random
from typing import Any

import pytest

from aupwatch.detectors.timers import FOREVER, NEAR_SPAN, Timers


def _fired(timers: Timers, until: int) -> tuple[list[tuple[int, str]], int]:
    fired: list[tuple[int, str]] = []
    nxt = timers.fire_until(until, lambda due, key, out: out.append((due, key)), fired)
    return fired, nxt


def _heap_until(heap: list[tuple[int, str]], until: int) -> list[tuple[int, str]]:
    out = []
    while heap and heap[0][0] <= until:
        out.append(heapq.heappop(heap))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_fires_in_the_order_of_one_heap(seed: int) -> None:
    rng = random.Random(seed)
    timers = Timers()
    heap: list[tuple[int, str]] = []
    now = 0
    for _ in range(2000):
        if heap and rng.random() < 0.4:
            until = heap[0][0] + rng.choice([0, 0, 1000, NEAR_SPAN])
            assert timers.first() == heap[0][0]
            fired, nxt = _fired(timers, until)
            assert fired == _heap_until(heap, until)
            assert nxt == (heap[0][0] if heap else FOREVER) == timers.first()
            now = max(now, until)
            continue
        # mostly near timers, some days or months away, ties on purpose
        far = rng.random() < 0.3
        due = now + rng.randrange(0, 90 * 86_400_000_000 if far else NEAR_SPAN // 4, 1000)
        key = f"X|{rng.randrange(50)}"
        timers.push(due, key, now)
        heapq.heappush(heap, (due, key))
        assert len(timers) == len(heap)
    fired, nxt = _fired(timers, FOREVER)
    assert fired == _heap_until(heap, FOREVER)
    assert nxt == FOREVER and timers.first() == FOREVER and not timers


def test_built_from_a_list_splits_by_the_given_time() -> None:
    timers = Timers([(5, "a"), (NEAR_SPAN + 10, "b"), (1, "c")], now=0)
    assert timers.near == [(1, "c"), (5, "a")] and timers.far == [(NEAR_SPAN + 10, "b")]
    assert sorted(timers) == [(1, "c"), (5, "a"), (NEAR_SPAN + 10, "b")]
    assert _fired(timers, FOREVER)[0] == [(1, "c"), (5, "a"), (NEAR_SPAN + 10, "b")]


def test_a_far_timer_due_before_a_near_one_comes_first() -> None:
    timers = Timers()
    timers.push(NEAR_SPAN + 5, "far", now=0)  # far when pushed
    timers.push(NEAR_SPAN + 7, "near", now=NEAR_SPAN)  # near by then
    assert timers.lane and timers.near
    assert timers.first() == NEAR_SPAN + 5
    assert _fired(timers, NEAR_SPAN + 5) == ([(NEAR_SPAN + 5, "far")], NEAR_SPAN + 7)


def test_a_timer_set_by_a_fired_one_fires_in_the_same_call_when_due() -> None:
    timers = Timers()
    timers.push(10, "a", now=0)
    fired: list[Any] = []

    def fire(due: int, key: str, out: list[Any]) -> None:
        out.append(key)
        if key == "a":
            timers.push(15, "b", now=due)  # due by the limit: fires now
            timers.push(30, "c", now=due)  # not yet

    assert timers.fire_until(20, fire, fired) == 30
    assert fired == ["a", "b"]


def test_far_timers_set_in_order_join_the_lane_and_an_earlier_one_the_far_heap() -> None:
    timers = Timers()
    day = 86_400_000_000
    for i, key in enumerate("abc"):
        timers.push(90 * day + i, key, now=i)  # ownership-like: the call's time plus 90 days
    timers.push(90 * day + 2, "d", now=3)  # a tie on time, a later key: still in order
    timers.push(90 * day + 1, "e", now=3)  # earlier than the lane's last
    timers.push(10, "f", now=3)  # near
    assert list(timers.lane) == [
        (90 * day + i, k) for i, k in ((0, "a"), (1, "b"), (2, "c"), (2, "d"))
    ]
    assert timers.far == [(90 * day + 1, "e")]
    assert timers.near == [(10, "f")]
    assert [key for _, key in _fired(timers, FOREVER)[0]] == ["f", "a", "b", "e", "c", "d"]
