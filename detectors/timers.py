"""A shard's timers, earliest first: a near heap, a far one and a far lane.

Most timers come due soon after they are set (retry scopes, the collection of remembered
ids), while ownership, link and retention timers wait hours to months. In one heap every
near push and pop walks past the far timers' levels; kept apart, they walk a small heap.
Far timers are mostly set in order, too: an ownership's is its call's time plus 90 days,
and calls come in time order. One not earlier than the last far timer so set joins a queue
(the lane) instead of the far heap, whose hundreds of thousands of ownership timers a pop
would otherwise walk, level by level, each level a miss of the processor's caches.
The order is that of one heap: the earliest ``(due, key)`` of the three comes first.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

FOREVER = 1 << 62
# a timer due more than this after the shard's watermark goes to the far heap
NEAR_SPAN = 3_600_000_000  # 1 h in microseconds

Timer = tuple[int, str]  # (due, key)


class Timers:
    """A priority queue of ``(due, key)`` timers: two heaps and a lane of far ones.

    The heaps are split by how far off a timer is; the lane holds far timers pushed in
    order. Any of the three may hold any timer: the split only keeps the heaps small, and every
    read takes the smallest head of the three.
    """

    __slots__ = ("far", "lane", "near")

    def __init__(self, timers: Iterable[Timer] = (), now: int = -FOREVER) -> None:
        self.near: list[Timer] = []
        self.far: list[Timer] = []
        # far timers in (due, key) order, each pushed not earlier than the one before
        self.lane: deque[Timer] = deque()
        for timer in timers:
            (self.far if timer[0] > now + NEAR_SPAN else self.near).append(timer)
        heapq.heapify(self.near)
        heapq.heapify(self.far)

    def push(self, due: int, key: str, now: int) -> None:
        """Adds a timer; ``now`` is the shard's watermark, which decides near or far."""
        timer = (due, key)
        if due <= now + NEAR_SPAN:
            heapq.heappush(self.near, timer)
        elif not self.lane or self.lane[-1] <= timer:
            self.lane.append(timer)
        else:
            heapq.heappush(self.far, timer)

    def first(self) -> int:
        """When the earliest timer is due (``FOREVER`` when there is none)."""
        near, far, lane = self.near, self.far, self.lane
        queue = near or far or lane
        if not queue:
            return FOREVER
        head = queue[0]
        if far and far[0] < head:
            head = far[0]
        if lane and lane[0] < head:
            head = lane[0]
        return head[0]

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
        near, far, lane, heappop = self.near, self.far, self.lane, heapq.heappop
        while near or far or lane:
            heap = far if far and (not near or far[0] < near[0]) else near
            if lane and (not heap or lane[0] < heap[0]):
                if lane[0][0] > until:
                    return lane[0][0]
                due, key = lane.popleft()
            else:
                if heap[0][0] > until:
                    return heap[0][0]
                due, key = heappop(heap)
            fire(due, key, out)
        return FOREVER

    def __len__(self) -> int:
        return len(self.near) + len(self.far) + len(self.lane)

    def __iter__(self) -> Iterator[Timer]:
        """Every timer, in no particular order."""
        yield from self.near
        yield from self.far
        yield from self.lane
