"""Watermarks of a partitioned stage: combining what the upstream partitions promise.

Every upstream partition sends, after its items, a marker "all my items up to time W are
sent" and whether it is idle. A downstream shard may decide up to the smallest marker of
its upstream partitions; an idle input partition is passed over while a fresh end offset
shows nothing new in it; when all are idle it may decide up to the largest (the stream
has ended for now). Until every expected upstream partition has sent a marker, nothing
is decided.
"""

from __future__ import annotations

from collections.abc import Iterable

from aupwatch.detectors.engine import NEVER


class UpstreamWatermarks:
    """The markers one shard has received, by upstream source name.

    Args:
        sources: Names of every upstream partition that feeds this shard.
        lateness: What an idle source may be flushed to beyond its watermark (input
            partitions promise ``max time - lateness`` while records may still come).
        skip_idle: Whether an idle source is passed over while others are active (input
            partitions, whose idleness a fresh end offset confirms); internal sources
            always count, so a shard never decides past a peer that has not caught up.
    """

    def __init__(self, sources: Iterable[str], lateness: int = 0, skip_idle: bool = False) -> None:
        self.expected = frozenset(sources)
        self.lateness = lateness
        self.skip_idle = skip_idle
        self.marks: dict[str, tuple[int, bool]] = {}
        self.ends: dict[str, int | None] = {}

    def update(self, source: str, wm: int | None, idle: bool, end: int | None = None) -> None:
        """Records a marker; watermarks never move back, idleness may change either way.

        Args:
            source: Upstream partition name.
            wm: Its promise (None: nothing yet).
            idle: Whether it has nothing more for now.
            end: For an idle input partition, the end offset it was read to.
        """
        value = NEVER if wm is None else wm
        old = self.marks.get(source)
        if old is not None and old[0] > value:
            value = old[0]
        self.marks[source] = (value, idle)
        self.ends[source] = end

    def idle_ends(self) -> dict[str, int | None]:
        """The end offsets idle sources were read to, by source."""
        return {s: self.ends.get(s) for s, (_, idle) in self.marks.items() if idle}

    def lagging(self) -> list[str]:
        """The sources holding this shard back: those without a marker, else the slowest."""
        missing = sorted(self.expected - set(self.marks))
        if missing:
            return missing
        active = {s: wm for s, (wm, idle) in self.marks.items() if not (idle and self.skip_idle)}
        low = min(active.values(), default=None)
        return sorted(s for s, wm in active.items() if wm == low)

    def combined(self, waiting: frozenset[str] = frozenset()) -> tuple[int, bool]:
        """Returns (watermark, idle) this shard may advance to.

        Args:
            waiting: Sources marked idle that have records waiting after all; they count
                as active with their watermark.
        """
        if len(self.marks) < len(self.expected) or not self.expected.issubset(self.marks):
            return NEVER, False
        marks = self.marks.values()
        if self.skip_idle:
            active = [wm for s, (wm, idle) in self.marks.items() if not idle or s in waiting]
        elif all(idle for _, idle in marks):
            active = []
        else:
            active = [wm for wm, _ in marks]
        if active:
            return min(active), False
        top = max(wm for wm, _ in marks)
        return (top + self.lateness if top > NEVER else top), True


class SourceClock:
    """The watermark one input partition promises, from the event times it has read.

    Args:
        lateness: The allowed lateness in microseconds.
    """

    def __init__(self, lateness: int) -> None:
        self.lateness = lateness
        self.max_ts = NEVER

    def see(self, ts: int) -> bool:
        """Notes an event time; returns True when the record is late."""
        late = self.max_ts > NEVER and ts <= self.max_ts - self.lateness
        if ts > self.max_ts:
            self.max_ts = ts
        return late

    def watermark(self, idle: bool) -> int | None:
        """The promise: max time minus lateness, or max time once the source is idle."""
        if self.max_ts == NEVER:
            return None
        return self.max_ts if idle else self.max_ts - self.lateness
