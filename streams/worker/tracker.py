"""Where each consumed partition stands: offsets taken and committed, input end offsets.

The partition tracker admits consumed messages in offset order (seeking back a partition
read past its next offset), notes where assigned partitions resume, and asks the broker
which input partitions are read to their end: its own (idleness) and, for a detect shard,
the ones other workers call idle (whether records wait behind them after all).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry, Counter

from aupwatch.streams.config import AppConfig
from aupwatch.streams.kafka_io import first_offset_from
from aupwatch.streams.worker.faust_app import seek_to_committed, set_fetch_wait, settled
from aupwatch.streams.worker.flow import FlowMetrics, InputFlow
from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.offsets import SEEK, TAKE, Offsets

log = logging.getLogger(__name__)

SEEK_REASONS = ("gap", "stalled")


class SeekMetrics:
    """Partitions sought again, in the worker's registry.

    Args:
        registry: Where to register the counter.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seeks = Counter(
            "aupwatch_partition_seeks_total",
            "Partitions sought again: read past their next offset (gap), or not read there "
            "for 5 s while the log holds a record there (stalled).",
            ["reason"],
            registry=registry,
        )
        for reason in SEEK_REASONS:
            self.seeks.labels(reason=reason)  # from zero, so increase() sees the first

    def sought(self, reason: str, n: int) -> None:
        """Counts ``n`` partitions sought again for ``reason`` (one of ``SEEK_REASONS``)."""
        self.seeks.labels(reason=reason).inc(n)


