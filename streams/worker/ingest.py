"""The worker's first stage: decode input messages, dead-letter bad lines, route items."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from aupwatch.detectors.pipeline import route
from aupwatch.schemas.decode import decode_line
from aupwatch.schemas.errors import BadRecord
from aupwatch.streams import markers
from aupwatch.streams.rejected import rejected_kind
from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.outbox import Outbox
from aupwatch.streams.worker.stages import partition_of


class Ingest:
    """Turns input messages into detect items, markers and dead letters.

    Args:
        inputs: The input partitions' clocks and idleness.
        outbox: Sends detect batches.
        dead_topic: The Faust dead-letter topic.
        max_record_bytes: Larger lines are dead letters (``too_large``).
        caught_up: Asks the broker which held input partitions are read to their end.
        metrics: Optional ``Metrics``.
    """

    def __init__(
        self,
        inputs: InputPartitions,
        outbox: Outbox,
        dead_topic: Any,
        max_record_bytes: int,
        caught_up: Callable[[], Awaitable[dict[int, int]]],
        metrics: Any = None,
    ) -> None:
        self.inputs = inputs
        self.outbox = outbox
        self.dead_topic = dead_topic
        self.max_record_bytes = max_record_bytes
        self.caught_up = caught_up
        self.metrics = metrics

    async def take(self, events: list[Any]) -> list[Any]:
        """Ingests a batch of input messages; returns the events now fully handled."""
        n, metrics = self.outbox.partitions, self.metrics
        max_bytes, inputs = self.max_record_bytes, self.inputs
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
                    await self.dead_letter(exc, line, msg, line_no)
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
            marks += inputs.woken(touched, await self.caught_up())
        await self.outbox.parts("detect", by_part, marks)
        return events

    async def dead_letter(self, exc: BadRecord, line: bytes, msg: Any, line_no: int) -> None:
        """Sends a rejected line to the dead-letter topic with its reason and origin."""
        headers = [
            ("aupwatch.reason", exc.reason.encode()),
            ("aupwatch.error", exc.message.encode()[:1000]),
            ("aupwatch.source.topic", msg.topic.encode()),
            ("aupwatch.source.partition", str(msg.partition).encode()),
            ("aupwatch.source.offset", str(msg.offset).encode()),
            ("aupwatch.source.line", str(line_no).encode()),
        ]
        await self.dead_topic.send(value=line, headers=headers)
        if self.metrics is not None:
            self.metrics.record(rejected_kind(line), "dead_letter")
            self.metrics.dead_letter(exc.reason)
