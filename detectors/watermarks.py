"""Watermarks of a partitioned stage: combining what the upstream partitions promise.

Every upstream partition sends, after its items, a marker "all my items up to time W are
sent" and whether it is idle. A downstream shard may decide up to the smallest marker of
the upstream partitions that are not idle; when all are idle it may decide up to the
largest (the stream has ended for now). Until every expected upstream partition has sent
a marker, nothing is decided.
"""

from __future__ import annotations

from collections.abc import Iterable

from aupwatch.detectors.engine import NEVER


class UpstreamWatermarks:
    """The markers one shard has received, by upstream source name.

    Args:
        sources: Names of every upstream partition that feeds this shard.
    """

    def __init__(self, sources: Iterable[str]) -> None:
        self.expected = frozenset(sources)
        self.marks: dict[str, tuple[int, bool]] = {}

    def update(self, source: str, wm: int | None, idle: bool) -> None:
        """Records a marker; watermarks never move back, idleness may change either way."""
        value = NEVER if wm is None else wm
        old = self.marks.get(source)
        if old is not None and old[0] > value:
            value = old[0]
        self.marks[source] = (value, idle)

    def combined(self) -> tuple[int, bool]:
        """Returns (watermark, idle) this shard may advance to."""
        if len(self.marks) < len(self.expected) or not self.expected.issubset(self.marks):
            return NEVER, False
        active = [wm for wm, idle in self.marks.values() if not idle]
        if active:
            return min(active), False
        return max(wm for wm, _ in self.marks.values()), True


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
