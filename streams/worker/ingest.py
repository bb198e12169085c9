"""The worker's first stage: decode input messages, dead-letter bad lines, route items."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from aupwatch.detectors.engine import NEVER
from aupwatch.detectors.item import KEY, Item
from aupwatch.detectors.pipeline import EVERY, Routing, route
from aupwatch.schemas.decode import decode_line
from aupwatch.schemas.errors import BadRecord
from aupwatch.streams import markers
from aupwatch.streams.rejected import rejected_kind
from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.keys import partition_of
from aupwatch.streams.worker.outbox import Outbox
from aupwatch.streams.worker.wire import tag

log = logging.getLogger(__name__)

DEAD_LETTER_TRIES = 4  # one send and three retries, 1, 2 and 4 s apart


class DeadLetter(NamedTuple):
    """A rejected line on its way to the dead-letter topic.

    Attributes:
        reason: Dead-letter reason code.
        kind: The record kind the line names (``unknown`` if none).
        value: The line, or its first bytes when it is too large.
        headers: Reason, error, origin (and length and SHA-256 when cut).
        where: Its origin, for the log.
    """

    reason: str
    kind: str
    value: bytes
    headers: list[tuple[str, bytes]]
    where: str


class Ingest:
    """Turns input messages into detect items, markers and dead letters.

    Args:
        inputs: The input partitions' clocks and idleness.
        outbox: Sends detect batches.
        dead_topic: The Faust dead-letter topic.
        max_record_bytes: Larger lines are dead letters (``too_large``).
        caught_up: Asks the broker which held input partitions are read to their end.
        metrics: Optional ``Metrics``.
        dead_letter_max_bytes: Longer dead letters keep only their first bytes.
        routing: Which items records feed (the same as replay's for the same settings).
        on_message: Called per record message with its partition, largest event time,
            valid records and lines (the backpressure ledger).
    """

    def __init__(
        self,
        inputs: InputPartitions,
        outbox: Outbox,
        dead_topic: Any,
        max_record_bytes: int,
        caught_up: Callable[[], Awaitable[dict[int, int]]],
        metrics: Any = None,
        dead_letter_max_bytes: int = 1_000_000,
        routing: Routing = EVERY,
        on_message: Callable[[int, int, int, int], None] | None = None,
    ) -> None:
        self.inputs = inputs
        self.outbox = outbox
        self.dead_topic = dead_topic
        self.max_record_bytes = max_record_bytes
        self.caught_up = caught_up
        self.metrics = metrics
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self.routing = routing
        self.on_message = on_message

    async def take(self, events: list[Any]) -> list[Any]:
        """Ingests a batch of input messages; returns the events now fully handled."""
        n, metrics = self.outbox.partitions, self.metrics
        max_bytes, inputs, routing = self.max_record_bytes, self.inputs, self.routing
        on_message = self.on_message
        by_part: dict[int, list[Any]] = defaultdict(list)
        counts: Counter[tuple[str, bool]] = Counter()
        touched: set[int] = set()
        dead: list[DeadLetter] = []
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
            top, valid, lines = NEVER, 0, 0
            for line_no, line in enumerate(value.split(b"\n"), 1):
                if not line.strip():
                    continue
                lines += 1
                try:
                    rec = decode_line(line, max_bytes)
                except BadRecord as exc:
                    dead.append(self.dead_letter(exc, line, msg, line_no))
                    continue
                valid += 1
                if rec.ts > top:  # a compare, not a max() call per record
                    top = rec.ts
                counts[rec.kind, clock.see(rec.ts)] += 1
                item = route(rec, origin, routing)
                if item is None:
                    continue
                # the seq lets detect drop re-read records
                for idx, (part, unit) in enumerate(split(item, n)):
                    by_part[part].append(tag(unit, f"i{q}", (msg.offset, line_no, idx)))
            if on_message is not None:
                on_message(q, top, valid, lines)
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
        await self.send_dead(dead)
        return events

    def dead_letter(self, exc: BadRecord, line: bytes, msg: Any, line_no: int) -> DeadLetter:
        """The dead letter of a rejected line: its reason and origin in headers.

        A line larger than ``dead_letter_max_bytes`` keeps its first bytes, and headers
        give its whole length and SHA-256 and say it was cut.
        """
        headers = [
            ("aupwatch.reason", exc.reason.encode()),
            ("aupwatch.error", exc.message.encode()[:1000]),
            ("aupwatch.source.topic", msg.topic.encode()),
            ("aupwatch.source.partition", str(msg.partition).encode()),
            ("aupwatch.source.offset", str(msg.offset).encode()),
            ("aupwatch.source.line", str(line_no).encode()),
        ]
        value = line
        if len(line) > self.dead_letter_max_bytes:
            value = line[: self.dead_letter_max_bytes]
            headers += [
                ("aupwatch.truncated", b"true"),
                ("aupwatch.length", str(len(line)).encode()),
                ("aupwatch.sha256", hashlib.sha256(line).hexdigest().encode()),
            ]
        where = f"{msg.topic}[{msg.partition}]@{msg.offset} line {line_no}"
        return DeadLetter(exc.reason, rejected_kind(line), value, headers, where)

    async def send_dead(self, letters: list[DeadLetter]) -> None:
        """Sends dead letters and waits until the broker has them; failures are retried.

        A letter still refused after ``DEAD_LETTER_TRIES`` is logged with its origin and
        counted as failed, never as sent.
        """
        last_error: BaseException | None = None
        for attempt in range(DEAD_LETTER_TRIES):
            if not letters:
                return
            if attempt:
                await asyncio.sleep(0.5 * 2**attempt)
            futures = [
                await self.dead_topic.send(value=d.value, headers=d.headers) for d in letters
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = []
            for letter, result in zip(letters, results, strict=True):
                if isinstance(result, BaseException):
                    failed.append(letter)
                    last_error = result
                elif self.metrics is not None:
                    self.metrics.record(letter.kind, "dead_letter")
                    self.metrics.dead_letter(letter.reason)
            letters = failed
        for letter in letters:
            log.error("dead letter of %s not written: %s", letter.where, last_error)
            if self.metrics is not None:
                self.metrics.dead_letter_failed(letter.reason)


def split(item: Item, partitions: int) -> list[tuple[int, Item]]:
    """A record's detect item as one item per detect partition, each with the keys it owns.

    Args:
        item: What ``route`` made of the record.
        partitions: Partition count of the detect topic.

    Returns:
        ``(partition, item)`` pairs, in the order of their first key.
    """
    keys = item[KEY]
    if partitions == 1:
        return [(0, item)]
    owned: dict[int, list[str]] = {}
    for key in keys:
        part = partition_of(key, partitions)
        mine = owned.get(part)
        if mine is None:
            owned[part] = [key]
        else:
            mine.append(key)
    if len(owned) == 1:
        return [(part, item) for part in owned]
    ts, rank, eid, _, packed, origin = item
    return [(part, (ts, rank, eid, mine, packed, origin)) for part, mine in owned.items()]
