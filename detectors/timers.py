"""A shard's timers, earliest first: a near heap and a far one.

Most timers come due soon after they are set (retry scopes, the collection of remembered
ids), while ownership, link and retention timers wait hours to months. In one heap every
near push and pop walks past the far timers' levels; kept apart, they walk a small heap.
The order is that of one heap: the earliest ``(due, key)`` of either comes first.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any

FOREVER = 1 << 62
# a timer due more than this after the shard's watermark goes to the far heap
NEAR_SPAN = 3_600_000_000  # 1 h in microseconds

Timer = tuple[int, str]  # (due, key)


class Timers:
    """A priority queue of ``(due, key)`` timers in two heaps split by how far off they are.

    Either heap may hold any timer: the split only makes the near heap small, and every
    read takes the smaller head of the two.
    """

    __slots__ = ("far", "near")

    def __init__(self, timers: Iterable[Timer] = (), now: int = -FOREVER) -> None:
        self.near: list[Timer] = []
        self.far: list[Timer] = []
        for timer in timers:
            (self.far if timer[0] > now + NEAR_SPAN else self.near).append(timer)
        heapq.heapify(self.near)
        heapq.heapify(self.far)

    def push(self, due: int, key: str, now: int) -> None:
        """Adds a timer; ``now`` is the shard's watermark, which decides near or far."""
        heapq.heappush(self.far if due > now + NEAR_SPAN else self.near, (due, key))

    def first(self) -> int:
        """When the earliest timer is due (``FOREVER`` when there is none)."""
        near, far = self.near, self.far
        if near:
            return far[0][0] if far and far[0] < near[0] else near[0][0]
        return far[0][0] if far else FOREVER

    def fire_until(self, until: int, fire: Callable[[int, str, Any], None], out: Any) -> int:
        """Pops and fires, earliest first, every timer due by ``until``.

        A fired timer may set others, due by then too: those fire in the same call.

        Args:
            until: The time up to which timers are due.
            fire: Called as ``fire(due, key, out)`` for each.
            out: Handed to ``fire``.

        Returns:
            When the next timer is due (``FOREVER`` when there is none).
        """
        near, far, heappop = self.near, self.far, heapq.heappop
        while near or far:
            heap = far if far and (not near or far[0] < near[0]) else near
            if heap[0][0] > until:
                return heap[0][0]
            due, key = heappop(heap)
            fire(due, key, out)
        return FOREVER

    def __len__(self) -> int:
        return len(self.near) + len(self.far)

    def __iter__(self) -> Iterator[Timer]:
        """Every timer, in no particular order."""
        yield from self.near
        yield from self.far
