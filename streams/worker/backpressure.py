"""How far ingest may run ahead of the group's decisions, per input partition.

A rebalance makes the group read again what is not yet decided: input since the last
commit, and internal messages whose items wait for the watermark. Left alone, ingest reads
a backlog far faster than the detectors decide it. ``UndecidedLedger`` counts, per input
partition, the records taken whose event time the group has not yet decided past;
``PausePolicy`` says which partitions to pause and resume. Kafka-agnostic and pure: the
tracker applies what they return.

Two reasons to pause a partition: more than the limit undecided while it leads the slowest
active partition its worker holds in event time (its records wait for the others), or more
than the limit *ready*: undecided at or below the worker's horizon, the smallest promise
(event time minus the allowed lateness) of its active partitions, so they wait only for the
group's decisions to be worked through, not for more input. The second bounds the slowest
partition too: without it, the slowest took whole batches while the detect stage lagged.

Why the rule cannot deadlock: a detect shard decides up to the smallest promise of all
input partitions of the group, idle ones passed over. A leading partition resumes once it
no longer leads or its undecided records fall to half the limit, so none waits on records
of its own worker's slowest partition. Ready records need no more input from the worker's
own partitions: they wait for the pipeline and for partitions of other workers. The worker
whose horizon is the group's smallest has every ready record decidable once the pipeline
drains, so its partitions resume and its horizon moves; the others follow. A partition that
runs out of records becomes idle and stops holding the watermark. Records within the
allowed lateness of the slowest partition are never ready, so a dense partition still runs.
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
        ready: Of ``undecided``, those at or below the worker's horizon (no more input
            from its partitions is needed to decide them).
    """

    undecided: int
    event_time: int
    idle: bool
    ready: int = 0


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

    def ready(self, q: int, horizon: int) -> int:
        """Undecided records of ``q`` in messages at or below ``horizon``, as a prefix.

        Walks only the ready head (a message above the horizon ends it), so the cost is
        bounded by what the policy bounds.
        """
        out = 0
        for max_ts, records in self.messages.get(q, ()):
            if max_ts > horizon:
                break
            out += records
        return out

    def forget(self, q: int) -> None:
        """Drops a revoked partition (its new owner counts what it reads)."""
        self.messages.pop(q, None)
        self.counts.pop(q, None)


class PausePolicy:
    """Which input partitions to pause and resume (watermark alignment with a budget).

    Pause a partition when its undecided records pass ``limit`` and its event time leads
    the slowest non-idle partition held, or when its ready records pass ``limit``; resume
    it when neither holds at ``limit // 2`` (hysteresis against flapping).

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
        resume = frozenset(q for q in self.paused if not _over(states[q], slowest, self.resume_at))
        pause = frozenset(
            q for q, s in states.items() if q not in self.paused and _over(s, slowest, self.limit)
        )
        self.paused = (self.paused - resume) | pause
        return Transitions(pause, resume) if pause or resume else NOTHING

    def admits(self, q: int, undecided: int, states: Mapping[int, InputState]) -> bool:
        """Whether to take one more message of partition ``q``; pauses it if not.

        Called per message between reviews, with ``undecided`` counting the messages
        taken so far in this batch, so a partition overshoots by at most one message.
        Records taken in this batch count as ready too (their event times are not known
        yet): the slowest partition takes at most the limit between reviews.
        """
        if q in self.paused:
            return False
        s = states[q]
        if not self.limit or undecided <= self.limit:
            return True
        taking = s._replace(undecided=undecided, ready=s.ready + undecided - s.undecided)
        if not _over(taking, _slowest(states), self.limit):
            return True
        self.paused.add(q)
        return False

    def forget(self) -> None:
        """A rebalance: partitions are read again from their commits, unpaused; start afresh."""
        self.paused.clear()


def _over(state: InputState, slowest: int | None, bar: int) -> bool:
    """Whether a partition's records pass ``bar``: undecided while it leads, or ready."""
    return state.ready > bar or (state.undecided > bar and _leads(state, slowest))


def _slowest(states: Mapping[int, InputState]) -> int | None:
    """The smallest event time among non-idle partitions (None: all idle or none held)."""
    return min((s.event_time for s in states.values() if not s.idle), default=None)


def _leads(state: InputState, slowest: int | None) -> bool:
    """Whether a partition is ahead of the slowest active one (never the slowest itself)."""
    return slowest is not None and not state.idle and state.event_time > slowest
