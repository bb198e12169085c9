"""Which consumed offsets a worker takes, and how far each partition may be committed.

Kafka-agnostic: the worker hands it offsets, and seeks and commits what it returns.
"""

from __future__ import annotations

from collections import deque
from typing import Any

TAKE, DROP, SEEK = "take", "drop", "seek"


class Offsets:
    """Which consumed messages to take, and how far each partition may be committed.

    The worker commits offsets itself instead of through Faust's acknowledgements, which
    commit the first run of acknowledged offsets wherever it starts, and count offsets a
    consumer skipped over as done. Here a partition is taken strictly in offset order from
    where it starts (its committed offset, or 0); a message past the next expected offset
    means the client resumed at a stale position, and the partition is sought back.

    Messages are decided out of order (each when the watermark passes its latest item), so
    a partition's commit offset only moves past messages with no undecided older one.

    Args:
        retry_after: Seconds after which a partition not yet read where it was sought is
            sought there again.
    """

    def __init__(self, retry_after: float = 5.0) -> None:
        self.retry_after = retry_after
        self.expect: dict[tuple[str, int], int] = {}
        self.pending: dict[tuple[str, int], deque[tuple[int, Any]]] = {}
        self.decided: set[int] = set()
        # partition -> (offset sought back to, when)
        self.rewound: dict[tuple[str, int], tuple[int, float]] = {}
        # partition -> (offset it starts at, when): started and nothing read there yet
        self.unread: dict[tuple[str, int], tuple[int, float]] = {}

    def start(self, tp: tuple[str, int], offset: int, now: float = 0.0) -> None:
        """A partition is (re)assigned and resumes at ``offset`` (monotonic ``now``)."""
        self.forget({tp})
        self.expect[tp] = offset
        self.unread[tp] = (offset, now)

    def admit(self, tp: tuple[str, int], offset: int, now: float) -> str:
        """Judges one consumed message.

        Args:
            tp: Topic and partition.
            offset: The message's offset.
            now: Monotonic clock, seconds.

        Returns:
            ``TAKE``; ``DROP`` (taken already, read before a seek, or of a partition not
            started); ``SEEK`` (past the expected offset: drop it, and seek the partition
            back to ``expect[tp]``, or ``skip_to`` the first record after it).
        """
        expect = self.expect.get(tp)
        if expect is None:
            return DROP  # read again from its start offset once started
        if offset == expect:
            self.expect[tp] = offset + 1
            if self.rewound:
                self.rewound.pop(tp, None)
            if self.unread:
                self.unread.pop(tp, None)
            return TAKE
        if offset < expect:
            return DROP
        self.unread.pop(tp, None)  # sought back below: ``rewound`` watches it from here
        rewound = self.rewound.get(tp)
        if rewound is None or rewound[0] != expect:
            self.rewound[tp] = (expect, now)
            return SEEK
        return DROP  # read before the seek took effect (``overdue`` retries it)

    def overdue(self, now: float) -> dict[tuple[str, int], int]:
        """Partitions sought back ``retry_after`` ago or more and not read there yet.

        A fetch already under way can overtake a seek; Faust then drops every message below
        the offset it read last, so such a partition may deliver nothing at all until it is
        sought again.

        Returns:
            The offset to seek each to again (their retry clocks restart now).
        """
        out = {}
        for tp, (offset, at) in self.rewound.items():
            if now - at >= self.retry_after:
                out[tp] = offset
                self.rewound[tp] = (offset, now)
        return out

    def unread_since(self, now: float) -> dict[tuple[str, int], int]:
        """Partitions started ``retry_after`` ago or more and not read yet.

        A fetch under way when the partition was assigned can deliver records past its
        start, after which Faust drops the ones at the start. Nothing past the start may
        follow to reveal the gap; the worker seeks each returned partition again if its
        log holds records at or past the start, and otherwise calls it ``read``.

        Returns:
            The offset each starts at (their clocks restart now).
        """
        out = {}
        for tp, (offset, at) in self.unread.items():
            if now - at >= self.retry_after:
                out[tp] = offset
                self.unread[tp] = (offset, now)
        return out

    def hold_unread(self, now: float) -> None:
        """Restarts the clock of every started partition not read yet (Faust holds them)."""
        for tp, (offset, _) in self.unread.items():
            self.unread[tp] = (offset, now)

    def read(self, tp: tuple[str, int]) -> None:
        """A started partition had no record to read: nothing of it can have been dropped."""
        self.unread.pop(tp, None)

    def skip_to(self, tp: tuple[str, int], offset: int, now: float) -> None:
        """The log holds no record between the expected offset and ``offset``."""
        self.expect[tp] = offset
        self.rewound[tp] = (offset, now)

    def taken(self, events: list[Any]) -> None:
        """Registers taken events (in offset order per partition)."""
        for ev in events:
            msg = ev.message
            tp = (msg.topic, msg.partition)
            queue = self.pending.get(tp)
            if queue is None:
                queue = self.pending[tp] = deque()
            queue.append((msg.offset, ev))

    def decide(self, events: list[Any]) -> None:
        """Marks events whose items are all decided."""
        self.decided.update(id(ev) for ev in events)

    def release(self) -> dict[tuple[str, int], int]:
        """Offsets to commit, for the partitions whose decided prefix grew.

        Returns:
            Per partition, one past its last decided message with no undecided older one.
        """
        out = {}
        decided = self.decided
        for tp, queue in self.pending.items():
            while queue and id(queue[0][1]) in decided:
                offset, ev = queue.popleft()
                decided.discard(id(ev))
                out[tp] = offset + 1
        return out

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Drops revoked partitions: their uncommitted messages are read again."""
        for tp in partitions:
            for _, ev in self.pending.pop(tp, ()):
                self.decided.discard(id(ev))
            self.expect.pop(tp, None)
            self.rewound.pop(tp, None)
            self.unread.pop(tp, None)
