"""Checkpoints: outputs made durable, changed state written, decided input committed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from aupwatch.detectors.engine import NEVER, WRITTEN
from aupwatch.streams.worker.faust_app import PartitionWriter, changelog_topic, commit_offsets
from aupwatch.streams.worker.keys import STATE_FORMAT, format_key, frontier_key
from aupwatch.streams.worker.offsets import Offsets
from aupwatch.streams.worker.stages import Stage


class Checkpointer:
    """Writes each stage's changed state to its changelog and commits decided input.

    Args:
        app: The Faust app (its producer and consumer).
        stages: The worker's stages by name.
        tables: Their Faust tables by the same names.
        offsets: What may be committed.
        interval: Seconds between checkpoints.
        lock: The worker's lock (a checkpoint must see no half-applied batch).
        metrics: Optional ``Metrics``; each checkpoint's duration is observed in it.
        before: Sends what the worker still holds back of decided input's outputs.
    """

    def __init__(
        self,
        app: Any,
        stages: dict[str, Stage],
        tables: dict[str, Any],
        offsets: Offsets,
        interval: float,
        lock: asyncio.Lock,
        metrics: Any = None,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.stages = stages
        self.tables = tables
        self.offsets = offsets
        self.interval = interval
        self.lock = lock
        self.metrics = metrics
        self.before = before
        self.last = time.monotonic()

    async def maybe(self) -> None:
        """Checkpoints when ``interval`` has passed since the last one."""
        if time.monotonic() - self.last < self.interval:
            return
        async with self.lock:
            await self.run()

    async def run(self) -> None:
        """Outputs durable first, then changed state, then commit decided input.

        Call with the lock held.
        """
        started = time.perf_counter()
        if self.before is not None:
            await self.before()
        producer = self.app.producer
        await producer.flush()
        for name, stage in self.stages.items():
            changelog = changelog_topic(self.tables[name])
            for p, shard in stage.shards.items():
                wm = shard.wm
                out = PartitionWriter(producer, changelog, p)
                if stage.data.get(format_key(p)) != STATE_FORMAT:  # first: how to read the rest
                    stage.data[format_key(p)] = STATE_FORMAT
                    await out.add(format_key(p).encode(), orjson.dumps(STATE_FORMAT))
                for stale in stage.seen_log.take_stale(p):  # before chunks that reuse a key
                    await out.add(stale.encode(), None)
                for key in shard.take_dirty():
                    entry = stage.data.get(key)
                    if entry is not None:
                        if len(entry) > WRITTEN:
                            entry[WRITTEN] = wm
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
        for stage in self.stages.values():
            stage.expire()  # durable now: marks its frontiers passed decide nothing more
        offsets = self.offsets.release()
        if offsets:
            await commit_offsets(self.app.consumer, offsets)
        self.last = time.monotonic()
        if self.metrics is not None:
            self.metrics.observe_checkpoint(time.perf_counter() - started)
