"""What a worker sends: internal batches by partition, and alerts."""

from __future__ import annotations

import time
from typing import Any

import orjson

from aupwatch.detectors.alerts import is_new
from aupwatch.detectors.engine import Output
from aupwatch.schemas.records import parse_ts
from aupwatch.streams.worker.emitted import Emitted
from aupwatch.streams.worker.wire import LinkNotices, encode, encode_notices


class Outbox:
    """Sends internal messages and alerts through the worker's Faust topics.

    Args:
        topics: Faust topics by role (``input``, ``detect``, ..., ``alerts``, ``dead``).
        partitions: Partition count of the internal topics.
        chunk: Items per internal message.
        metrics: Optional ``Metrics``.
        sink: Optional Alertmanager sink with ``submit(alert)``.
    """

    def __init__(
        self, topics: dict[str, Any], partitions: int, chunk: int, metrics: Any, sink: Any
    ) -> None:
        self.topics = topics
        self.partitions = partitions
        self.chunk = chunk
        self.metrics = metrics
        self.sink = sink
        self.emitted: dict[str, Emitted] = {}  # alert id -> latest version on the topic

    async def parts(
        self,
        role: str,
        by_part: dict[int, list[Any]],
        marks: list[list[Any]],
        only_items: bool = False,
    ) -> None:
        """Sends items by partition, with the markers on every partition's last message.

        Args:
            role: Topic role.
            by_part: Items per partition.
            marks: Markers every partition must receive (unless ``only_items``).
            only_items: Send only to the partitions that have items.
        """
        topic = self.topics[role]
        parts = by_part if only_items else range(self.partitions)
        for p in parts:
            for value in encode(by_part.get(p, []), marks, self.chunk):
                await topic.send(value=value, partition=p)

    async def notices(self, notices: list[LinkNotices]) -> None:
        """Sends detect partitions' link notices to every detect partition (``link_gate``)."""
        topic = self.topics["detect"]
        value = encode_notices(notices)
        for p in range(self.partitions):
            await topic.send(value=value, partition=p)

    def remember(self, emitted: dict[str, Emitted]) -> None:
        """Notes versions already on the alerts topic (after a restart or a rebalance)."""
        for alert_id, version in emitted.items():
            old = self.emitted.get(alert_id)
            if old is None or version.version > old.version:
                self.emitted[alert_id] = version

    def forget_before(self, horizon: int) -> None:
        """Forgets alerts with ``ts`` before ``horizon``: nothing can fold into them now."""
        self.emitted = {a: v for a, v in self.emitted.items() if v.ts >= horizon}

    async def alerts(self, out: Output) -> None:
        """Sends alert versions newer than the topic holds to it (keyed by id) and the sink."""
        topic = self.topics["alerts"]
        now_ms = time.time() * 1000
        for alert, origin in zip(out.alerts, out.origins, strict=True):
            alert_id, count = alert["alert_id"], alert["count"]
            old = self.emitted.get(alert_id)
            if old is not None and count <= old.version:
                continue  # re-derived after a restart: a reader saw it already
            self.emitted[alert_id] = Emitted(count, old.ts if old else parse_ts(alert["ts"]))
            await topic.send(key=alert_id.encode(), value=orjson.dumps(alert))
            if self.metrics is not None:
                new = is_new(alert)
                self.metrics.alert(alert["detector"], alert["reason"], alert["severity"], new)
                if origin:
                    self.metrics.observe_latency(max(0.0, (now_ms - origin) / 1000))
            if self.sink is not None:
                self.sink.submit(alert)
