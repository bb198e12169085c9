"""What a worker sends: internal batches by partition, and alerts."""

from __future__ import annotations

import time
from typing import Any

import orjson

from aupwatch.detectors.engine import Output
from aupwatch.streams.worker.stages import encode_batches


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
            for value in encode_batches(by_part.get(p, []), marks, self.chunk):
                await topic.send(value=value, partition=p)

    async def alerts(self, out: Output) -> None:
        """Sends alert versions to the alerts topic (keyed by id) and the sink."""
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
