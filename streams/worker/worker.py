"""The Faust worker: input -> ingest -> detect -> throttle -> alerts, over Kafka.

Design (see README, "Design"): every stage takes batches (``noack_take``), keeps its
detector state in plain dicts backed by a Faust table whose changelog is written once per
changed key per checkpoint, and acknowledges an input message only after every item it
carried has been decided, its outputs sent and its state written. Internal topics carry
batches of items plus watermark markers, partitioned by state key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from typing import Any

import faust
import orjson
from faust.types import TP

from aupwatch.detectors.engine import NEVER, Output
from aupwatch.detectors.pipeline import DETECTOR_OF_PREFIX, route
from aupwatch.schemas.decode import decode_line
from aupwatch.schemas.errors import BadRecord
from aupwatch.streams import markers
from aupwatch.streams.config import AppConfig
from aupwatch.streams.kafka_io import first_offset_from
from aupwatch.streams.worker.faust_app import (
    PartitionWriter,
    StateTable,
    faust_settings,
    topic_names,
)
from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.stages import (
    SEEK,
    TAKE,
    Offsets,
    Stage,
    encode_batches,
    frontier_key,
    partition_of,
)

log = logging.getLogger(__name__)

STALL_AFTER = 60.0  # seconds a stage may hold items without progress before it says why


class Worker:
    """Builds the Faust app, its topics, tables and agents.

    Args:
        config: Application config.
        input_partitions: Partition count of the input topic (markers are expected from
            every one).
        metrics: Optional ``aupwatch.streams.ops.metrics.Metrics``.
        sink: Optional Alertmanager sink with ``submit(alert)``.
    """

    def __init__(
        self, config: AppConfig, input_partitions: int, metrics: Any = None, sink: Any = None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.sink = sink
        self.names = topic_names(config)
        self.app = faust.App(config.kafka.group_id, **faust_settings(config))
        self.n = config.kafka.partitions
        self.n_input = input_partitions
        self.lock = asyncio.Lock()
        self.inputs = InputPartitions(
            config.detectors.allowed_lateness, config.worker.replay_timeout
        )
        self.offsets = Offsets()
        self.last_checkpoint = time.monotonic()
        self.sized_at = 0.0
        self.stall_logged: dict[tuple[str, int], float] = {}
        self.topics = {
            role: self.app.topic(
                name,
                key_serializer="raw",
                value_serializer="raw",
                partitions=None if role == "input" else self.n,
                # offsets are committed by the worker (see Offsets), not by Faust's acks
                acks=False,
            )
            for role, name in self.names.items()
        }
        self.tables: dict[str, Any] = {}
        self.stages: dict[str, Stage] = {}
        det = self.config.detectors
        sources = {
            "detect": [f"i{q}" for q in range(input_partitions)],
            "throttle": [f"d{p}" for p in range(self.n)],
            "alerts": [f"d{p}" for p in range(self.n)] + [f"t{p}" for p in range(self.n)],
        }
        for name in ("detect", "throttle", "alerts"):
            table = StateTable(
                self.app,
                name=f"{name}-state",
                partitions=self.n,
                recovery_buffer_size=10000,
                beacon=self.app.tables.beacon,
            )
            self.app.tables.add(table)
            self.tables[name] = table

            async def recovered(name: str = name, table: Any = table) -> None:
                log.info("recovered %s state: %d keys", name, len(table.data.data))

            table.on_recover(recovered)
            self.stages[name] = Stage(
                name, det, self.n, sources[name], table.data.data, config.worker.seen_chunk
            )
        self._agents()
        self.app.timer(1.0)(self._tick)
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    def _agents(self) -> None:
        batch, within = self.config.worker.batch_size, self.config.worker.batch_within
        plan = (
            ("ingest", "input", None),
            ("detect", "detect", "d"),
            ("throttle", "throttle", "t"),
            ("alerts", "alerts-in", None),
        )
        for name, role, prefix in plan:

            async def agent(stream: Any, name: str = name, prefix: str | None = prefix) -> None:
                try:
                    async for events in stream.noack_take(batch, within):
                        async with self.lock:
                            events = await self._admit(events)
                            if not events:
                                continue
                            self.offsets.taken(events)
                            if name == "ingest":
                                await self._ingest(events)
                            else:
                                await self._stage(name, prefix, events)
                            self.offsets.decide(self._done)
                        if self.metrics is not None:
                            self.metrics.batch(name)
                        await self._maybe_checkpoint()
                except Exception as exc:
                    # a stalled stage would hold every watermark: stop the worker instead,
                    # unacknowledged input is re-read by the restarted one
                    log.exception("stage %s failed; stopping the worker", name)
                    await self.app.crash(exc)
                    raise

            self.app.agent(self.topics[role], name=f"aupwatch-{name}")(agent)

    async def _ingest(self, events: list[Any]) -> None:
        """Decodes input messages, dead-letters bad lines, routes items to detect."""
        n, metrics = self.n, self.metrics
        max_bytes, inputs = self.config.max_record_bytes, self.inputs
        by_part: dict[int, list[Any]] = defaultdict(list)
        counts: Counter[tuple[str, bool]] = Counter()
        touched: set[int] = set()
        now = time.monotonic()
        for ev in events:
            msg = ev.message
            q = msg.partition
            touched.add(q)
            marker = markers.decode(msg.headers, ev.value)
            if marker is not None:
                inputs.control(q, marker, now)
                continue
            clock = inputs.read(q, now)
            origin = int((msg.timestamp or 0) * 1000)
            value = ev.value or b""
            for line_no, line in enumerate(value.split(b"\n"), 1):
                if not line.strip():
                    continue
                try:
                    rec = decode_line(line, max_bytes)
                except BadRecord as exc:
                    await self._dead_letter(exc, line, msg, line_no)
                    continue
                counts[rec.kind, clock.see(rec.ts)] += 1
                source = f"i{q}"
                for idx, item in enumerate(route(rec, origin)):
                    seq = (msg.offset, line_no, idx)  # lets detect drop re-read records
                    by_part[partition_of(item[3], n)].append((*item, source, seq))
        if metrics is not None:
            # once per batch and kind: a labelled counter update costs microseconds
            for (kind, late), count in counts.items():
                metrics.record(kind, "late" if late else "accepted", count)
                if late:
                    metrics.late(kind, count)
        marks = [inputs.marker(q, False) for q in sorted(touched)]
        if inputs.idle & touched:
            marks += inputs.woken(touched, await self._caught_up())
        await self._send_parts("detect", by_part, marks)
        self._done = list(events)

    async def _stage(self, name: str, prefix: str | None, events: list[Any]) -> None:
        """Feeds internal messages to shards, advances them, sends what they produce."""
        stage = self.stages[name]
        out = Output()
        origin: list[list[int]] = [[], []]  # producing partition of each forward/occurrence

        def attribute(p: int) -> None:
            origin[0].extend([p] * (len(out.forwards) - len(origin[0])))
            origin[1].extend([p] * (len(out.occurrences) - len(origin[1])))

        touched: set[int] = set()
        for ev in events:
            p = ev.message.partition
            touched.add(p)
            stage.take(p, ev.value, ev, out)
            attribute(p)
        waiting = await self._waiting(stage, touched) if stage.from_input else frozenset()
        for p in sorted(touched):
            stage.advance({p}, out, waiting)
            attribute(p)
        if out.late_items:
            log.info("%s: %d items later than the watermark", name, out.late_items)
        if out.duplicates and self.metrics is not None:
            self.metrics.duplicates(name, out.duplicates)
        self._done = out.tokens
        await self._emit(stage, prefix, out, only_changed=True, origin=origin)

    async def _waiting(self, stage: Stage, touched: set[int]) -> frozenset[str]:
        """Input sources marked idle that have records behind the offset they were read to.

        The end offsets are read after this batch arrived: a replay's begin markers are in
        every partition before its first record, so a partition another worker still
        calls idle shows them here, and no shard decides past its records (KIP-695).
        """
        idle = stage.idle_ends(touched)
        if not idle:
            return frozenset()
        topic = self.names["input"]
        tps = {TP(topic, int(source[1:])): source for source in idle}
        try:
            ends = await self.app.consumer.highwaters(*tps)
        except Exception as exc:  # no answer: none counts as idle, decisions wait
            log.warning("cannot read input end offsets: %s", exc)
            return frozenset(idle)
        return frozenset(
            source
            for tp, source in tps.items()
            if idle[source] is None or ends.get(tp, 1 << 62) > idle[source]  # type: ignore[operator]
        )

    async def _emit(
        self,
        stage: Stage,
        prefix: str | None,
        out: Output,
        only_changed: bool,
        origin: list[list[int]] | None = None,
    ) -> None:
        n = self.n
        late = set(out.late_outputs)
        fwd: dict[int, list[Any]] = defaultdict(list)
        occ: dict[int, list[Any]] = defaultdict(list)
        if origin is not None:
            # tag outputs with their source and whether a late item made them (see Stage)
            for i, item in enumerate(out.forwards):
                tagged = (*item[:6], f"{prefix}{origin[0][i]}", -1 if i in late else 0)
                fwd[partition_of(item[3], n)].append(tagged)
            for i, item in enumerate(out.occurrences):
                tagged = (*item[:6], f"{prefix}{origin[1][i]}", -1 if -1 - i in late else 0)
                occ[partition_of(item[3], n)].append(tagged)
        if fwd:
            await self._send_parts("throttle", fwd, [], only_items=True)
        marks = stage.markers(prefix, only_changed) if prefix else []
        if prefix == "d" and marks:
            await self._send_parts("throttle", {}, marks)
        if occ or marks:
            await self._send_parts("alerts-in", occ, marks, only_items=not marks)
        if out.alerts:
            await self._send_alerts(out)
        if self.metrics is not None:
            if out.unowned:
                self.metrics.unowned(out.unowned)
            for alert in out.suppressed:  # one version per excepted occurrence
                self.metrics.suppressed(alert["detector"], alert["reason"])
            for p, shard in stage.shards.items():
                if shard.wm > 0:
                    self.metrics.set_watermark(stage.name, p, shard.wm / 1e6)

    async def _send_parts(
        self,
        role: str,
        by_part: dict[int, list[Any]],
        marks: list[list[Any]],
        only_items: bool = False,
    ) -> None:
        topic = self.topics[role]
        chunk = self.config.worker.internal_batch
        parts = by_part if only_items else range(self.n)
        for p in parts:
            for value in encode_batches(by_part.get(p, []), marks, chunk):
                await topic.send(value=value, partition=p)

    async def _send_alerts(self, out: Output) -> None:
        topic = self.topics["alerts"]
        now_ms = time.time() * 1000
        for alert, origin in zip(out.alerts, out.origins, strict=True):
            await topic.send(key=alert["alert_id"].encode(), value=orjson.dumps(alert))
            if self.metrics is not None:
                new = alert["count"] == 1
                self.metrics.alert(alert["detector"], alert["reason"], alert["severity"], new)
                if origin:
                    self.metrics.observe_latency(max(0.0, (now_ms - origin) / 1000))
            if self.sink is not None:
                self.sink.submit(alert)

    async def _dead_letter(self, exc: BadRecord, line: bytes, msg: Any, line_no: int) -> None:
        headers = [
            ("aupwatch.reason", exc.reason.encode()),
            ("aupwatch.error", exc.message.encode()[:1000]),
            ("aupwatch.source.topic", msg.topic.encode()),
            ("aupwatch.source.partition", str(msg.partition).encode()),
            ("aupwatch.source.offset", str(msg.offset).encode()),
            ("aupwatch.source.line", str(line_no).encode()),
        ]
        await self.topics["dead"].send(value=line, headers=headers)
        if self.metrics is not None:
            self.metrics.record("unknown", "dead_letter")
            self.metrics.dead_letter(exc.reason)

    async def _maybe_checkpoint(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_checkpoint < (
            self.config.worker.checkpoint_interval
        ):
            return
        async with self.lock:
            await self._checkpoint()

    async def _checkpoint(self, commit: bool = True) -> None:
        """Outputs durable first, then changed state, then commit decided input.

        Args:
            commit: Commit input offsets; not in a rebalance, where the partitions may
                already belong to another member.
        """
        producer = self.app.producer
        await producer.flush()
        for name, stage in self.stages.items():
            changelog = self.tables[name].changelog_topic.get_topic_name()
            for p, shard in stage.shards.items():
                wm = shard.wm
                out = PartitionWriter(producer, changelog, p)
                for stale in stage.seen_log.take_stale(p):  # before chunks that reuse a key
                    await out.add(stale.encode(), None)
                for key in shard.take_dirty():
                    entry = stage.data.get(key)
                    if entry is not None:
                        if len(entry) > 3:
                            entry[3] = wm
                        else:
                            entry.append(wm)
                    for k, v in stage.seen_log.records(key, entry):
                        await out.add(k.encode(), None if v is None else orjson.dumps(v))
                # last: every key before it in this partition is at least this current
                if wm > NEVER and stage.data.get(frontier_key(p)) != wm:
                    stage.data[frontier_key(p)] = wm
                    await out.add(frontier_key(p).encode(), orjson.dumps(wm))
                await out.close()
        await producer.flush()
        if commit:
            offsets = self.offsets.release()
            if offsets:
                consumer: Any = self.app.consumer  # commits these offsets as given
                await consumer._commit({TP(t, p): o for (t, p), o in offsets.items()})
        self.last_checkpoint = time.monotonic()

    async def _tick(self) -> None:
        """Once a second: idle input partitions release the watermark; markers are resent."""
        # broker round trips outside the lock: holding it would stall every stage
        caught_up = await self._caught_up()
        async with self.lock:
            now = time.monotonic()
            marks = self.inputs.tick(caught_up, now, self.config.worker.idle_timeout)
            if marks:
                await self._send_parts("detect", {}, marks)
            retry = self.offsets.overdue(now)
            if retry:
                log.warning("seeking again: %s", retry)
                await self.app.consumer.seek_wait({TP(t, p): o for (t, p), o in retry.items()})
            for name, prefix in (("detect", "d"), ("throttle", "t")):
                await self._emit(self.stages[name], prefix, Output(), only_changed=False)
            self._report_stalls(now)
            if self.metrics is not None and now - self.sized_at >= 10.0:
                # the tables hold only this worker's partitions: count keys by prefix
                self.sized_at = now
                sizes = Counter(
                    k[0] for stage in self.stages.values() for k in stage.data if k[0] != "\x00"
                )
                detectors = Counter[str]()
                for prefix, count in sizes.items():
                    detectors[DETECTOR_OF_PREFIX[prefix]] += count
                for detector, count in detectors.items():
                    self.metrics.set_state_keys(detector, count)
        await self._maybe_checkpoint()

    def _report_stalls(self, now: float) -> None:
        """Says, once a minute, which stage waits with items undecided and for what."""
        for q, producers in self.inputs.abandoned(now).items():
            log.warning(
                "input partition %d: replay %s sent nothing for %.0f s and no end marker; "
                "no longer waiting for it",
                q,
                ", ".join(producers),
                self.inputs.replay_timeout,
            )
        for name, stage in self.stages.items():
            worst = 0.0
            for p, (seconds, items, lagging) in stage.stalled(now).items():
                worst = max(worst, seconds)
                if seconds >= STALL_AFTER and now - self.stall_logged.get((name, p), 0.0) >= (
                    STALL_AFTER
                ):
                    self.stall_logged[name, p] = now
                    log.warning(
                        "%s[%d]: %d items undecided, no progress for %.0f s: waiting for %s",
                        name,
                        p,
                        items,
                        seconds,
                        ", ".join(lagging) or "nothing (all idle)",
                    )
            if self.metrics is not None:
                self.metrics.set_stalled(name, worst)

    async def _caught_up(self) -> dict[int, int]:
        """Input partitions whose every record has been taken, with their end offsets."""
        consumer = self.app.consumer
        tps = [TP(self.names["input"], q) for q in self.inputs.assigned_at]
        if not tps:
            return {}
        try:
            ends = await consumer.highwaters(*tps)
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
        known = self.inputs.probed.get(q)
        if known is None or known[:2] != (start, end):
            first = await asyncio.to_thread(
                first_offset_from, self.config.kafka, tp.topic, q, start, 5.0, end
            )
            if first is None:
                return False  # no answer: not idle
            known = self.inputs.probed[q] = (start, end, first >= end)
        return known[2]

    async def _on_assigned(self, app: Any, assigned: Any, **_: Any) -> None:
        await self._start_offsets(assigned)
        now = time.monotonic()
        inputs = {tp.partition for tp in assigned if tp.topic == self.names["input"]}
        self.inputs.assign(inputs, now)
        if self.metrics is not None:
            self.metrics.worker_assigned(len(inputs))

    async def _start_offsets(self, assigned: Any) -> None:
        """Notes where each assigned partition resumes: its committed offset, or 0.

        aiokafka seeks only to committed offsets above 0, and Faust can resume a partition
        this consumer read in an earlier generation past messages nobody committed; those
        would never be decided. ``_admit`` holds every partition to its offsets.
        """
        ours = {self.names[r] for r in ("input", "detect", "throttle", "alerts-in")}
        tps = [tp for tp in assigned if tp.topic in ours]
        if not tps:
            return
        consumer: Any = self.app.consumer
        committed = await consumer.seek_to_committed()
        for tp in tps:
            offset = committed.get(tp)
            self.offsets.start((tp.topic, tp.partition), offset if offset and offset > 0 else 0)
        # in the consumer's thread (a direct seek races its fetcher)
        await consumer.seek_wait({tp: 0 for tp in tps if not committed.get(tp)})

    async def _admit(self, events: list[Any]) -> list[Any]:
        """The events to take: of assigned partitions, each partition in offset order.

        A partition read past its next offset is sought back to it.
        """
        assigned = self.app.consumer.assignment()
        kept = []
        seek = {}
        now = time.monotonic()
        for ev in events:
            msg = ev.message
            if msg.tp not in assigned:
                continue  # taken before a rebalance: its new owner reads it again
            tp = (msg.topic, msg.partition)
            verdict = self.offsets.admit(tp, msg.offset, now)
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
                self.offsets.skip_to((tp.topic, tp.partition), first, now)
                seek[tp] = first
        if seek:
            await self.app.consumer.seek_wait(seek)
        return kept

    async def _on_revoked(self, app: Any, revoked: Any, **_: Any) -> None:
        # persist what is decided first: partitions are re-read from committed offsets after
        # the rebalance, and a shard rebuilt from its table must match its frontier
        async with self.lock:
            try:
                await self._checkpoint(commit=False)
            except Exception:  # the broker may be unreachable: then the last checkpoint holds
                log.exception("checkpoint before rebalance failed")
        roles = {
            self.names["detect"]: "detect",
            self.names["throttle"]: "throttle",
            self.names["alerts-in"]: "alerts",
        }
        for tp in revoked:
            if tp.topic in roles:
                self.stages[roles[tp.topic]].drop(tp.partition)
            elif tp.topic == self.names["input"]:
                self.inputs.revoke(tp.partition)
                if self.metrics is not None:
                    self.metrics.remove_consumer_lag(tp.topic, tp.partition)
        self.offsets.forget({(tp.topic, tp.partition) for tp in revoked})
        if self.metrics is not None:
            self.metrics.worker_rebalance()
