"""Prometheus metrics of an aupwatch worker.

Every metric lives in the :class:`prometheus_client.CollectorRegistry` handed to
:class:`Metrics`; nothing is registered in the process-global registry, so tests and
several pipelines in one process never collide.

Labels carry only small, fixed vocabularies (record kinds, outcomes, reason codes,
detector names, severities, stage names, topics, partitions). Seller, developer,
application and key ids never become label values: they would explode the number of
series and leak identifiers into the monitoring system. Label values are checked on
every call and a value outside the vocabulary raises :class:`ValueError` (stage and
state-key names must be lower_snake_case codes), except the record kind, which comes from
untrusted input and is folded into ``unknown``.

Counting contract used by the alerting rules (``deploy/prometheus/rules``):

* every input record is counted once in ``aupwatch_records_total`` with its outcome;
* a dead letter is additionally counted in ``aupwatch_dead_letters_total`` by reason;
* a late record (``outcome="late"``) is additionally counted in
  ``aupwatch_late_records_total`` by kind;
* a new alert increments ``aupwatch_alerts_total``, a re-emission of an existing
  ``alert_id`` with a larger count increments ``aupwatch_alert_updates_total``.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aupwatch import __version__
from aupwatch.streams.ops.exposition import serve
from aupwatch.streams.ops.vocabulary import (
    ALERT_SEVERITIES,
    CHECKPOINT_BUCKETS,
    DEAD_LETTER_REASONS,
    DETECTOR_REASONS,
    KINDS,
    LATENCY_BUCKETS,
    LINK_GATE_OUTCOMES,
    METRIC_NAMES,
    OUTCOMES,
)
from aupwatch.streams.ops.watermark_collector import WatermarkCollector

__all__ = [
    "ALERT_SEVERITIES",
    "CHECKPOINT_BUCKETS",
    "DEAD_LETTER_REASONS",
    "DETECTOR_REASONS",
    "KINDS",
    "LATENCY_BUCKETS",
    "LINK_GATE_OUTCOMES",
    "METRIC_NAMES",
    "OUTCOMES",
    "Metrics",
]

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def _code(what: str, value: str) -> str:
    """Return ``value`` if it is a short lower_snake_case code (never an id), else raise."""
    if not isinstance(value, str) or not _CODE.match(value):
        raise ValueError(f"{what} must be a lower_snake_case code, got {value!r}")
    return value


def _member(what: str, value: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _count(n: int | float) -> float:
    """Return a counter increment as float; raise ValueError if negative."""
    if n < 0:
        raise ValueError(f"counter increments must be >= 0, got {n}")
    return float(n)


class Metrics:
    """All aupwatch metrics, registered in one registry.

    Args:
        registry: Registry to register the metrics in (never the global one).
        clock: Wall clock in seconds since the epoch; used for the event-time lag.
        version: Value of the ``version`` label of ``aupwatch_build_info``; defaults to
            ``aupwatch.__version__``.

    Example:
        >>> from prometheus_client import CollectorRegistry
        >>> m = Metrics(CollectorRegistry(), clock=lambda: 100.0)
        >>> m.record("api_call", "accepted")
        >>> m.set_watermark("detect", 0, 70.0)
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        version: str | None = None,
    ) -> None:
        self.registry = registry
        self._clock = clock

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        records_doc = "Input records by kind and outcome."
        self._records = counter("aupwatch_records_total", records_doc, "kind", "outcome")
        dead_doc = "Records sent to the dead-letter sink, by reason."
        self._dead_letters = counter("aupwatch_dead_letters_total", dead_doc, "reason")
        failed_doc = "Dead letters the sink did not accept after retries (logged), by reason."
        self._dead_failed = counter("aupwatch_dead_letter_failures_total", failed_doc, "reason")
        late_doc = "Records at or behind the watermark on arrival (applied anyway), by kind."
        self._late = counter("aupwatch_late_records_total", late_doc, "kind")
        alerts_doc = "New alerts by detector, reason and severity."
        self._alerts = counter(
            "aupwatch_alerts_total", alerts_doc, "detector", "reason", "severity"
        )
        updates_doc = "Re-emissions of an existing alert with a larger count, by detector."
        self._alert_updates = counter("aupwatch_alert_updates_total", updates_doc, "detector")
        suppressed_doc = "Occurrences excepted by an [[exceptions]] entry, by detector and reason."
        self._suppressed = counter(
            "aupwatch_alerts_suppressed_total", suppressed_doc, "detector", "reason"
        )
        dup_doc = (
            "Detector items dropped as re-deliveries (a record already applied in its detect"
            " partition, an event id already applied to a later stage's key, or input re-read"
            " after a restart), by stage."
        )
        self._duplicates = counter("aupwatch_duplicate_items_total", dup_doc, "stage")
        gate_doc = (
            "Calls that link no one, held by the link gate of the detect stage, by outcome:"
            " dropped (no link can touch them), sent (linked: a link may; unsure: a link"
            " may be unread), sent unchecked by a checkpoint (checkpoint)."
        )
        self._link_gate = counter("aupwatch_link_gate_calls_total", gate_doc, "outcome")
        unowned_doc = "Data accesses of a resource with no known owner (not alerted)."
        self._unowned = counter("aupwatch_unowned_resource_accesses_total", unowned_doc)
        self._watermarks = WatermarkCollector(clock)
        registry.register(self._watermarks)
        self._latency = Histogram(
            "aupwatch_processing_latency_seconds",
            "Wall time from a record's append to the append of the alert it caused.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        keys_doc = "Keys held in detector state, by detector."
        self._state_keys = gauge("aupwatch_detector_state_keys", keys_doc, "detector")
        self._checkpoint = Histogram(
            "aupwatch_checkpoint_seconds",
            "Wall time of a checkpoint (flush outputs, write changed state, commit input).",
            buckets=CHECKPOINT_BUCKETS,
            registry=registry,
        )
        stalled_doc = "Seconds a stage has held items without its watermark moving (0: none)."
        self._stalled = gauge("aupwatch_stage_stalled_seconds", stalled_doc, "stage")
        posts_doc = "POSTs to Alertmanager by outcome (ok, error)."
        self._am_posts = counter("aupwatch_alertmanager_posts_total", posts_doc, "outcome")
        queue_doc = "Alerts waiting to be posted to Alertmanager."
        self._am_queue = gauge("aupwatch_alertmanager_queue_alerts", queue_doc)
        dropped_doc = "Alerts the Alertmanager sink gave up on (queue full or rejected)."
        self._am_dropped = counter("aupwatch_alertmanager_dropped_total", dropped_doc)
        self._up = gauge("aupwatch_worker_up", "1 while the worker is consuming, else 0.")
        parts_doc = "Input partitions assigned to this worker."
        self._partitions = gauge("aupwatch_worker_assigned_partitions", parts_doc)
        rebalance_doc = "Consumer-group rebalances seen by this worker."
        self._rebalances = counter("aupwatch_worker_rebalances_total", rebalance_doc)
        lag_doc = "Records between the committed offset and the log end, per partition."
        self._consumer_lag = gauge("aupwatch_consumer_lag_records", lag_doc, "topic", "partition")
        batches_doc = "Batches processed, by pipeline stage."
        self._batches = counter("aupwatch_batches_total", batches_doc, "stage")
        info_doc = "Always 1; the version label tells the build."
        self._build_info = gauge("aupwatch_build_info", info_doc, "version")
        self._build_info.labels(version=version or __version__).set(1)
        self._initialise_series()

    def _initialise_series(self) -> None:
        """Create every known label combination at zero, so rates start from 0."""
        for kind in KINDS:
            self._late.labels(kind=kind)
            for outcome in OUTCOMES:
                self._records.labels(kind=kind, outcome=outcome)
        for reason in DEAD_LETTER_REASONS:
            self._dead_letters.labels(reason=reason)
            self._dead_failed.labels(reason=reason)
        for detector, reasons in DETECTOR_REASONS.items():
            self._alert_updates.labels(detector=detector)
            for reason, severity in reasons.items():
                self._alerts.labels(detector=detector, reason=reason, severity=severity)
                self._suppressed.labels(detector=detector, reason=reason)
        for outcome in ("ok", "error"):
            self._am_posts.labels(outcome=outcome)
        for outcome in LINK_GATE_OUTCOMES:
            self._link_gate.labels(outcome=outcome)

    # -- input ------------------------------------------------------------------------

    def record(self, kind: str, outcome: str, n: int = 1) -> None:
        """Count ``n`` input records of a kind (outside :data:`KINDS`: ``unknown``).

        Raises:
            ValueError: If ``outcome`` is not in :data:`OUTCOMES` or ``n`` < 0.
        """
        kind = kind if kind in KINDS else "unknown"
        _member("outcome", outcome, OUTCOMES)
        self._records.labels(kind=kind, outcome=outcome).inc(_count(n))

    def dead_letter(self, reason: str, n: int = 1) -> None:
        """Count ``n`` dead letters (in addition to ``record(kind, "dead_letter")``).

        Raises:
            ValueError: If ``reason`` is not in :data:`DEAD_LETTER_REASONS` or ``n`` < 0.
        """
        _member("reason", reason, DEAD_LETTER_REASONS)
        self._dead_letters.labels(reason=reason).inc(_count(n))

    def dead_letter_failed(self, reason: str, n: int = 1) -> None:
        """Count ``n`` dead letters that could not be written (never counted as sent)."""
        _member("reason", reason, DEAD_LETTER_REASONS)
        self._dead_failed.labels(reason=reason).inc(_count(n))

    def late(self, kind: str, n: int = 1) -> None:
        """Count ``n`` records that arrived at or behind the watermark."""
        kind = kind if kind in KINDS else "unknown"
        self._late.labels(kind=kind).inc(_count(n))

    def unowned(self, n: int = 1) -> None:
        """Count ``n`` data accesses of resources with no known owner."""
        self._unowned.inc(_count(n))

    # -- detection --------------------------------------------------------------------

    def alert(self, detector: str, reason: str, severity: str, new: bool) -> None:
        """Count an emitted alert: a new ``alert_id`` or (``new=False``) an update.

        Args:
            detector: A detector of :data:`DETECTOR_REASONS`.
            reason: One of that detector's reason codes.
            severity: One of :data:`ALERT_SEVERITIES`.
            new: True for a new ``alert_id``, False for a re-emission with a larger count.

        Raises:
            ValueError: If the detector, the reason or the severity is unknown.
        """
        _member("detector", detector, DETECTOR_REASONS)
        _member("reason", reason, DETECTOR_REASONS[detector])
        _member("severity", severity, ALERT_SEVERITIES)
        if new:
            self._alerts.labels(detector=detector, reason=reason, severity=severity).inc()
        else:
            self._alert_updates.labels(detector=detector).inc()

    def suppressed(self, detector: str, reason: str, n: int = 1) -> None:
        """Count ``n`` occurrences an exception suppressed (never labelled by subject).

        Raises:
            ValueError: If the detector or the reason is unknown, or ``n`` < 0.
        """
        _member("detector", detector, DETECTOR_REASONS)
        _member("reason", reason, DETECTOR_REASONS[detector])
        self._suppressed.labels(detector=detector, reason=reason).inc(_count(n))

    def observe_latency(self, seconds: float) -> None:
        """Observe append-to-alert latency in seconds (negative values count as 0)."""
        self._latency.observe(max(0.0, float(seconds)))

    def set_state_keys(self, detector: str, n: int) -> None:
        """Set the number of keys a detector holds in state."""
        self._state_keys.labels(detector=_code("detector", detector)).set(n)

    def observe_checkpoint(self, seconds: float) -> None:
        """Observe the wall time of one checkpoint in seconds."""
        self._checkpoint.observe(max(0.0, float(seconds)))

    def set_stalled(self, stage: str, seconds: float) -> None:
        """Set how long a stage has held items without progress (0 when it moves)."""
        self._stalled.labels(stage=_code("stage", stage)).set(max(0.0, float(seconds)))

    def set_watermark(self, stage: str, partition: int, seconds: float) -> None:
        """Set a stage's watermark (seconds since the epoch) for one partition.

        The lag gauge is derived from it when scraped (clock minus watermark).

        Raises:
            ValueError: If ``stage`` is not a lower_snake_case code.
        """
        self._watermarks.set(_code("stage", stage), int(partition), seconds)

    def remove_watermark(self, stage: str, partition: int) -> None:
        """Stop exporting a watermark (the partition was revoked)."""
        self._watermarks.remove(stage, int(partition))

    def watermark(self, stage: str, partition: int) -> float | None:
        """Return the watermark last set for a stage and partition, or None."""
        return self._watermarks.get(stage, int(partition))

    # -- Alertmanager sink ------------------------------------------------------------

    def alertmanager_post(self, ok: bool) -> None:
        """Count one POST to Alertmanager as ``ok`` or ``error``."""
        self._am_posts.labels(outcome="ok" if ok else "error").inc()

    def set_alertmanager_queue(self, n: int) -> None:
        """Set the number of alerts waiting to be posted to Alertmanager."""
        self._am_queue.set(n)

    def alertmanager_dropped(self, n: int = 1) -> None:
        """Count ``n`` alerts the Alertmanager sink gave up on."""
        self._am_dropped.inc(_count(n))

    # -- worker health ----------------------------------------------------------------

    def worker_up(self, up: bool) -> None:
        """Mark the worker as consuming (True) or stopped (False)."""
        self._up.set(1 if up else 0)

    def worker_assigned(self, n: int) -> None:
        """Set the number of input partitions assigned to this worker."""
        self._partitions.set(n)

    def worker_rebalance(self) -> None:
        """Count a consumer-group rebalance."""
        self._rebalances.inc()

    def consumer_lag(self, topic: str, partition: int, records: int) -> None:
        """Set the lag (log-end minus committed offset) of one topic partition.

        Raises:
            ValueError: If ``topic`` is not a valid Kafka topic name.
        """
        if not _TOPIC.match(topic):
            raise ValueError(f"not a Kafka topic name: {topic!r}")
        self._consumer_lag.labels(topic=topic, partition=str(int(partition))).set(records)

    def remove_consumer_lag(self, topic: str, partition: int) -> None:
        """Stop exporting the lag of a revoked partition."""
        with contextlib.suppress(KeyError):
            self._consumer_lag.remove(topic, str(int(partition)))

    def duplicates(self, stage: str, n: int = 1) -> None:
        """Count ``n`` detector items a stage dropped as re-deliveries."""
        self._duplicates.labels(stage=_code("stage", stage)).inc(_count(n))

    def link_gate(self, counts: dict[str, int]) -> None:
        """Count the link gate's calls by outcome (``LINK_GATE_OUTCOMES``)."""
        for outcome, n in counts.items():
            if n:
                self._link_gate.labels(outcome=_member("outcome", outcome, LINK_GATE_OUTCOMES)).inc(
                    _count(n)
                )

    def batch(self, stage: str, n: int = 1) -> None:
        """Count ``n`` processed batches of a pipeline stage (a lower_snake_case code)."""
        self._batches.labels(stage=_code("stage", stage)).inc(_count(n))

    # -- exposition -------------------------------------------------------------------

    def serve(
        self, port: int, addr: str = "0.0.0.0", certfile: str = "", keyfile: str = ""
    ) -> WSGIServer:
        """Serves this registry from a daemon thread (``ops.exposition.serve``)."""
        return serve(self.registry, port, addr, certfile, keyfile)
