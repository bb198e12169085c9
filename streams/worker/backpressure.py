"""How far ingest may run ahead of the group's decisions, per input partition.

A rebalance makes the group read again what is not yet decided: input since the last
commit, and internal messages whose items wait for the watermark. Left alone, ingest reads
a backlog far faster than the detectors decide it. ``UndecidedLedger`` counts, per input
partition, the records taken whose event time the group has not yet decided past;
``PausePolicy`` says which partitions to pause and resume. Kafka-agnostic and pure: the
tracker applies what they return.

Why the rule cannot deadlock: a detect shard decides up to the smallest promise of all
input partitions of the group (minus the allowed lateness), idle ones passed over. A
partition is paused only while it leads the slowest active partition its worker holds, so
every worker keeps its slowest partition running. The partition holding the group's
watermark is the slowest of its own worker's partitions too, so it is never paused and the
watermark keeps moving while it has records; one that runs out becomes idle and stops
holding it. A paused partition resumes as soon as it no longer leads (the slowest caught up
with it) or its undecided records fall to half the limit, so none waits on a decision that
needs its own records.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import NamedTuple


class InputState(NamedTuple):
    """What the policy knows of one held input partition.

    Attributes:
        undecided: Records taken and not yet decided.
        event_time: Largest event time read from it, microseconds (``NEVER``: none yet).
        idle: Whether it is marked idle (read to its end, quiet).
    """

    undecided: int
    event_time: int
    idle: bool


class Transitions(NamedTuple):
    """Partitions to pause and to resume now."""

    pause: frozenset[int]
    resume: frozenset[int]


NOTHING = Transitions(frozenset(), frozenset())


class UndecidedLedger:
    """Records taken per input partition whose event time is not yet decided.

    Each ingested message is noted with its record count and largest event time; a
    message counts as decided once the group's decided time reaches that event time, and
    only as a prefix (as offsets are committed), so the count never understates.
    """

    def __init__(self) -> None:
        self.messages: dict[int, deque[tuple[int, int]]] = {}
        self.counts: dict[int, int] = {}

    def ingested(self, q: int, max_ts: int, records: int) -> None:
        """Notes a message of ``records`` records from partition ``q``."""
        if records <= 0:
            return
        queue = self.messages.get(q)
        if queue is None:
            queue = self.messages[q] = deque()
        queue.append((max_ts, records))
        self.counts[q] = self.counts.get(q, 0) + records

    def settle(self, decided: int) -> None:
        """Drops messages at or below ``decided`` (microseconds) from each partition's head."""
        for q, queue in self.messages.items():
            gone = 0
            while queue and queue[0][0] <= decided:
                gone += queue.popleft()[1]
            if gone:
                self.counts[q] -= gone

    def undecided(self, q: int) -> int:
        """Records of partition ``q`` not yet decided."""
        return self.counts.get(q, 0)

    def forget(self, q: int) -> None:
        """Drops a revoked partition (its new owner counts what it reads)."""
        self.messages.pop(q, None)
        self.counts.pop(q, None)


class PausePolicy:
    """Which input partitions to pause and resume (watermark alignment with a budget).

    Pause a partition when its undecided records pass ``limit`` and its event time leads
    the slowest non-idle partition held; resume it when it no longer leads, or when its
    undecided records fall to ``limit // 2`` (hysteresis against flapping).

    Args:
        limit: ``worker.max_undecided``; 0 never pauses.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.resume_at = limit // 2
        self.paused: set[int] = set()

    def review(self, states: Mapping[int, InputState]) -> Transitions:
        """Decides and records the transitions for the partitions held now.

        Args:
            states: Every input partition this worker holds.

        Returns:
            Partitions to pause and to resume; paused ones no longer held are forgotten.
        """
        self.paused &= set(states)
        if not self.limit:
            return NOTHING
        slowest = _slowest(states)
        resume = frozenset(q for q in self.paused if not self._holds(states[q], slowest))
        pause = frozenset(
            q
            for q, s in states.items()
            if q not in self.paused and s.undecided > self.limit and _leads(s, slowest)
        )
        self.paused = (self.paused - resume) | pause
        return Transitions(pause, resume) if pause or resume else NOTHING

    def admits(self, q: int, undecided: int, states: Mapping[int, InputState]) -> bool:
        """Whether to take one more message of partition ``q``; pauses it if not.

        Called per message between reviews, with ``undecided`` counting the messages
        taken so far in this batch, so a partition overshoots by at most one message.
        """
        if q in self.paused:
            return False
        if not self.limit or undecided <= self.limit or not _leads(states[q], _slowest(states)):
            return True
        self.paused.add(q)
        return False

    def _holds(self, state: InputState, slowest: int | None) -> bool:
        """Whether a paused partition stays paused."""
        return state.undecided > self.resume_at and _leads(state, slowest)

    def forget(self) -> None:
        """A rebalance: partitions are read again from their commits, unpaused; start afresh."""
        self.paused.clear()


def _slowest(states: Mapping[int, InputState]) -> int | None:
    """The smallest event time among non-idle partitions (None: all idle or none held)."""
    return min((s.event_time for s in states.values() if not s.idle), default=None)


def _leads(state: InputState, slowest: int | None) -> bool:
    """Whether a partition is ahead of the slowest active one (never the slowest itself)."""
    return slowest is not None and not state.idle and state.event_time > slowest
