"""The worker's input partitions: their event-time clocks and when they count as idle.

An input partition promises a watermark from the event times read from it. It is idle
once everything in it has been read (the caller asks the broker) and nothing new arrived
for ``idle_timeout`` seconds; an idle partition's marker releases the watermark to its
largest event time, so a quiet partition does not stall decisions forever.
"""

from __future__ import annotations

from typing import Any

from aupwatch.detectors.watermarks import SourceClock


class InputPartitions:
    """Clocks, last reads and idleness of the input partitions one worker holds.

    Args:
        lateness: The allowed lateness in microseconds.
    """

    def __init__(self, lateness: int) -> None:
        self.lateness = lateness
        self.clocks: dict[int, SourceClock] = {}
        self.last_read: dict[int, float] = {}
        self.assigned_at: dict[int, float] = {}
        self.idle: set[int] = set()  # last marked idle
        # (start, end, only markers): what a fetch found between the next offset and the end
        self.probed: dict[int, tuple[int, int, bool]] = {}

    def read(self, q: int, now: float) -> SourceClock:
        """Notes that records of partition ``q`` were read now; returns its clock."""
        self.last_read[q] = now
        clock = self.clocks.get(q)
        if clock is None:
            clock = self.clocks[q] = SourceClock(self.lateness)
        return clock

    def assign(self, partitions: set[int], now: float) -> None:
        """The partitions held after a rebalance; a newly assigned one starts its wait now."""
        self.assigned_at = {q: self.assigned_at.get(q, now) for q in partitions}

    def revoke(self, q: int) -> None:
        """Forgets a revoked partition (its new owner rebuilds its clock from the records)."""
        self.clocks.pop(q, None)
        self.last_read.pop(q, None)
        self.assigned_at.pop(q, None)
        self.idle.discard(q)
        self.probed.pop(q, None)

    def marker(self, q: int, idle: bool) -> list[Any]:
        """The watermark marker ``[source, wm, idle]`` of partition ``q``."""
        clock = self.clocks.get(q) or SourceClock(self.lateness)
        return [f"i{q}", clock.watermark(idle), idle]

    def quiet(self, q: int, now: float, idle_after: float) -> bool:
        """Whether partition ``q`` has had no records for ``idle_after`` seconds."""
        return now - self.last_read.get(q, self.assigned_at.get(q, now)) >= idle_after

    def tick(self, caught_up: set[int], now: float, idle_after: float) -> list[list[Any]]:
        """Markers of every held partition, each judged idle or not afresh.

        Args:
            caught_up: Partitions with nothing left to read at the broker.
            now: Monotonic time.
            idle_after: Seconds without records before a caught-up partition is idle.
        """
        marks = []
        for q in self.assigned_at:
            # idle means nothing left to read, not merely nothing read lately
            idle = q in caught_up and self.quiet(q, now, idle_after)
            marks.append(self.marker(q, idle))
            if idle:
                self.idle.add(q)
            else:
                self.idle.discard(q)
        return marks

    def woken(self, touched: set[int], caught_up: set[int]) -> list[list[Any]]:
        """Markers that end idleness for every idle partition with records waiting.

        A quiet stream that wakes up usually gets records on several partitions at once;
        the first one read must not let the shards decide past the others' records while
        those are still marked idle (they would be late).

        Args:
            touched: Partitions just read (no longer idle; their markers are sent anyway).
            caught_up: Partitions with nothing left to read at the broker.
        """
        self.idle -= touched
        waiting = self.idle - caught_up
        self.idle -= waiting
        return [self.marker(q, False) for q in sorted(waiting)]
