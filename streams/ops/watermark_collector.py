"""Watermarks per stage and partition, exported with their lag behind the wall clock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class WatermarkCollector(Collector):
    """Watermarks per stage and partition, and their lag behind the wall clock.

    The lag is computed when Prometheus scrapes, from the injected clock, so it keeps
    growing while a partition's watermark is stuck even if the worker does nothing.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._marks: dict[tuple[str, int], float] = {}

    def set(self, stage: str, partition: int, seconds: float) -> None:
        """Store the watermark (seconds since the epoch) of a stage and partition."""
        with self._lock:
            self._marks[(stage, partition)] = float(seconds)

    def remove(self, stage: str, partition: int) -> None:
        """Forget a watermark (e.g. after the partition was revoked)."""
        with self._lock:
            self._marks.pop((stage, partition), None)

    def get(self, stage: str, partition: int) -> float | None:
        """Return the stored watermark, or None."""
        with self._lock:
            return self._marks.get((stage, partition))

    def _families(self, with_samples: bool) -> list[Metric]:
        mark = GaugeMetricFamily(
            "aupwatch_watermark_timestamp_seconds",
            "Event-time watermark per stage and partition, seconds since the epoch.",
            labels=("stage", "partition"),
        )
        lag = GaugeMetricFamily(
            "aupwatch_event_time_lag_seconds",
            "Wall clock minus watermark at scrape time, per stage and partition.",
            labels=("stage", "partition"),
        )
        if with_samples:
            now = self._clock()
            with self._lock:
                marks = sorted(self._marks.items())
            for (stage, partition), seconds in marks:
                labels = [stage, str(partition)]
                mark.add_metric(labels, seconds)
                lag.add_metric(labels, now - seconds)
        return [mark, lag]

    def describe(self) -> Iterable[Metric]:
        """Describe the families without samples (used at registration).

        Returns:
            The two metric families, empty.
        """
        return self._families(False)

    def collect(self) -> Iterable[Metric]:
        """Collect current watermarks and lags.

        Returns:
            The two metric families with one sample per stage and partition.
        """
        return self._families(True)
