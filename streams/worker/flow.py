"""Backpressure applied: input partitions paused and resumed on the worker's consumer.

The policy (``backpressure.PausePolicy``) decides; this object gates the messages Faust
has already fetched, pauses and resumes fetching, logs each transition once and keeps the
paused-partition gauge. A message of a paused partition is held back before it is taken
(its offset stays the next expected one) and handed back, in order, when the partition
resumes: no seek, so no race with a fetch under way.

Why no offset is lost or skipped: fetching pauses in aiokafka (``pause_fetching``), which
keeps the partition's position just past the last record it returned, so the messages
Faust delivered before the pause took effect (held here) and those fetched after the
resume are one contiguous run. Pausing through Faust's active partitions instead made
Faust drop records aiokafka had already returned, leaving a gap no later message revealed
at the end of a partition: the stall. The consumer is only paused or resumed while Faust
neither rebalances nor recovers and with the worker's lock held; a rebalance waits for
that lock (the revocation handler takes it) before aiokafka builds the new assignment,
whose partition states start unpaused, and ``restart`` then drops every held message and
pause: partitions are read again from their committed offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry, Counter, Gauge

from aupwatch.detectors.engine import NEVER
from aupwatch.streams import markers
from aupwatch.streams.worker import wire
from aupwatch.streams.worker.backpressure import (
    InputState,
    PausePolicy,
    Transitions,
    UndecidedLedger,
)
from aupwatch.streams.worker.faust_app import pause_fetching, resume_fetching, settled
from aupwatch.streams.worker.inputs import InputPartitions

log = logging.getLogger(__name__)

ALL_DECIDED = 2**63  # beyond any event time: settles every record


class FlowMetrics:
    """The backpressure metrics, in the worker's registry.

    Args:
        registry: Where to register them.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.paused = Gauge(
            "aupwatch_input_paused_partitions",
            "Input partitions this worker holds paused: read ahead of the group's decisions.",
            registry=registry,
        )
        self.read = Counter(
            "aupwatch_input_records_read_total",
            "Input records (lines) this worker has ingested, by partition; summed over the "
            "group and compared with the topic, what a rebalance made it read again.",
            ["partition"],
            registry=registry,
        )
        self.reread = Counter(
            "aupwatch_input_records_reread_total",
            "Input records a rebalance makes the group read again, by input partition: taken "
            "by this worker and not committed when it lost the input or detect partition.",
            ["partition"],
            registry=registry,
        )
        self._read: dict[int, Any] = {}  # partition -> its child of ``read``

    def lines_read(self, partition: int, lines: int) -> None:
        """Counts lines ingested from one input partition.

        Per message: the labelled child is looked up once (a lookup costs ~3 us).
        """
        child = self._read.get(partition)
        if child is None:
            child = self._read[partition] = self.read.labels(partition=str(partition))
        child.inc(lines)


