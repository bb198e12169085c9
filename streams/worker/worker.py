"""The Faust worker: input -> ingest -> detect -> throttle -> alerts, over Kafka.

Design (docs/architecture.md): every stage takes batches (``noack_take``), keeps its
detector state in plain dicts backed by a Faust table whose changelog is written once per
changed key per checkpoint, and commits an input message only after every item it
carried has been decided, its outputs sent and its state written. Internal topics carry
batches of items plus watermark markers, partitioned by state key. This module builds the
topology and runs the stages; ingest, the outbox, the partition tracker and the
checkpointer are objects of their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from typing import Any

from aupwatch.detectors.engine import Output
from aupwatch.detectors.item import KEY, Item
from aupwatch.detectors.pipeline import DETECTOR_OF_PREFIX, Routing
from aupwatch.detectors.throttle import is_solo, solo_forward
from aupwatch.errors import AupwatchError
from aupwatch.streams.config import AppConfig
from aupwatch.streams.worker.checkpoint import Checkpointer
from aupwatch.streams.worker.emitted import read_emitted
from aupwatch.streams.worker.faust_app import (
    StateTable,
    WorkerApp,
    table_dict,
)
from aupwatch.streams.worker.ingest import Ingest
from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.keys import format_key, is_state, partition_of
from aupwatch.streams.worker.link_gate import LinkGate, notices_of
from aupwatch.streams.worker.outbox import Outbox
from aupwatch.streams.worker.settings import faust_settings
from aupwatch.streams.worker.stages import Stage
from aupwatch.streams.worker.stalls import Stalls
from aupwatch.streams.worker.topics import topic_names
from aupwatch.streams.worker.tracker import PartitionTracker
from aupwatch.streams.worker.wire import tag

log = logging.getLogger(__name__)

STAGES = (("detect", "detect", "d"), ("throttle", "throttle", "t"), ("alerts", "alerts-in", None))


class Worker:
    """Builds the Faust app, its topics, tables and agents, and runs the stages.

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
        self.names = topic_names(config)
        self.app = WorkerApp(config.kafka.group_id, **faust_settings(config))
        self.n = config.kafka.partitions
        self.lock = asyncio.Lock()
        self.sized_at = 0.0
        self.emitted_unknown = True  # the alerts topic is read before the first alert
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
        self.inputs = InputPartitions(
            config.detectors.allowed_lateness, config.worker.replay_timeout
        )
        self.tracker = PartitionTracker(self.app, config, self.names, self.inputs, metrics)
        self.outbox = Outbox(self.topics, self.n, config.worker.internal_batch, metrics, sink)
        self.ingest = Ingest(
            self.inputs,
            self.outbox,
            self.topics["dead"],
            config.max_record_bytes,
            self.tracker.caught_up,
            metrics,
            config.worker.dead_letter_max_bytes,
            Routing.of(config.detectors),
            self.tracker.flow.ingested,
        )
        self.tables: dict[str, Any] = {}
        self.stages: dict[str, Stage] = {}
        # calls that link no one go on only where a link may touch them ("L": linking on)
        self.gate = (
            LinkGate(self.n, config.detectors.link_horizon)
            if "L" in Routing.of(config.detectors).prefixes
            else None
        )
        sources = {
            "detect": [f"i{q}" for q in range(input_partitions)],
            "throttle": [f"d{p}" for p in range(self.n)],
            "alerts": [f"d{p}" for p in range(self.n)] + [f"t{p}" for p in range(self.n)],
        }
        for name, _, _ in STAGES:
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
                log.info("recovered %s state: %d keys", name, len(table_dict(table)))

            table.on_recover(recovered)
            self.stages[name] = Stage(
                name,
                config.detectors,
                self.n,
                sources[name],
                table_dict(table),
                config.worker.seen_chunk,
            )
        self.stalls = Stalls(self.inputs, self.stages, metrics, self.app)
        self.checkpointer = Checkpointer(
            self.app,
            self.stages,
            self.tables,
            self.tracker.offsets,
            config.worker.checkpoint_interval,
            self.lock,
            metrics,
            before=self._send_held,
        )
        self._agents()
        self.app.timer(1.0)(self._tick)
        self.app.watch(self.stalls.watch)  # apart: a tick may wait on the lock for long
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    def _agents(self) -> None:
        batch, within = self.config.worker.batch_size, self.config.worker.batch_within
        plan = (("ingest", "input", None), *STAGES)
        for name, role, prefix in plan:

            async def agent(stream: Any, name: str = name, prefix: str | None = prefix) -> None:
                try:
                    async for events in stream.noack_take(batch, within):
                        async with self.lock:
                            events = await self.tracker.admit(events)
                            if not events:
                                continue
                            if name == "ingest":
                                done = await self.ingest.take(events)
                            else:
                                done = await self._stage(name, prefix, events)
                            self.tracker.offsets.decide(done)
                            await self._flow()
                        if self.metrics is not None:
                            self.metrics.batch(name)
                        await self.checkpointer.maybe()
                except AupwatchError as exc:  # a known cause: one line, no traceback
                    log.error("stage %s stopped the worker: %s", name, exc)
                    await self.app.crash(exc)
                    raise
                except Exception as exc:
                    # a stalled stage would hold every watermark: stop the worker instead,
                    # unacknowledged input is re-read by the restarted one
                    log.exception("stage %s failed; stopping the worker", name)
                    await self.app.crash(exc)
                    raise

            self.app.agent(self.topics[role], name=f"aupwatch-{name}")(agent)

    async def _stage(self, name: str, prefix: str | None, events: list[Any]) -> list[Any]:
        """Feeds internal messages to shards, advances them, sends what they produce.

        Returns:
            The events whose every item is now decided.
        """
        stage = self.stages[name]
        out = Output()
        origin: list[list[int]] = [[], []]  # producing partition of each forward/occurrence

        def attribute(p: int) -> None:
            origin[0].extend([p] * (len(out.forwards) - len(origin[0])))
            origin[1].extend([p] * (len(out.occurrences) - len(origin[1])))

        touched: set[int] = set()
        gate = self.gate if stage.from_input else None
        for ev in events:
            p = ev.message.partition
            touched.add(p)
            if gate is not None:
                # nothing ever committed: its topic is read from the start, every link with it
                gate.open(p, fresh=format_key(p) not in stage.data)
            notices = stage.take(p, ev.value, ev, out)
            if notices and gate is not None:
                gate.learn(p, notices)
            attribute(p)
        waiting = frozenset[str]()
        if stage.from_input:
            waiting = await self.tracker.waiting(stage.idle_ends(touched))
        for p in sorted(touched):
            stage.advance({p}, out, waiting)
            attribute(p)
        if out.late_items:
            log.info("%s: %d items later than the watermark", name, out.late_items)
        if out.duplicates and self.metrics is not None:
            self.metrics.duplicates(name, out.duplicates)
        await self._emit(stage, prefix, out, only_changed=True, origin=origin)
        return list(out.tokens)

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
        gate = self.gate if prefix == "d" else None
        found: dict[int, list[Item]] = defaultdict(list)  # forwards with links, by partition
        if origin is not None:
            # tag outputs with their source and whether a late item made them (see Stage)
            # outputs have one key each (only detect items carry a record's list of keys)
            for i, item in enumerate(out.forwards):
                if is_solo(item):  # a call's own detect item stands for its forward
                    if gate is not None and i not in late:
                        gate.hold(origin[0][i], item)
                        continue
                    item = solo_forward(item)
                elif gate is not None:
                    found[origin[0][i]].append(item)
                tagged = tag(item, f"{prefix}{origin[0][i]}", -1 if i in late else 0)
                key = item[KEY]
                assert isinstance(key, str)
                fwd[partition_of(key, n)].append(tagged)
            if gate is not None:
                released = gate.release_into(fwd, stage.shards, n)
                if self.metrics is not None:
                    self.metrics.link_gate(released)
            for i, item in enumerate(out.occurrences):
                tagged = tag(item, f"{prefix}{origin[1][i]}", -1 if -1 - i in late else 0)
                key = item[KEY]
                assert isinstance(key, str)
                occ[partition_of(key, n)].append(tagged)
        if fwd:
            await self.outbox.parts("throttle", fwd, [], only_items=True)
        held = None if gate is None else gate.cap
        marks = stage.markers(prefix, only_changed, held) if prefix else []
        if gate is not None:
            told = gate.tell(
                {p: notices_of(found.get(p, [])) for p in stage.shards},
                {p: shard.wm for p, shard in stage.shards.items()},
                only_changed,
            )
            if told:
                await self.outbox.notices(told)
        if prefix == "d" and marks:
            await self.outbox.parts("throttle", {}, marks)
        if occ or marks:
            await self.outbox.parts("alerts-in", occ, marks, only_items=not marks)
        if out.alerts:
            if self.emitted_unknown:
                # which versions readers have seen (a restart or a new owner re-derives them)
                topic = self.names["alerts"]
                emitted = await asyncio.to_thread(read_emitted, self.config.kafka, topic)
                self.outbox.remember(emitted)
                self.emitted_unknown = False
            await self.outbox.alerts(out)
        if self.metrics is not None:
            if out.unowned:
                self.metrics.unowned(out.unowned)
            for alert in out.suppressed:  # one version per excepted occurrence
                self.metrics.suppressed(alert["detector"], alert["reason"])
            for p, shard in stage.shards.items():
                if shard.wm > 0:
                    self.metrics.set_watermark(stage.name, p, shard.wm / 1e6)

    async def _send_held(self) -> None:
        """Sends every call the link gate holds (before a checkpoint: nothing may wait)."""
        if self.gate is None:
            return
        fwd: dict[int, list[Any]] = defaultdict(list)
        sent = self.gate.flush_into(fwd, self.n)
        if self.metrics is not None:
            self.metrics.link_gate({"checkpoint": sent})
        if fwd:
            await self.outbox.parts("throttle", fwd, [], only_items=True)
        for p, shard in self.stages["detect"].shards.items():
            self.gate.prune(p, shard.wm)

    async def _tick(self) -> None:
        """Once a second: idle input partitions release the watermark; markers are resent."""
        # broker round trips outside the lock: holding it would stall every stage
        caught_up = await self.tracker.caught_up()
        await self.tracker.reseek(time.monotonic())
        async with self.lock:
            now = time.monotonic()
            marks = self.inputs.tick(caught_up, now, self.config.worker.idle_timeout)
            if marks:
                await self.outbox.parts("detect", {}, marks)
            await self._flow()
            for name, _, prefix in STAGES[:2]:
                await self._emit(self.stages[name], prefix, Output(), only_changed=False)
            self.stalls.report(now)
            if now - self.sized_at >= 10.0:
                self.sized_at = now
                self._forget_emitted()
                if self.metrics is not None:
                    self._count_state()
        await self.checkpointer.maybe()
        self.stalls.ticked(time.monotonic())

    async def _flow(self) -> None:
        """Backpressure: pauses and resumes input partitions; takes what a resume released.

        Call with the lock held: released messages go before any later batch.
        """
        await self.tracker.flow.review(self._decided())
        released = self.tracker.flow.release()
        if released:
            events = await self.tracker.admit(released)
            if events:
                self.tracker.offsets.decide(await self.ingest.take(events))

    def _decided(self) -> int | None:
        """The lowest detect-stage watermark this worker knows (None: it knows none).

        Its own detect shards, and every detect shard's marker its throttle shards hold:
        input records at or below it are decided, their internal messages committable.
        """
        marks = [shard.wm for shard in self.stages["detect"].shards.values()]
        for upstream in self.stages["throttle"].upstream.values():
            marks.extend(wm for wm, _ in upstream.marks.values())
        return min(marks, default=None)

    def _forget_emitted(self) -> None:
        """Bounds the remembered alert versions by the alerts stage's watermark."""
        shards = self.stages["alerts"].shards.values()
        if shards:
            horizon = min(s.wm for s in shards) - self.config.detectors.dedup_window
            self.outbox.forget_before(horizon)

    def _count_state(self) -> None:
        """Sets the state-key gauges (the tables hold only this worker's partitions)."""
        detectors = Counter(
            DETECTOR_OF_PREFIX[k[0]]
            for stage in self.stages.values()
            for k in stage.data
            if is_state(k)
        )
        for detector, count in detectors.items():
            self.metrics.set_state_keys(detector, count)

    async def _on_assigned(self, app: Any, assigned: Any, **_: Any) -> None:
        if any(tp.topic == self.names["alerts-in"] for tp in assigned):
            # read before the next alert goes out, not here: a slow rebalance callback
            # can leave Faust's table recovery waiting forever
            self.emitted_unknown = True
        held = await self.tracker.assigned(assigned)
        if self.metrics is not None:
            self.metrics.worker_assigned(held)

    async def _on_revoked(self, app: Any, revoked: Any, **_: Any) -> None:
        # persist and commit what is decided first: partitions are re-read from committed
        # offsets after the rebalance, and a shard rebuilt from its table must match its
        # frontier. aiokafka keeps the member in its generation until this returns, so the
        # commit lands before any new owner reads, or the broker refuses it (then the
        # last checkpoint holds).
        async with self.lock:
            try:
                await self.checkpointer.run()
            except Exception:  # the broker may be unreachable: then the last checkpoint holds
                log.exception("checkpoint before rebalance failed")
        roles = {self.names[role]: name for name, role, _ in STAGES}
        for tp in revoked:
            if tp.topic in roles:
                self.stages[roles[tp.topic]].drop(tp.partition)
                if roles[tp.topic] == "detect" and self.gate is not None:
                    self.gate.drop(tp.partition)
        self.tracker.revoked(revoked)
        if self.metrics is not None:
            self.metrics.worker_rebalance()
