"""The worker's input partitions: their event-time clocks and when they count as idle.

An input partition promises a watermark from the event times read from it and from the
markers a replay producer wrote into it (``aupwatch.streams.markers``). It is idle once
everything in it has been read (the caller asks the broker), no replay it carries is
still open, and nothing new arrived for ``idle_timeout`` seconds (at once after a
replay's end marker). Its idle marker names the end offset it was read to: a detect
shard counts it idle only while a fresh end offset shows nothing new behind it.
"""

from __future__ import annotations

from typing import Any

from aupwatch.detectors.watermarks import SourceClock
from aupwatch.streams.markers import END, Marker


class InputPartitions:
    """Clocks, last reads, open replays and idleness of the input partitions one worker holds.

    Args:
        lateness: The allowed lateness in microseconds.
        replay_timeout: Seconds after which a replay that went silent without its end
            marker stops holding its partitions (its producer died).
    """

    def __init__(self, lateness: int, replay_timeout: float = 60.0) -> None:
        self.lateness = lateness
        self.replay_timeout = replay_timeout
        self.clocks: dict[int, SourceClock] = {}
        self.last_read: dict[int, float] = {}
        self.assigned_at: dict[int, float] = {}
        self.idle: set[int] = set()  # last marked idle
        # partition -> open replay producer -> when it was last heard
        self.replays: dict[int, dict[str, float]] = {}

    def read(self, q: int, now: float) -> SourceClock:
        """Notes that records of partition ``q`` were read now; returns its clock."""
        self.last_read[q] = now
        clock = self.clocks.get(q)
        if clock is None:
            clock = self.clocks[q] = SourceClock(self.lateness)
        return clock

    def control(self, q: int, marker: Marker, now: float) -> None:
        """Applies a replay producer's marker read from partition ``q``."""
        clock = self.read(q, now)
        if marker.max_ts is not None:
            clock.see(marker.max_ts)  # a promise, not a record: never late
        open_ = self.replays.setdefault(q, {})
        if marker.kind == END:
            open_.pop(marker.producer, None)
            if not open_:
                self.last_read[q] = float("-inf")  # nothing more is promised: idle at once
        else:
            # a mark opens too: a new owner may resume a partition past its begin marker
            open_[marker.producer] = now

    def assign(self, partitions: set[int], now: float) -> None:
        """The partitions held after a rebalance; a newly assigned one starts its wait now."""
        self.assigned_at = {q: self.assigned_at.get(q, now) for q in partitions}

    def revoke(self, q: int) -> None:
        """Forgets a revoked partition (its new owner rebuilds its clock from the records)."""
        self.clocks.pop(q, None)
        self.last_read.pop(q, None)
        self.assigned_at.pop(q, None)
        self.idle.discard(q)
        self.replays.pop(q, None)

    def marker(self, q: int, idle: bool, end: int | None = None) -> list[Any]:
        """The watermark marker ``[source, wm, idle, end]`` of partition ``q``.

        ``wm`` is the promise while records may still come (largest time minus
        lateness); an idle partition may be flushed to ``wm + lateness`` by a shard that
        finds it still read to ``end``.
        """
        clock = self.clocks.get(q) or SourceClock(self.lateness)
        return [f"i{q}", clock.watermark(False), idle, end if idle else None]

    def holding(self, q: int, now: float) -> list[str]:
        """Open replays of partition ``q`` heard from within ``replay_timeout``."""
        open_ = self.replays.get(q, {})
        return [p for p, at in open_.items() if now - at < self.replay_timeout]

    def abandoned(self, now: float) -> dict[int, list[str]]:
        """Open replays silent for ``replay_timeout`` (dropped; they no longer hold)."""
        out: dict[int, list[str]] = {}
        for q, open_ in self.replays.items():
            stale = [p for p, at in open_.items() if now - at >= self.replay_timeout]
            for p in stale:
                del open_[p]
            if stale:
                out[q] = stale
        return out

    def quiet(self, q: int, now: float, idle_after: float) -> bool:
        """Whether partition ``q`` has had no records for ``idle_after`` seconds."""
        if self.holding(q, now):
            return False  # an open replay promises more: waiting for it is exact
        return now - self.last_read.get(q, self.assigned_at.get(q, now)) >= idle_after

    def tick(self, caught_up: dict[int, int], now: float, idle_after: float) -> list[list[Any]]:
        """Markers of every held partition, each judged idle or not afresh.

        Args:
            caught_up: Partitions with nothing left to read at the broker, with the end
                offset they were read to.
            now: Monotonic time.
            idle_after: Seconds without records before a caught-up partition is idle.
        """
        marks = []
        for q in self.assigned_at:
            # idle means nothing left to read, not merely nothing read lately
            idle = q in caught_up and self.quiet(q, now, idle_after)
            marks.append(self.marker(q, idle, caught_up.get(q)))
            if idle:
                self.idle.add(q)
            else:
                self.idle.discard(q)
        return marks

    def woken(self, touched: set[int], caught_up: dict[int, int]) -> list[list[Any]]:
        """Markers that end idleness for every idle partition with records waiting.

        A quiet stream that wakes up usually gets records on several partitions at once;
        the first one read must not let the shards decide past the others' records while
        those are still marked idle (they would be late).

        Args:
            touched: Partitions just read (no longer idle; their markers are sent anyway).
            caught_up: Partitions with nothing left to read at the broker.
        """
        self.idle -= touched
        waiting = self.idle - set(caught_up)
        self.idle -= waiting
        return [self.marker(q, False) for q in sorted(waiting)]