class InputFlow:
    """Pauses input partitions that run too far ahead of the decisions, and resumes them.

    Args:
        app: The Faust app (its consumer).
        topic: The input topic.
        detect_topic: The detect stage's topic.
        inputs: The input partitions' clocks and idleness.
        limit: ``worker.max_undecided`` (0: never pause).
        metrics: Optional ``FlowMetrics``.
    """

    def __init__(
        self,
        app: Any,
        topic: str,
        detect_topic: str,
        inputs: InputPartitions,
        limit: int,
        metrics: FlowMetrics | None = None,
    ) -> None:
        self.app = app
        self.topic = topic
        self.detect_topic = detect_topic
        self.inputs = inputs
        self.ledger = UndecidedLedger()
        self.policy = PausePolicy(limit)
        self.metrics = metrics
        self.held: dict[int, list[Any]] = {}  # fetched messages of paused partitions
        self.released: list[Any] = []
        self.applied: set[int] = set()  # partitions paused on the consumer

    def states(self) -> dict[int, InputState]:
        """What the policy needs of every input partition held.

        Ready records are those at or below the horizon: the smallest promise (event time
        minus the allowed lateness) of the non-idle partitions held.
        """
        clocks, idle, ledger = self.inputs.clocks, self.inputs.idle, self.ledger
        times = {}
        for q in self.inputs.assigned_at:
            clock = clocks.get(q)
            times[q] = clock.max_ts if clock is not None else NEVER
        active = [ts for q, ts in times.items() if q not in idle]
        horizon = min(active) - self.inputs.lateness if active else NEVER
        return {
            q: InputState(ledger.undecided(q), ts, q in idle, ledger.ready(q, horizon))
            for q, ts in times.items()
        }

    def gate(self, events: list[Any]) -> list[Any]:
        """The events to go on with: none of an input partition paused now or in this batch.

        A partition passing the limit here is paused at once, so it overshoots by at most
        one message.
        """
        if not self.policy.limit:
            return events
        states: dict[int, InputState] | None = None
        running: dict[int, int] = {}
        over: dict[int, int] = {}
        paused = set(self.policy.paused)
        kept = []
        for ev in events:
            msg = ev.message
            if msg.topic != self.topic:
                kept.append(ev)
                continue
            q = msg.partition
            if states is None:
                states = self.states()
            if q not in states:
                kept.append(ev)  # not yet noted as held: the tracker decides
                continue
            n = running.get(q, states[q].undecided) + _records(ev)
            if self.policy.admits(q, n, states):
                running[q] = n
                kept.append(ev)
            else:
                self.held.setdefault(q, []).append(ev)
                over.setdefault(q, n)  # what taking it would have made: logged
        fresh = self.policy.paused - paused
        if fresh and states is not None:
            counted = {q: s._replace(undecided=over.get(q, s.undecided)) for q, s in states.items()}
            self._log(Transitions(frozenset(fresh), frozenset()), counted)
        return kept

    def ingested(self, q: int, max_ts: int, valid: int, lines: int) -> None:
        """Notes an ingested message: ``valid`` records up to ``max_ts``, ``lines`` in all."""
        if self.policy.limit:
            self.ledger.ingested(q, max_ts, valid)
        if self.metrics is not None and lines:
            self.metrics.lines_read(q, lines)

    async def review(self, decided: int | None) -> None:
        """Settles decided records, then pauses and resumes as the policy says.

        The messages held for a resumed partition wait in ``release()``. Call with the
        worker's lock held.

        Args:
            decided: The lowest detect-stage watermark this worker knows. None (it holds
                no detect or throttle shard) counts everything as decided: such a worker
                cannot tell, and never pauses.
        """
        self.ledger.settle(ALL_DECIDED if decided is None else decided)
        if not settled(self.app):
            return  # Faust holds the partitions for a rebalance or recovery
        states = self.states()
        change = self.policy.review(states)
        self._log(change, states)
        for q in sorted(change.resume):
            self.released += self.held.pop(q, [])
        await self.apply()

    async def apply(self) -> None:
        """Pauses and resumes fetching on the consumer as the policy now says.

        Call with the worker's lock held. Skipped while Faust rebalances or recovers: a
        partition the policy paused then is paused on the next call after it.
        """
        if not self.policy.limit or not settled(self.app):
            return
        pause = self.policy.paused - self.applied
        resume = self.applied - self.policy.paused
        consumer = self.app.consumer
        if pause:
            await pause_fetching(consumer, self._tps(pause))
        if resume:
            await resume_fetching(consumer, self._tps(resume))
        self.applied = (self.applied | pause) - resume
        if pause or resume:
            log.debug("fetching paused %s, resumed %s", sorted(pause), sorted(resume))

    def release(self) -> list[Any]:
        """Messages held for partitions resumed since the last call, in offset order.

        The caller takes them before any later batch, through the tracker again.
        """
        out, self.released = self.released, []
        return out

    def _log(self, change: Transitions, states: Mapping[int, InputState]) -> None:
        """Logs each transition the policy made, sets the gauge."""
        if not change.pause and not change.resume:
            return
        for q in sorted(change.pause):
            s = states.get(q)
            log.info(
                "input partition %d paused: %d records undecided (max_undecided %d)",
                q,
                s.undecided if s else -1,
                self.policy.limit,
            )
        for q in sorted(change.resume):
            s = states.get(q)
            log.info(
                "input partition %d resumed: %d records undecided", q, s.undecided if s else -1
            )
        if self.metrics is not None:
            self.metrics.paused.set(len(self.policy.paused))

    def lost(self, pending: Mapping[tuple[str, int], Iterable[tuple[int, Any]]]) -> None:
        """Counts and logs the records partitions lost in a rebalance make the group read again.

        Args:
            pending: Messages taken and not committed, of the revoked partitions.
        """
        counts = reread_records(pending, self.topic, self.detect_topic)
        if any(counts.values()):
            log.info(
                "rebalance: records to be read again, by input partition: %s",
                ", ".join(f"{q}: {n}" for q, n in sorted(counts.items())),
            )
        if self.metrics is not None:
            for q, n in counts.items():
                self.metrics.reread.labels(partition=str(q)).inc(n)

    def restart(self, partitions: set[int]) -> None:
        """Starts afresh after a rebalance: ``partitions`` are read again from commits.

        The new assignment's partitions are unpaused in aiokafka; Faust pauses and
        resumes them itself for the rebalance.
        """
        for q in partitions:
            self.ledger.forget(q)
        self.policy.forget()
        self.held.clear()  # read again from committed offsets
        self.released.clear()
        self.applied.clear()
        if self.metrics is not None:
            self.metrics.paused.set(0)

    def _tps(self, partitions: frozenset[int] | set[int]) -> set[TP]:
        return {TP(self.topic, q) for q in partitions}


def reread_records(
    pending: Mapping[tuple[str, int], Iterable[tuple[int, Any]]], topic: str, detect: str
) -> dict[int, int]:
    """Input records whose work is done again once these messages are read again.

    A record counts once (by its input partition, offset and line) whether its input
    message is re-read, its detect items, or both.

    Args:
        pending: Messages (offset, event) taken and not committed, by topic and partition.
        topic: The input topic.
        detect: The detect stage's topic (items carry their input partition and offset).
    """
    seen: dict[int, set[tuple[int, int]]] = {}
    for (name, partition), messages in pending.items():
        for offset, ev in messages:
            if name == topic:
                if _records(ev):
                    lines = enumerate((ev.value or b"").split(b"\n"), 1)
                    got = seen.setdefault(partition, set())
                    got.update((offset, n) for n, line in lines if line.strip())
            elif name == detect:
                for item in wire.decode(ev.value).items:
                    if item.source[0] == "i" and isinstance(item.seq, tuple):
                        offset, line = item.seq[0], item.seq[1]
                        seen.setdefault(int(item.source[1:]), set()).add((offset, line))
    return {q: len(records) for q, records in seen.items()}


def _records(ev: Any) -> int:
    """Records one input message carries, counted cheaply (a marker carries none)."""
    value = ev.value or b""
    if markers.decode(ev.message.headers, value) is not None:
        return 0
    return value.count(b"\n") + 1 if value.strip() else 0
