"""The metrics' vocabulary: label values, histogram buckets and metric family names.

Every label value comes from these tuples (or the detector registry): labels never hold
seller, developer, app or key ids.
"""

from __future__ import annotations

from aupwatch.detectors.registry import reason_severities
from aupwatch.schemas.errors import DEAD_LETTER_REASONS as _DEAD_LETTER_REASONS

KINDS: tuple[str, ...] = ("api_call", "authorization", "data_access", "key_event", "unknown")
"""Record kinds used as the ``kind`` label; anything else is counted as ``unknown``."""

OUTCOMES: tuple[str, ...] = ("accepted", "late", "dead_letter")
"""What happened to an input record (duplicates are found later, per record in each detect
partition: see ``aupwatch_duplicate_items_total``)."""

DEAD_LETTER_REASONS: tuple[str, ...] = _DEAD_LETTER_REASONS
"""Reason codes of the dead-letter sink."""

LINK_GATE_OUTCOMES: tuple[str, ...] = ("dropped", "linked", "unsure", "checkpoint")
"""What the link gate did with a call that links no one (``streams.worker.link_gate``):
dropped, sent because its developer holds a link in its scope, sent because a link might
be unknown to the partition, or sent unchecked by a checkpoint."""

ALERT_SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
"""Severities of the alert contract."""

DETECTOR_REASONS: dict[str, dict[str, str]] = reason_severities()
"""Detectors, their reason codes and default severities (from the detector registry).

The only values :meth:`Metrics.alert` accepts; their series are created at zero on start
so that ``increase()`` sees the first alert.
"""

# fmt: off
LATENCY_BUCKETS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 28.0, 30.0, 31.0, 32.5, 35.0,
    40.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0,
)
# fmt: on
"""Processing-latency buckets in seconds.

Decisions wait for the watermark (allowed lateness 30 s), so most records take a little
over 30 s from append to alert: the buckets are dense between 25 s and 40 s.
"""

CHECKPOINT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Checkpoint-duration buckets in seconds (a checkpoint runs every 2 s under the lock)."""

METRIC_NAMES: frozenset[str] = frozenset(
    {
        "aupwatch_records_total",
        "aupwatch_dead_letters_total",
        "aupwatch_dead_letter_failures_total",
        "aupwatch_late_records_total",
        "aupwatch_alerts_total",
        "aupwatch_alert_updates_total",
        "aupwatch_alerts_suppressed_total",
        "aupwatch_unowned_resource_accesses_total",
        "aupwatch_watermark_timestamp_seconds",
        "aupwatch_event_time_lag_seconds",
        "aupwatch_processing_latency_seconds",
        "aupwatch_detector_state_keys",
        "aupwatch_checkpoint_seconds",
        "aupwatch_stage_stalled_seconds",
        "aupwatch_alertmanager_posts_total",
        "aupwatch_alertmanager_queue_alerts",
        "aupwatch_alertmanager_dropped_total",
        "aupwatch_worker_up",
        "aupwatch_worker_assigned_partitions",
        "aupwatch_worker_rebalances_total",
        "aupwatch_consumer_lag_records",
        "aupwatch_batches_total",
        "aupwatch_duplicate_items_total",
        "aupwatch_link_gate_calls_total",
        "aupwatch_build_info",
    }
)
"""Metric family names as they appear in ``# TYPE`` lines of a scrape."""
