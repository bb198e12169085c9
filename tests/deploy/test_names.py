"""Every metric the rules and the dashboard use exists in a real scrape of the exporter.

The exporter (``Metrics(registry).serve(0)``) is started on a free port, every metric is
touched once, ``/metrics`` is fetched over HTTP and parsed with prometheus_client's parser.
Names in queries are sample names (``foo_total``, ``foo_bucket``...): a ``_bucket``,
``_sum`` or ``_count`` name must belong to a histogram family of the scrape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from aupwatch.streams.ops.metrics import (
    DEAD_LETTER_REASONS,
    DETECTOR_REASONS,
    KINDS,
    METRIC_NAMES,
    OUTCOMES,
    Metrics,
)
from aupwatch.streams.worker.flow import FlowMetrics
from aupwatch.streams.worker.tracker import SEEK_REASONS, SeekMetrics
from tests.deploy import servers
from tests.deploy.promql import (
    PROMETHEUS_BUILTINS,
    dashboard_queries,
    label_matchers,
    metric_names,
    rule_expressions,
)

TARGET_LABELS = {"job", "instance"}  # added by Prometheus at scrape time
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass
class Scrape:
    """What one HTTP scrape of the exporter exposed."""

    families: dict[str, str] = field(default_factory=dict)  # TYPE-line name -> type
    samples: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # name -> label values


def touch_everything(metrics: Metrics) -> None:
    for kind in KINDS:
        for outcome in OUTCOMES:
            metrics.record(kind, outcome)
        metrics.late(kind)
    for reason in DEAD_LETTER_REASONS:
        metrics.dead_letter(reason)
    for detector, reasons in DETECTOR_REASONS.items():
        for reason, severity in reasons.items():
            metrics.alert(detector, reason, severity, new=True)
            metrics.suppressed(detector, reason)
        metrics.alert(detector, next(iter(reasons)), "high", new=False)
        metrics.set_state_keys(detector, 10)
    metrics.set_stalled("detect", 0.0)
    metrics.unowned(2)
    metrics.set_watermark("detect", 0, 1.7e9)
    metrics.observe_latency(31.5)
    metrics.alertmanager_post(True)
    metrics.alertmanager_post(False)
    metrics.set_alertmanager_queue(3)
    metrics.alertmanager_dropped()
    metrics.worker_up(True)
    metrics.worker_assigned(2)
    metrics.worker_rebalance()
    metrics.consumer_lag("aupwatch-logs", 0, 42)
    metrics.batch("detect")
    metrics.duplicates("detect")


def touch_worker_objects(registry: CollectorRegistry) -> None:
    """Registers and touches the metrics the worker's own objects keep in its registry."""
    flow = FlowMetrics(registry)
    flow.paused.set(1)
    flow.lines_read(0, 100)
    flow.reread.labels(partition="0").inc(5)
    seeks = SeekMetrics(registry)
    for reason in SEEK_REASONS:
        seeks.sought(reason, 1)


def worker_object_names() -> set[str]:
    """Family names of the metrics the worker's objects register (``touch_worker_objects``)."""
    registry = CollectorRegistry()
    touch_worker_objects(registry)
    return {family.name for family in registry.collect()}


@pytest.fixture(scope="module")
def scrape() -> Iterator[Scrape]:
    metrics = Metrics(CollectorRegistry(), clock=lambda: 1.7e9 + 40)
    touch_everything(metrics)
    touch_worker_objects(metrics.registry)
    status, text = servers.scrape_exporter(metrics)
    assert status == 200
    result = Scrape()
    for line in text.splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if match:
            result.families[match.group(1)] = match.group(2)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = result.samples.setdefault(sample.name, {})
            for key, value in sample.labels.items():
                labels.setdefault(key, set()).add(value)
    yield result


def used_queries() -> dict[str, list[str]]:
    return {
        "rules": list(rule_expressions(servers.RULES_FILE).values()),
        "dashboard": dashboard_queries(servers.DASHBOARD_FILE),
    }


def family_of(name: str, scrape: Scrape) -> str:
    """The TYPE-line family a sample name belongs to."""
    if name in scrape.families:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and scrape.families.get(base) == "histogram":
            return base
    raise AssertionError(f"{name} is no family of the scrape")


def exported(scrape: Scrape) -> set[str]:
    """The aupwatch metric families of the scrape."""
    return {
        name
        for name in scrape.families
        if name.startswith("aupwatch_") and not name.endswith("_created")
    }


def test_scrape_exposes_exactly_metric_names(scrape: Scrape) -> None:
    # counters' families are named without _total by prometheus_client's collect()
    own = {n if n in scrape.families else f"{n}_total" for n in worker_object_names()}
    assert own and not own & set(METRIC_NAMES)
    assert exported(scrape) == set(METRIC_NAMES) | own


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_used_metric_is_exported(scrape: Scrape, source: str) -> None:
    queries = used_queries()[source]
    assert queries
    missing = {}
    for query in queries:
        for name in metric_names(query) - PROMETHEUS_BUILTINS:
            if name not in scrape.samples:
                missing[name] = query
            else:
                assert family_of(name, scrape) in exported(scrape)
    assert not missing, f"{source} use metrics the exporter does not have: {missing}"


def test_bare_histogram_name_is_rejected(scrape: Scrape) -> None:
    # A query must select _bucket/_sum/_count; the family name alone has no series.
    assert "aupwatch_processing_latency_seconds" not in scrape.samples
    assert family_of("aupwatch_processing_latency_seconds_bucket", scrape) == (
        "aupwatch_processing_latency_seconds"
    )
    with pytest.raises(AssertionError):
        family_of("aupwatch_records_total_bucket", scrape)


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_label_matchers_use_real_labels_and_values(scrape: Scrape, source: str) -> None:
    for query in used_queries()[source]:
        for metric, label, op, value in label_matchers(query):
            if metric in PROMETHEUS_BUILTINS or label in TARGET_LABELS:
                continue
            labels = scrape.samples[metric]
            assert label in labels, f"{metric} has no label {label!r} ({query})"
            if op == "=" and "$" not in value:
                assert value in labels[label], f"{metric}{{{label}={value!r}}} never exported"


def test_dashboard_shows_every_metric(scrape: Scrape) -> None:
    # every metric of the scrape: the central ones and those of the worker's own objects
    names = exported(scrape)
    used = set()
    for query in dashboard_queries(servers.DASHBOARD_FILE):
        for name in metric_names(query):
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name.removesuffix(suffix) in names:
                    name = name.removesuffix(suffix)
            used.add(name)
    assert names <= used, sorted(names - used)


def test_dashboard_has_the_required_views() -> None:
    queries = "\n".join(dashboard_queries(servers.DASHBOARD_FILE))
    for needle in (
        "sum by (kind) (rate(aupwatch_records_total",
        "sum by (detector) (increase(aupwatch_alerts_total",
        "sum by (reason) (rate(aupwatch_dead_letters_total",
        "aupwatch_event_time_lag_seconds",
        "histogram_quantile(0.99, sum by (le) (rate(aupwatch_processing_latency_seconds_bucket",
        "aupwatch_detector_state_keys",
        "aupwatch_alertmanager_posts_total",
        "aupwatch_worker_up",
        "aupwatch_worker_assigned_partitions",
    ):
        assert needle in queries, needle


def test_dashboard_panel_ids_are_unique() -> None:
    # Grafana keys a panel's links, edits and repeats by its id
    panels = json.loads(servers.DASHBOARD_FILE.read_text())["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_every_rule_uses_an_exported_metric() -> None:
    for name, expr in rule_expressions(servers.RULES_FILE).items():
        assert metric_names(expr), name