class PartitionTracker:
    """Offsets and end offsets of the partitions one worker consumes.

    Args:
        app: The Faust app (its consumer seeks and reads end offsets).
        config: Application config.
        names: Topic names by role.
        inputs: The input partitions' clocks and idleness.
        metrics: Optional ``Metrics``.
    """

    def __init__(
        self,
        app: Any,
        config: AppConfig,
        names: dict[str, str],
        inputs: InputPartitions,
        metrics: Any = None,
    ) -> None:
        self.app = app
        self.config = config
        self.names = names
        self.inputs = inputs
        self.metrics = metrics
        self.offsets = Offsets()
        # partition -> (start, end, first record at or after start): a probe's answer
        self.probed: dict[TP, tuple[int, int, int]] = {}
        registry = getattr(metrics, "registry", None)
        self.seek_metrics = SeekMetrics(registry) if registry is not None else None
        self.flow = InputFlow(
            app,
            names["input"],
            names["detect"],
            inputs,
            config.worker.max_undecided,
            FlowMetrics(registry) if registry is not None else None,
        )

    async def admit(self, events: list[Any]) -> list[Any]:
        """The events to take: of assigned partitions, each partition in offset order.

        A partition read past its next offset is sought back to it; messages of input
        partitions paused for backpressure are held back (``flow``).
        """
        events = self.flow.gate(events)
        await self.flow.apply()  # a partition the gate paused stops fetching now
        assigned = self.app.consumer.assignment()
        kept = []
        seek = {}
        for ev in events:
            msg = ev.message
            if msg.tp not in assigned:
                continue  # taken before a rebalance: its new owner reads it again
            tp = (msg.topic, msg.partition)
            verdict = self.offsets.admit(tp, msg.offset)
            if verdict == TAKE:
                kept.append(ev)
            elif verdict == SEEK:
                seek[msg.tp] = self.offsets.expect[tp]
                log.warning(
                    "%s[%d]: read offset %d, expected %d; seeking back",
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    seek[msg.tp],
                )
        for tp, offset in list(seek.items()):
            # a record there was skipped, or the log has none (transaction markers etc.)
            first = await asyncio.to_thread(
                first_offset_from, self.config.kafka, tp.topic, tp.partition, offset
            )
            if first is not None and first > offset:
                log.info("%s[%d]: no records at %d..%d", tp.topic, tp.partition, offset, first - 1)
                self.offsets.skip_to((tp.topic, tp.partition), first)
                seek[tp] = first
        if seek:
            await self.app.consumer.seek_wait(seek)
            if self.seek_metrics is not None:
                self.seek_metrics.sought("gap", len(seek))
        self.offsets.taken(kept)
        return kept

    async def reseek(self, now: float) -> None:
        """Seeks again partitions not read at their next offset for a while, with records there.

        Broker round trips: called outside the worker's lock.
        """
        if not settled(self.app):
            self.offsets.hold()  # Faust holds every partition, and seeks them itself after
            return
        paused = self.flow.applied | set(self.flow.held)
        stalled = {
            TP(t, p): o
            for (t, p), o in self.offsets.stalled(now).items()
            if not (t == self.names["input"] and p in paused)
        }
        if not stalled:
            return
        try:
            ends = await self.app.consumer.highwaters(*stalled)
        except Exception as exc:  # no answer: asked again after ``retry_after``
            log.warning("cannot read end offsets: %s", exc)
            return
        behind = {tp: (o, ends[tp]) for tp, o in stalled.items() if ends.get(tp, 0) > o}
        firsts = await asyncio.gather(*(self._first(tp, o, end) for tp, (o, end) in behind.items()))
        retry = {}
        for (tp, (offset, end)), first in zip(behind.items(), firsts, strict=True):
            key = (tp.topic, tp.partition)
            if first is None or first >= end or self.offsets.expect.get(key) != offset:
                continue  # no answer, transaction markers only, or read (or revoked) meanwhile
            if first > offset:
                self.offsets.skip_to(key, first)
            retry[tp] = first
        if retry:
            log.warning("next offsets not read for a while; seeking again: %s", retry)
            await self.app.consumer.seek_wait(retry)
            if self.seek_metrics is not None:
                self.seek_metrics.sought("stalled", len(retry))

    async def _first(self, tp: TP, start: int, end: int) -> int | None:
        """The first record's offset at or after ``start``, below ``end`` (``end``: none).

        None when the broker gave no answer. Remembered per partition while ``start`` and
        ``end`` stay the same: a quiet partition ending in a transaction marker is probed once.
        """
        known = self.probed.get(tp)
        if known is None or known[:2] != (start, end):
            first = await asyncio.to_thread(
                first_offset_from, self.config.kafka, tp.topic, tp.partition, start, 5.0, end
            )
            if first is None:
                return None
            known = self.probed[tp] = (start, end, first)
        return known[2]

    async def assigned(self, assigned: Any) -> int:
        """Notes where each assigned partition resumes; returns the input partitions held.

        aiokafka seeks only to committed offsets above 0, and Faust can resume a partition
        this consumer read in an earlier generation past messages nobody committed; those
        would never be decided. ``admit`` holds every partition to its offsets.
        """
        ours = {self.names[r] for r in ("input", "detect", "throttle", "alerts-in")}
        tps = [tp for tp in assigned if tp.topic in ours]
        if tps:
            consumer: Any = self.app.consumer
            await set_fetch_wait(consumer, self.config.worker.fetch_max_wait)
            committed = await seek_to_committed(consumer, tps)
            for tp in tps:
                offset = committed.get(tp)
                start = offset if offset and offset > 0 else 0
                self.offsets.start((tp.topic, tp.partition), start)
            # in the consumer's thread (a direct seek races its fetcher)
            await consumer.seek_wait({tp: 0 for tp in tps if not committed.get(tp)})
        held = {tp.partition for tp in assigned if tp.topic == self.names["input"]}
        self.flow.restart(held)  # read again from their committed offsets
        self.inputs.assign(held, time.monotonic())
        return len(held)

    def revoked(self, revoked: Any) -> None:
        """Forgets revoked partitions: their uncommitted messages are read again."""
        lost = {(tp.topic, tp.partition) for tp in revoked}
        self.flow.lost({tp: q for tp, q in self.offsets.pending.items() if tp in lost})
        self.flow.restart({tp.partition for tp in revoked if tp.topic == self.names["input"]})
        for tp in revoked:
            if tp.topic == self.names["input"]:
                self.inputs.revoke(tp.partition)
                if self.metrics is not None:
                    self.metrics.remove_consumer_lag(tp.topic, tp.partition)
        self.offsets.forget({(tp.topic, tp.partition) for tp in revoked})
        for tp in revoked:
            self.probed.pop(tp, None)

    async def caught_up(self) -> dict[int, int]:
        """Held input partitions whose every record has been taken, with their end offsets."""
        tps = [TP(self.names["input"], q) for q in self.inputs.assigned_at]
        if not tps:
            return {}
        try:
            ends = await self.app.consumer.highwaters(*tps)
        except Exception as exc:  # broker unreachable: then nothing counts as idle
            log.warning("cannot read input end offsets: %s", exc)
            return {}
        done = {}
        for tp in tps:
            # the next offset to take, not the fetch position: fetched is not yet read
            nxt = self.offsets.expect.get((tp.topic, tp.partition))
            if nxt is None or tp not in ends:
                continue
            lag = max(0, ends[tp] - nxt)
            if lag and await self._only_markers(tp, nxt, ends[tp]):
                lag = 0
            if self.metrics is not None:
                self.metrics.consumer_lag(tp.topic, tp.partition, lag)
            if not lag:
                done[tp.partition] = ends[tp]
        return done

    async def _only_markers(self, tp: TP, start: int, end: int) -> bool:
        """Whether offsets ``start`` to ``end - 1`` of a quiet input partition hold no record.

        A transactional producer ends each transaction with a control record that no
        consumer receives, so the next offset to take stops short of the end offset.
        """
        q = tp.partition
        if not self.inputs.quiet(q, time.monotonic(), self.config.worker.idle_timeout):
            return False  # records are still coming: it is not idle anyway
        first = await self._first(tp, start, end)
        return first is not None and first >= end

    async def waiting(self, idle: dict[str, int | None]) -> frozenset[str]:
        """Input sources marked idle that have records behind the offset they were read to.

        Called after a batch arrived: a replay's begin markers are in every partition
        before its first record, so a partition another worker still calls idle shows them
        here, and no shard decides past its records (as Kafka Streams' KIP-695 does).

        Args:
            idle: Idle input sources (``i<partition>``) with the end offset read to.
        """
        if not idle:
            return frozenset()
        topic = self.names["input"]
        tps = {TP(topic, int(source[1:])): source for source in idle}
        try:
            ends = await self.app.consumer.highwaters(*tps)
        except Exception as exc:  # no answer: none counts as idle, decisions wait
            log.warning("cannot read input end offsets: %s", exc)
            return frozenset(idle)
        out = set()
        for tp, source in tps.items():
            read_to = idle[source]
            if read_to is None or tp not in ends or ends[tp] > read_to:
                out.add(source)
        return frozenset(out)
