"""The two-heap timer queue pops in the order of one heap."""

from __future__ import annotations

import heapq
import random

import pytest

from aupwatch.detectors.timers import FOREVER, NEAR_SPAN, Timers


@pytest.mark.parametrize("seed", range(20))
def test_pops_in_the_order_of_one_heap(seed: int) -> None:
    rng = random.Random(seed)
    timers = Timers()
    heap: list[tuple[int, str]] = []
    now = 0
    for _ in range(2000):
        if heap and rng.random() < 0.4:
            assert timers.first() == heap[0][0]
            assert timers.pop() == heapq.heappop(heap)
            now = max(now, heap[0][0] if heap else now)
            continue
        # mostly near timers, some days or months away, ties on purpose
        far = rng.random() < 0.3
        due = now + rng.randrange(0, 90 * 86_400_000_000 if far else NEAR_SPAN // 4, 1000)
        key = f"X|{rng.randrange(50)}"
        timers.push(due, key, now)
        heapq.heappush(heap, (due, key))
        assert len(timers) == len(heap)
    order = [timers.pop() for _ in range(len(timers))]
    assert order == [heapq.heappop(heap) for _ in range(len(heap))]
    assert timers.first() == FOREVER and not timers


def test_built_from_a_list_splits_by_the_given_time() -> None:
    timers = Timers([(5, "a"), (NEAR_SPAN + 10, "b"), (1, "c")], now=0)
    assert timers.near == [(1, "c"), (5, "a")] and timers.far == [(NEAR_SPAN + 10, "b")]
    assert sorted(timers) == [(1, "c"), (5, "a"), (NEAR_SPAN + 10, "b")]
    assert [timers.pop() for _ in range(3)] == [(1, "c"), (5, "a"), (NEAR_SPAN + 10, "b")]


def test_a_far_timer_due_before_a_near_one_comes_first() -> None:
    timers = Timers()
    timers.push(NEAR_SPAN + 5, "far", now=0)  # far when pushed
    timers.push(NEAR_SPAN + 7, "near", now=NEAR_SPAN)  # near by then
    assert timers.far and timers.near
    assert timers.first() == NEAR_SPAN + 5
    assert timers.pop() == (NEAR_SPAN + 5, "far")
    assert timers.pop() == (NEAR_SPAN + 7, "near")
