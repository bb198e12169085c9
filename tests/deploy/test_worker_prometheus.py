"""Real Prometheus scrapes a running worker on the real broker; alerts reach Alertmanager."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from aupwatch.detectors.registry import DETECTORS
from tests.deploy import servers
from tests.streams.harness import deployment as kafka_deployment
from tests.streams.harness import (
    describe_difference,
    free_port,
    replay_alerts,
    wait_for_alerts,
)

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample.jsonl.gz"
# the breach rule of each detector (the sample plants breaches of every one)
RULE_OF = {d.name: "Aupwatch" + d.name.title().replace("_", "") for d in DETECTORS}


def scalar(prom: servers.Server, promql: str) -> float:
    result = servers.query(prom, promql)
    return float(result[0]["value"][1]) if result else 0.0


def by_label(prom: servers.Server, promql: str, label: str) -> dict[str, float]:
    return {r["metric"][label]: float(r["value"][1]) for r in servers.query(prom, promql)}


def test_prometheus_scrapes_worker_and_breach_rules_fire(
    monitoring: None, kafka_bootstrap: str, tmp_path: Path
) -> None:
    dead_file = tmp_path / "dead.jsonl"
    expected = replay_alerts(SAMPLE, dead_file)
    want_dead = Counter(orjson.loads(x)["reason"] for x in dead_file.read_bytes().splitlines())
    summary = subprocess.run(
        [sys.executable, "-m", "aupwatch.cli", "replay", str(SAMPLE), "--alerts", "/dev/null"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    records = int(summary.split("records: ")[1].split()[0])
    port = free_port()
    with (
        servers.start_alertmanager(tmp_path / "am") as am,
        servers.start_prometheus(
            tmp_path / "prom", targets=[f"127.0.0.1:{port}"], alertmanager=am
        ) as prom,
        kafka_deployment(kafka_bootstrap, tmp_path / "kafka") as dep,
    ):
        (tmp_path / "kafka").mkdir(exist_ok=True)
        dep.create_input()
        dep.start_worker("w1", metrics_port=port, AUPWATCH_MONITOR__ALERTMANAGER_URL=am.url)
        servers.wait_for(
            lambda: scalar(prom, 'up{job="aupwatch"}') == 1,
            timeout=60,
            what="Prometheus scraping the worker",
        )
        dep.send(SAMPLE, batch=100)
        got = wait_for_alerts(dep, expected)
        assert got == expected, describe_difference(expected, got)

        def counted() -> bool:
            return scalar(prom, 'sum(aupwatch_records_total{outcome!="dead_letter"})') == records

        servers.wait_for(counted, timeout=60, what="record counts in Prometheus")
        assert by_label(prom, "sum by (reason) (aupwatch_dead_letters_total) > 0", "reason") == {
            r: float(n) for r, n in want_dead.items()
        }
        new_by_detector = Counter(a["detector"] for a in expected.values())
        servers.wait_for(
            lambda: (
                by_label(prom, "sum by (detector) (aupwatch_alerts_total) > 0", "detector")
                == {d: float(n) for d, n in new_by_detector.items()}
            ),
            timeout=60,
            what="alerts by detector in Prometheus",
        )
        servers.wait_for(  # the sample delivers some records twice
            lambda: scalar(prom, 'sum(aupwatch_duplicate_items_total{stage="detect"})') > 0,
            timeout=30,
            what="duplicate items counted",
        )
        servers.wait_for(  # every call that links no one passes the link gate
            lambda: scalar(prom, "sum(aupwatch_link_gate_calls_total)") > 0,
            timeout=30,
            what="the link gate's calls counted",
        )
        assert scalar(prom, "aupwatch_worker_up") == 1
        assert scalar(prom, 'count(aupwatch_watermark_timestamp_seconds{stage="alerts"})') >= 1
        assert (
            scalar(prom, "sum(aupwatch_processing_latency_seconds_count)")
            >= len(expected) - (new_by_detector["dormant_key"])
        )  # timer alerts have no source record
        for detector, rule in RULE_OF.items():
            servers.wait_for(
                lambda rule=rule: bool(servers.firing_alerts(prom, rule)),
                timeout=90,
                what=f"{rule} firing",
            )
            firing = servers.firing_alerts(prom, rule)
            assert {a["labels"]["detector"] for a in firing} == {detector}
        servers.wait_for(
            lambda: (
                len(servers.alertmanager_alerts(am, alertname="AupwatchBreach")) == len(expected)
            ),
            timeout=60,
            what="every alert posted to Alertmanager by the worker",
        )
        posted = servers.alertmanager_alerts(am, alertname="AupwatchBreach")
        assert {a["labels"]["alert_id"] for a in posted} == set(expected)
