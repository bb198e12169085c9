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
        retry_after: Seconds after which a partition not read at its next expected offset,
            with records there, is sought there again.
    """

    def __init__(self, retry_after: float = 5.0) -> None:
        self.retry_after = retry_after
        self.expect: dict[tuple[str, int], int] = {}
        self.pending: dict[tuple[str, int], deque[tuple[int, Any]]] = {}
        self.decided: set[int] = set()
        # partition -> offset sought back to
        self.rewound: dict[tuple[str, int], int] = {}
        # partition -> (expected offset, since when)
        self.watch: dict[tuple[str, int], tuple[int, float]] = {}

    def start(self, tp: tuple[str, int], offset: int) -> None:
        """A partition is (re)assigned and resumes at ``offset``."""
        self.forget({tp})
        self.expect[tp] = offset

    def admit(self, tp: tuple[str, int], offset: int) -> str:
        """Judges one consumed message.

        Args:
            tp: Topic and partition.
            offset: The message's offset.

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
            return TAKE
        if offset < expect:
            return DROP
        if self.rewound.get(tp) != expect:
            self.rewound[tp] = expect
            return SEEK
        return DROP  # read before the seek took effect (``stalled`` retries it)

    def stalled(self, now: float) -> dict[tuple[str, int], int]:
        """Partitions whose next expected offset has not moved for ``retry_after`` or more.

        Messages can be lost on their way to the worker after the client moved past them:
        a fetch under way overtakes a seek and Faust then drops every message below the
        offset it read last, or Faust clears its stream queues when its table recovery
        ends. A later message reveals the gap (``SEEK``), but at the end of a partition
        none comes. The worker seeks each returned partition again if its log holds a
        record at or past the expected offset.

        Returns:
            The expected offset of each (their clocks restart now).
        """
        out = {}
        watch = self.watch
        for tp, expect in self.expect.items():
            seen = watch.get(tp)
            if seen is None or seen[0] != expect:
                watch[tp] = (expect, now)
            elif now - seen[1] >= self.retry_after:
                out[tp] = expect
                watch[tp] = (expect, now)
        return out

    def hold(self) -> None:
        """Restarts every partition's clock (Faust pauses and seeks them itself)."""
        self.watch.clear()

    def skip_to(self, tp: tuple[str, int], offset: int) -> None:
        """The log holds no record between the expected offset and ``offset``."""
        self.expect[tp] = offset
        self.rewound[tp] = offset

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
            self.watch.pop(tp, None)
